"""Where a step pays beyond its reference: the ungated step against a hand-written loop, and the
gated step against its bound, split into parts (figures, not a test).

For each case, in one process, one thread, every timing interleaved with the others
(benchtable.interleaved: rounds that visit each in turn), this thread's CPU time:
  plain      bench_speed's hand-written full-batch DG loop; `plain+key` the same loop reading
             one key of the run's config each step, as a task that reads its config per step would
  dg         kondo-bench's ungated DG step (bench_speed's `dg`)
  A, F, FB, O  bench_speed's parts: acting without autograd, the forward pass with autograd over
             every row, forward and backward, the optimiser step
  fb_k       a forward and backward pass over k rows alone, k = the rows a gate at p keeps
             (MNIST: round(p B) images; reversal, the sequence-level gate: round(p B) answers)
  composed   the gated step without its screen and gate: act, then the forward and backward pass
             over k rows of that batch, then the optimiser step, back to back
  dgk        kondo-bench's DG-K top-p step (reversal: method.unit=sequence)
Columns (times are medians over rounds; ratios are medians of per-round ratios, so load that
comes and goes cancels, and the three factors multiply to about dgk / bound):
  key_us      (plain+key / plain - 1) x plain: what one config read costs inside a step
  bound       A + p (F + B) + O, bench_speed's ideal step; realised/ideal = bound / dgk
  rows_bound  A + fb_k + O: the bound charging what a pass over k rows really costs
  so dgk / bound = (rows_bound / bound) x (composed / rows_bound) x (dgk / composed):
  fixed       rows_bound / bound: a k-row pass costs more than p of a full one (per-operator cost)
  compose     composed / rows_bound: the same parts back to back in one step, not each alone
  library     dgk / composed: the screen, the gate, the keep mask and the library's learn step

    python scripts/step_overhead.py [--rounds 40] [--cases mlp100x100,mlp100x1000,tf64x3x100] [--out CSV]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchtable import interleaved, machine, med, print_table, write_csv  # noqa: E402

CASES = {  # name: (task overrides, keep rates)
    "mlp100x100": (["task=mnist", "task.batch_size=100"], (0.3, 0.1, 0.03)),
    "mlp100x1000": (["task=mnist", "task.batch_size=1000"], (0.1, 0.03)),
    "mlp512x1000": (["task=mnist", "task.hidden=[512,512]", "task.batch_size=1000"], (0.03,)),
    "mlp512x4096": (["task=mnist", "task.hidden=[512,512]", "task.batch_size=4096"], (0.03,)),
    "tf64x3x100": (["task=reversal", "task.batch_size=100"], (0.1, 0.03)),
}
KEYS = ["case", "keep_rate", "k", "plain_ms", "dg_ms", "dg_vs_plain", "key_us", "dgk_ms", "bound_ms",
        "rows_bound_ms", "composed_ms", "realised_over_ideal", "fixed", "compose", "library", "load_avg_1m"]


def k_rows(n: int, keep_rate: float) -> torch.Tensor:
    """The k = max(1, round(p n)) rows a top-p gate keeps of n, spread over the batch (reversal:
    over its prompts, as kept answers are)."""
    k = max(1, round(keep_rate * n))
    return torch.arange(k) * (n // k)


def fns_for(task, cfg, keep_rates) -> dict:
    import bench_speed as b
    from kondo_bench.methods import Method

    eta, mnist = cfg.method.eta, cfg.task.name == "mnist"
    plain = b.plain_mnist_step(task, cfg.task.batch_size, eta) if mnist else b.plain_reversal_step(task, eta)

    def plain_key():
        task.cfg.batch_size  # noqa: B018 (one read of a config key, the cost being measured)
        plain()

    fns = {**b.part_fns(task), "plain": plain, "plain+key": plain_key, "dg": b.step_fn(task, Method("dg", eta=eta))}
    batch = task.act()
    n = batch.reward.shape[0]
    for p in keep_rates:
        rows = k_rows(n, p).to(task.device)

        def fb_k(rows=rows):
            task.optimizer.zero_grad(set_to_none=True)
            (-task.logp(batch, rows).sum() / n).backward()

        def composed(rows=rows):
            fresh = task.act()
            task.learn(-task.logp(fresh, rows).sum() / n)

        unit = "token" if mnist else "sequence"
        fns.update({f"fb_k@{p}": fb_k, f"composed@{p}": composed,
                    f"dgk@{p}": b.step_fn(task, Method("dgk", gate="topk", keep_rate=p, unit=unit))})
    return fns


def measure(case: str, rounds: int, budget: float) -> list[dict]:
    import bench_speed as b
    from kondo_bench.tasks import make_task

    overrides, keep_rates = CASES[case]
    cfg = b.compose_cfg([*overrides, "device=cpu"])
    torch.manual_seed(0)
    task = make_task(cfg, torch.device("cpu"))
    fns = fns_for(task, cfg, keep_rates)
    c0 = time.thread_time()
    for _ in range(3):
        fns["dg"]()
    calls = max(1, round(budget / ((time.thread_time() - c0) / 3)))
    t = {k: v["cpu"] for k, v in interleaved(fns, rounds, calls, warmup=1).items()}
    n_rounds = len(t["dg"])

    def ratio(num, den) -> float:  # the median of per-round ratios: load that comes and goes cancels
        return med([num(r) / den(r) for r in range(n_rounds)])

    def bound(p):  # per round: A + p (F + B) + O, B measured as FB - F (bench_speed's)
        return lambda r: t["A"][r] + p * (t["F"][r] + max(t["FB"][r] - t["F"][r], 1e-9)) + t["O"][r]

    def rows_bound(p):
        return lambda r: t["A"][r] + t[f"fb_k@{p}"][r] + t["O"][r]

    def of(name):
        return lambda r: t[name][r]

    m = {k: med(v) for k, v in t.items()}
    rows = []
    for p in keep_rates:
        rows.append({"case": case, "keep_rate": p, "k": max(1, round(p * cfg.task.batch_size)),
                     "plain_ms": round(m["plain"] * 1e3, 3), "dg_ms": round(m["dg"] * 1e3, 3),
                     "dg_vs_plain": round(ratio(of("dg"), of("plain")), 3),
                     "key_us": round((ratio(of("plain+key"), of("plain")) - 1) * m["plain"] * 1e6, 1),
                     "dgk_ms": round(m[f"dgk@{p}"] * 1e3, 3), "bound_ms": round(med(map(bound(p), range(n_rounds))) * 1e3, 3),
                     "rows_bound_ms": round(med(map(rows_bound(p), range(n_rounds))) * 1e3, 3),
                     "composed_ms": round(m[f"composed@{p}"] * 1e3, 3),
                     "realised_over_ideal": round(ratio(bound(p), of(f"dgk@{p}")), 3),
                     "fixed": round(ratio(rows_bound(p), bound(p)), 3),
                     "compose": round(ratio(of(f"composed@{p}"), rows_bound(p)), 3),
                     "library": round(ratio(of(f"dgk@{p}"), of(f"composed@{p}")), 3),
                     "A_ms": round(m["A"] * 1e3, 3), "F_ms": round(m["F"] * 1e3, 3), "FB_ms": round(m["FB"] * 1e3, 3),
                     "O_ms": round(m["O"] * 1e3, 3), "fb_k_ms": round(m[f"fb_k@{p}"] * 1e3, 3),
                     "clock": "cpu", "rounds": rounds, "calls": calls, **machine()})
        print(" ".join(f"{k}={rows[-1][k]}" for k in KEYS), flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="mlp100x100,mlp100x1000,tf64x3x100", help=f"of {', '.join(CASES)}")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--budget", type=float, default=0.04, help="seconds of ungated steps a visit")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="CSV file for the table")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from kondo_bench.config import register

    register()
    rows = []
    for case in args.cases.split(","):
        rows += measure(case, args.rounds, args.budget)
    print_table(rows, KEYS)
    write_csv(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
