"""Which tokens does each gate keep on token reversal? The share of kept tokens that are correct.

The reversal advantage is per sequence, broadcast to its tokens; delight multiplies it by
each token's surprisal. Inside a better-than-average sequence, the most surprising tokens
are the ones the policy disagreed with, and once the policy beats chance those are mostly
the *wrong* tokens. This script measures that: it trains DG for a few checkpoints' worth of
steps and, at each checkpoint, screens fresh batches and reports, among the tokens each
gate keeps, the share that are correct (against the share among all tokens, and among
tokens with U > 0):

    python scripts/reversal_kept_tokens.py [--steps 0 100 200 400] [--batches 20] [KEY=VALUE ...]

Printed, not tested: a diagnostic for results/REPORT.md, one thread, about a minute.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hydra import compose, initialize_config_module  # noqa: E402

from kondo_bench.config import register  # noqa: E402
from kondo_bench.methods import Method  # noqa: E402
from kondo_bench.tasks import make_task  # noqa: E402
from kondo_bench.tasks.reversal import target_of  # noqa: E402
from kondo_bench.train import learn_step  # noqa: E402

GATES = {"delight top-3%": ("delight", 0.03), "delight top-10%": ("delight", 0.1), "delight top-30%": ("delight", 0.3),
         "random 3%": ("random", 0.03)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[0, 100, 200, 400], help="DG steps at which to measure")
    ap.add_argument("--batches", type=int, default=20, help="fresh batches screened per checkpoint")
    ap.add_argument("--seed", type=int, default=0)
    args, overrides = ap.parse_known_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    register()
    with initialize_config_module("kondo_bench.conf", version_base="1.3"):
        cfg = compose("config", overrides=["task=reversal", "method=dg", *overrides])
    task = make_task(cfg, torch.device("cpu"))
    dg = Method("dg")
    print(f"share of correct tokens among those kept (H = {task.H}, M = {task.M}, {args.batches} batches "
          f"of {cfg.task.batch_size} episodes per row)")
    print("| DG steps | sequence error | all tokens | tokens with U > 0 | " + " | ".join(GATES) + " |")
    print("|---|---|---|---|" + "---|" * len(GATES))
    done = 0
    for target_step in sorted(args.steps):
        for _ in range(target_step - done):
            batch = task.act_with_grad()
            learn_step(task, batch, dg.select(batch.advantage, batch.logp), dg)
        done = target_step
        kept = {name: [0, 0] for name in ("all", "U>0", *GATES)}
        err = 0.0
        for _ in range(args.batches):
            with torch.no_grad():
                batch = task.act()
            target = target_of(batch.data["prompt"], cfg.task.variant, task.M)[batch.data["group"]]
            correct = batch.data["action"] == target
            err += 1 - batch.reward.mean().item()
            masks = {"all": torch.ones_like(correct), "U>0": batch.advantage > 0}
            for name, (signal, rho) in GATES.items():
                masks[name] = Method("dgk", gate="topk", keep_rate=rho, signal=signal).select(
                    batch.advantage, batch.logp).keep
            for name, m in masks.items():
                kept[name][0] += int((correct & m).sum())
                kept[name][1] += int(m.sum())
        share = {k: f"{c / n:.3f}" if n else "–" for k, (c, n) in kept.items()}
        print(f"| {target_step} | {err / args.batches:.3f} | {share['all']} | {share['U>0']} | "
              + " | ".join(share[g] for g in GATES) + " |", flush=True)


if __name__ == "__main__":
    main()
