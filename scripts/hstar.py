"""H*: the longest reversal horizon a method solves within a budget.

Runs task=reversal at each horizon H (and seed) through the same config and loop as
`kondo-bench run`, and calls H solved when its final reward, 1 - expected_error (the
expected reward on fresh prompts), averaged over seeds, exceeds the threshold (0.75, as in
the paper's Fig 10).
H* is the longest solved H. Every run keeps its folder (metrics.jsonl, summary.json).

    python scripts/hstar.py --horizons 6 8 10 12 14 --method dg --steps 1000
    python scripts/hstar.py --horizons 10 20 30 --method dgk --steps 10000 keep_rate=0.03 --seeds 0 1 2

Extra KEY=VALUE arguments are Hydra overrides for every run (task.vocab=4, device=cuda, ...).
The paper's budget is 1 M forward samples: 10,000 steps of 100 episodes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module

from kondo_bench.config import register
from kondo_bench.train import run_experiment


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--horizons", type=int, nargs="+", required=True, help="the H values to try")
    p.add_argument("--method", default="dg", help="pg | dg | dgk | ce (default dg)")
    p.add_argument("--steps", type=int, default=1000, help="budget in steps of task.batch_size episodes")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threshold", type=float, default=0.75, help="solved: mean final reward above this")
    p.add_argument("--out", default=None, help="folder for the run folders (default runs/hstar/<time>)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    return p.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    args, overrides = parse(argv)
    bad = [o for o in overrides if "=" not in o]
    if bad:
        print(f"hstar: error: not a KEY=VALUE override: {' '.join(bad)}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out or f"runs/hstar/{time.strftime('%Y-%m-%d_%H-%M-%S')}_{args.method}")
    register()
    table = []
    with initialize_config_module("kondo_bench.conf", version_base="1.3"):
        for h in sorted(set(args.horizons)):
            rewards, seconds = [], 0.0
            for seed in args.seeds:
                cfg = compose("config", overrides=[
                    "task=reversal", f"method={args.method}", f"task.horizon={h}", f"task.steps={args.steps}",
                    f"task.eval_every={args.steps}", f"seed={seed}", "progress=false", *overrides])
                summary = run_experiment(cfg, out / f"H{h}_seed{seed}")
                rewards.append(1 - summary["final_quality"])
                seconds += summary["wall_seconds"]
            mean = sum(rewards) / len(rewards)
            table.append((h, mean, min(rewards), mean > args.threshold, seconds))
            print(f"H={h:<3d} reward {mean:.3f} (min over seeds {min(rewards):.3f}) "
                  f"{'solved' if mean > args.threshold else 'not solved'}  {seconds:.1f} s", flush=True)

    solved = [h for h, _, _, ok, _ in table if ok]
    hstar = max(solved) if solved else None
    budget = args.steps * cfg.task.batch_size
    print(f"\nmethod={args.method} {' '.join(overrides)}  budget {args.steps:,} steps = {budget:,} "
          f"forward samples  seeds {args.seeds}  threshold {args.threshold}")
    print(f"{'H':>4}  {'reward':>7}  {'min':>7}  {'solved':>6}  {'seconds':>8}")
    for h, mean, low, ok, sec in table:
        print(f"{h:>4}  {mean:>7.3f}  {low:>7.3f}  {'yes' if ok else 'no':>6}  {sec:>8.1f}")
    print(f"H* = {hstar if hstar is not None else 'none (no H solved)'}    runs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
