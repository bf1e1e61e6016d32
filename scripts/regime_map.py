"""Regime map: where the gate pays in wall-clock on this CPU, and where it does not (figures, not a test).

speedup = t(ungated DG step) / t(DG-K top-p step), the median of per-round ratios of the two
measured side by side (benchtable.interleaved), one thread, over a small grid:
  MNIST     MLP width (two hidden layers) x batch x keep rate p
  reversal  model width d (3 layers, 4 heads, FFN 2d) x horizon H x keep rate p, with the
            token-level gate and the sequence-level gate (method.unit=sequence), 100 episodes
The figure draws one cell per point, coloured by speedup (above 1: the gate saves time).

    python scripts/regime_map.py [--rounds 3] [--out results/regime_map_cpu.csv] [--figure docs/img/regime_map_cpu.png]
    python scripts/regime_map.py --draw-only --out results/regime_map_cpu.csv --figure docs/img/regime_map_cpu.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchtable import interleaved, machine, med, write_csv  # noqa: E402

# A small grid: on a shared 2-core machine each point costs minutes of wall-clock under load
MNIST_WIDTHS, MNIST_BATCHES, MNIST_KEEP = (100, 512), (100, 1000), (0.1, 0.03)
REV_WIDTHS, REV_HORIZONS, REV_KEEP = (64, 128), (5, 10), (0.1,)


def grid():
    """(task overrides, labels, {name: Method factory}) per point."""
    from kondo_bench.methods import Method

    for w in MNIST_WIDTHS:
        for b in MNIST_BATCHES:
            yield (["task=mnist", f"task.hidden=[{w},{w}]", f"task.batch_size={b}"],
                   {"task": "mnist", "width": w, "size": b},
                   {("token", p): (lambda p=p: Method("dgk", gate="topk", keep_rate=p)) for p in MNIST_KEEP})
    for d in REV_WIDTHS:
        for h in REV_HORIZONS:
            gated = {}
            for p in REV_KEEP:
                gated[("token", p)] = lambda p=p: Method("dgk", gate="topk", keep_rate=p)
                gated[("sequence", p)] = lambda p=p: Method("dgk", gate="topk", keep_rate=p, unit="sequence")
            yield (["task=reversal", f"task.d_model={d}", f"task.ffn={2 * d}", f"task.horizon={h}"],
                   {"task": "reversal", "width": d, "size": h}, gated)


def measure(rounds: int) -> list[dict]:
    import torch

    import bench_speed as b
    from kondo_bench.config import register
    from kondo_bench.methods import Method
    from kondo_bench.tasks import make_task

    torch.set_num_threads(1)
    register()
    rows = []
    for overrides, labels, gated in grid():
        cfg = b.compose_cfg([*overrides, "device=cpu"])
        torch.manual_seed(0)
        task = make_task(cfg, torch.device("cpu"))
        fns = {"dg": b.step_fn(task, Method("dg", eta=cfg.method.eta))}
        fns.update({key: b.step_fn(task, make()) for key, make in gated.items()})
        one = med(interleaved({"dg": fns["dg"]}, 1, 2, warmup=1)["dg"]["cpu"])
        calls = max(2, min(100, round(0.15 / one)))  # about 0.15 s of ungated steps a visit
        t = interleaved(fns, rounds, calls, warmup=1)
        for (unit, p) in gated:
            row = {**labels, "gate_unit": unit, "keep_rate": p, "dg_ms": round(med(t["dg"]["cpu"]) * 1e3, 3),
                   "dgk_ms": round(med(t[(unit, p)]["cpu"]) * 1e3, 3)}
            for clock in ("cpu", "wall"):
                ratio = [x / y for x, y in zip(t["dg"][clock], t[(unit, p)][clock])]
                row[f"speedup_{clock}"] = round(med(ratio), 3)
                row[f"speedup_{clock}_min"], row[f"speedup_{clock}_max"] = round(min(ratio), 3), round(max(ratio), 3)
            rows.append({**row, "rounds": rounds, "calls": calls, **machine()})
            print(" ".join(f"{k}={v}" for k, v in rows[-1].items() if k not in ("cpu", "torch", "date")), flush=True)
    return rows


def draw(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), gridspec_kw={"width_ratios": [3, 4]}, layout="constrained")
    norm = TwoSlopeNorm(vcenter=1.0, vmin=0.5, vmax=3.0)
    for ax, task, ylabel, xlabel in (
            (axes[0], "mnist", "MLP width × batch", "keep rate p"),
            (axes[1], "reversal", "model width d × horizon H", "gate unit, keep rate p")):
        sub = [r for r in rows if r["task"] == task]
        ys = list(dict.fromkeys((int(r["width"]), int(r["size"])) for r in sub))
        xs = list(dict.fromkeys((r["gate_unit"], float(r["keep_rate"])) for r in sub))
        grid_ = [[next(float(r["speedup_cpu"]) for r in sub if (int(r["width"]), int(r["size"])) == y
                       and (r["gate_unit"], float(r["keep_rate"])) == x) for x in xs] for y in ys]
        im = ax.imshow(grid_, cmap="RdYlGn", norm=norm, aspect="auto")
        for i, line in enumerate(grid_):
            for j, v in enumerate(line):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9)
        ax.set_xticks(range(len(xs)), [f"{p:g}" if task == "mnist" else f"{u[:3]} {p:g}" for u, p in xs])
        ax.set_yticks(range(len(ys)), [f"{w} × {s}" for w, s in ys])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title({"mnist": "MNIST: t(DG) / t(DG-K)", "reversal": "token reversal: t(DG) / t(DG-K)"}[task])
    fig.colorbar(im, ax=axes, shrink=0.8, label="speedup (CPU time, one thread; > 1: the gate saves time)")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None, help="CSV of the map (read back with --draw-only)")
    ap.add_argument("--figure", default=None, help="PNG of the map")
    ap.add_argument("--draw-only", action="store_true", help="draw the figure from --out without measuring")
    args = ap.parse_args(argv)
    if args.draw_only:
        import csv

        rows = list(csv.DictReader(open(args.out)))
    else:
        rows = measure(args.rounds)
        write_csv(rows, args.out)
    if args.figure:
        draw(rows, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
