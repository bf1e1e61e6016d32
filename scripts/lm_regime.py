"""The regime map of task=lm on this CPU: how much of a whole step the gate saves, by model size,
completion length and keep rate, against the bound generation sets (figures, not a test).

For each model size x completion length, one task per keep rate starts from the same weights;
their steps run interleaved (one step of each keep rate in turn, `--repeats` rounds after a
warm-up round). Each step is timed in phases: generation G (sampling, with the log pi the gate
screens on), screening F_screen (delight and the gate), the learning forward F_kept and the
backward with the optimiser step B_kept on the compacted, right-trimmed kept completions.
Keep rate 1 is the ungated step (every completion, one forward and backward): its F and B are
those of the whole batch. Per cell it reports medians and:
- speedup      (ungated step time) / (gated step time), both measured, in CPU time (one thread;
               `wall_speedup` is the same in wall-clock, noisier where other jobs share the cores);
- gen_share    G / ungated step time: the part no gate can touch;
- bound        (G + F + B) / (G + F_screen + p (F + B)), G, F, B the ungated step's and p the
               fraction of completions kept: the speedup if the kept fraction of the learning
               work were all that remained of it.
Completions always run to the full length (the end-of-sequence token is disabled here), so a
cell is one completion length.
The gate keeps whole completions (method.unit=sequence, top-k): p is the fraction of rows kept
(`--unit token` gates tokens instead: see the rows_kept column for how many rows that keeps).

    python scripts/lm_regime.py [--sizes S,M,L] [--lengths 16,64] [--keep 1,0.3,0.1,0.03] [--out results/lm/regime]

Writes <out>.csv and <out>.png. Needs the `lm` extra.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_trl import compose, cpu_model  # noqa: E402
from benchtable import print_table, write_csv  # noqa: E402

SIZES = {  # name -> (hidden, layers, heads, ffn): Qwen2 blocks, tied embeddings, a 16-token vocabulary
    "S": (128, 4, 4, 512),  # about 1 M parameters
    "M": (256, 6, 4, 1024),  # about 6 M
    "L": (512, 7, 8, 2048),  # about 29 M
}


def make(size: str, length: int, keep: float, a):
    import torch

    from kondo_bench.methods import Method
    from kondo_bench.tasks import make_task

    h, layers, heads, ffn = SIZES[size]
    method = ["method=pg"] if keep >= 1 else ["method=dgk", f"keep_rate={keep}", f"method.unit={a.unit}"]
    cfg = compose(["task=lm", "task.problem=reversal", f"task.length={length}", "task.vocab=2",
                   f"task.batch_size={a.prompts * a.group}", f"task.samples_per_prompt={a.group}",
                   f"task.model.hidden_size={h}", f"task.model.layers={layers}", f"task.model.heads={heads}",
                   f"task.model.intermediate_size={ffn}", "device=cpu", *method])
    torch.manual_seed(0)  # the same initial weights for every keep rate
    task = make_task(cfg, torch.device("cpu"))
    # no early end: every completion runs to its full length, so a cell is one completion length
    # (an untrained model writes <eos> at random; the task would stop and trim there)
    task.eos = -1
    return task, Method.from_config(cfg)


def step(task, method) -> dict:
    """One step in phases: the loop's work (train.py, learn_step) with a clock between phases.

    The phases are timed in this process's CPU time: on one thread that is the work done, and
    it stays put when other jobs share the cores (wall-clock is kept beside it, as `wall`)."""
    w0, t0 = time.perf_counter(), time.process_time()
    batch = task.act()
    t1 = time.process_time()
    valid = batch.data["valid"]
    sel = method.select(batch.advantage, batch.logp, valid)
    rows = sel.keep.any(1).nonzero()[:, 0]
    if method.gated:
        batch.data["keep"] = sel.keep
    t2 = time.process_time()
    logp = task.logp(batch, rows)
    loss = -(sel.coef[rows] * logp).sum() / sel.keep.numel()
    t3 = time.process_time()
    task.learn(loss)
    t4 = time.process_time()
    return {"G": t1 - t0, "F_screen": t2 - t1, "F": t3 - t2, "B": t4 - t3, "total": t4 - t0,
            "wall": time.perf_counter() - w0, "rows_kept": len(rows) / len(valid),
            "tokens_kept": float(sel.keep.sum() / valid.sum())}


def with_bound(rows: list[dict]) -> list[dict]:
    """The bound of each row against its cell's ungated row, p = the fraction of rows kept
    (top-k keeps max(1, round(rho n)) of n completions: 1 of 16 at rho = 0.03)."""
    for r in rows:
        base = next(b for b in rows if b["size"] == r["size"] and b["completion"] == r["completion"]
                    and b["keep_rate"] == max(x["keep_rate"] for x in rows))
        learn = base["F_s"] + base["B_s"]
        r["bound"] = round((base["G_s"] + learn) / (base["G_s"] + r["F_screen_s"] + r["rows_kept"] * learn), 2)
    return rows


def cell(size: str, length: int, a) -> list[dict]:
    import torch

    runs = {keep: make(size, length, keep, a) for keep in a.keep}
    params = sum(p.numel() for p in next(iter(runs.values()))[0].model.parameters())
    times = {keep: [] for keep in a.keep}
    load = os.getloadavg()[0]
    for r in range(a.repeats + 1):  # round 0 warms up and is dropped
        for keep, (task, method) in runs.items():
            torch.manual_seed(1000 * r + 7)  # the same prompts and draws for every keep rate in a round
            t = step(task, method)
            if r:
                times[keep].append(t)
    med = {keep: {k: statistics.median(t[k] for t in ts) for k in ts[0]} for keep, ts in times.items()}
    base = med[max(a.keep)]
    out = []
    for keep in a.keep:
        m = med[keep]
        tot = [t["total"] for t in times[keep]]
        out.append({"size": size, "params_M": round(params / 1e6, 2), "completion": length, "keep_rate": keep,
                    "step_s": round(m["total"], 4), "step_s_min": round(min(tot), 4), "step_s_max": round(max(tot), 4),
                    "G_s": round(m["G"], 4), "F_screen_s": round(m["F_screen"], 5), "F_s": round(m["F"], 4),
                    "B_s": round(m["B"], 4), "rows_kept": round(m["rows_kept"], 3),
                    "tokens_kept": round(m["tokens_kept"], 3),
                    "speedup": round(base["total"] / m["total"], 2), "bound": None,
                    "gen_share": round(base["G"] / base["total"], 3),
                    "wall_s": round(m["wall"], 3), "wall_speedup": round(base["wall"] / m["wall"], 2),
                    "load_avg": round(load, 2)})
    return with_bound(out)


def figure(rows, a, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = sorted({r["completion"] for r in rows})
    fig, axes = plt.subplots(1, len(lengths), figsize=(5.5 * len(lengths), 4), sharey=True, squeeze=False)
    for ax, length in zip(axes[0], lengths):
        for i, size in enumerate(dict.fromkeys(r["size"] for r in rows)):
            mine = sorted((r for r in rows if r["size"] == size and r["completion"] == length),
                          key=lambda r: r["keep_rate"])
            if not mine:
                continue
            x = [r["keep_rate"] for r in mine]
            c = f"C{i}"
            ax.plot(x, [r["speedup"] for r in mine], "o-", color=c,
                    label=f"{size} ({mine[0]['params_M']:g} M params), gen {100 * mine[0]['gen_share']:.0f}% of step")
            ax.plot(x, [r["bound"] for r in mine], "--", color=c, alpha=0.6)
        ax.set_xscale("log"), ax.invert_xaxis()
        ax.axhline(1, color="grey", lw=0.5)
        ax.set_xlabel("keep rate ρ (whole completions)" if a.unit == "sequence" else "keep rate ρ (tokens)")
        ax.set_title(f"completion length {length}")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("speedup of a whole step over ungated\n(solid: measured; dashed: bound)")
    fig.suptitle(f"task=lm on {cpu_model()}, {a.threads} thread(s), {a.prompts}x{a.group} completions per step; "
                 "step times in process CPU time",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="S,M,L")
    ap.add_argument("--lengths", default="16,64")
    ap.add_argument("--keep", default="1,0.3,0.1,0.03")
    ap.add_argument("--unit", default="sequence", choices=["sequence", "token"])
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="results/lm/regime")
    a = ap.parse_args()
    a.keep = [float(k) for k in a.keep.split(",")]
    import torch

    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}; {a.threads} thread(s); {cpu_model()}; load average {os.getloadavg()}",
          flush=True)
    rows = []
    for size in a.sizes.split(","):
        for length in map(int, a.lengths.split(",")):
            got = cell(size, length, a)
            rows += got
            print("  ".join(f"{r['size']} L={r['completion']} rho={r['keep_rate']:g}: {r['speedup']}x "
                            f"(bound {r['bound']}x)" for r in got), f"gen share {got[0]['gen_share']}", flush=True)
    print_table(rows, list(rows[0]))
    write_csv(rows, a.out + ".csv")
    figure(rows, a, a.out + ".png")
    print(f"wrote {a.out}.csv, {a.out}.png; load average now {os.getloadavg()}")


if __name__ == "__main__":
    main()
