"""Why does the hard top-k delight gate fail on token reversal where a random gate learns?

Measured, not guessed. A policy is trained (by DG, or by the gate under study) to a few
checkpoints; at each, fresh batches are screened by each gate form at the same keep rate
ρ of tokens, and two things are reported per form:

1. **What it keeps**: among kept tokens, the share that are correct, the share with U > 0,
   their mean surprisal, the share of kept tokens that are *wrong tokens inside
   better-than-average answers* (U > 0), and how many distinct answers a batch's kept tokens
   come from.
2. **Where its update points**: the cosine between the gate's expected gradient (its loss's
   gradient averaged over the batches) and the policy gradient itself (ungated PG averaged
   over many more batches: the expected reward's gradient up to noise), and the mean cosine
   of single-batch gated gradients with it. A gate whose expected update is orthogonal or
   opposed to the policy gradient cannot make progress, however few backward passes it pays.

    python scripts/reversal_gate_mechanism.py [--train dg|topk] [--steps 0 200 500]
        [--batches 40] [--reference 200] [KEY=VALUE ...]

Printed, not tested: a diagnostic for results/REPORT.md, one thread, a few minutes.
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
from kondo_bench.train import learn_step  # noqa: E402

RHO = 0.03
GATES = {
    "top-k": dict(gate="topk"),
    "top-k ties all": dict(gate="topk", ties="all"),
    "Bernoulli η=0.3": dict(gate="quantile", eta=0.3),
    "Bernoulli η=1": dict(gate="quantile", eta=1.0),
    "sequence top-k": dict(gate="topk", unit="sequence"),
    "random": dict(gate="topk", signal="random"),
}


def gradient(task, batch, method) -> torch.Tensor | None:
    """The gradient `method`'s learn step would apply to this batch (no optimiser step)."""
    captured = {}

    def capture(loss):
        task.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        captured["g"] = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                                   for p in task.parameters()])

    learn, task.learn = task.learn, capture
    try:
        learn_step(task, batch, method.select(batch.advantage, batch.logp), method)
    finally:
        task.learn = learn
    return captured.get("g")


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a[None], b[None])[0])


def measure(task, methods: dict, batches: int, reference: int) -> dict:
    pg = Method("pg")
    ref = sum(gradient(task, task.act(), pg) for _ in range(reference)) / reference
    out = {}
    for name, method in methods.items():
        grads, stats = [], torch.zeros(6)
        for _ in range(batches):
            batch = task.act()
            keep = method.select(batch.advantage, batch.logp).keep
            correct = batch.data["action"] == batch.data["target"]
            pos = batch.advantage > 0
            n = keep.sum().clamp(min=1)
            stats += torch.stack([correct[keep].sum() / n, pos[keep].sum() / n, (-batch.logp)[keep].sum() / n,
                                  (~correct & pos)[keep].sum() / n, keep.any(1).sum().float(),
                                  (~correct & pos).float().mean()])
            grads.append(gradient(task, batch, method))
        mean = torch.stack(grads).mean(0)
        stats /= batches
        out[name] = {"correct": stats[0], "U>0": stats[1], "surprisal": stats[2], "wrong in U>0": stats[3],
                     "answers": stats[4], "cos mean": cos(mean, ref),
                     "cos batch": sum(cos(g, ref) for g in grads) / len(grads)}
    base = {"wrong in U>0 (all tokens)": float(stats[5])}
    return out, base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", choices=["dg", "topk"], default="dg", help="what trains the policy between checkpoints")
    ap.add_argument("--steps", type=int, nargs="+", default=[0, 200, 500], help="training steps at which to measure")
    ap.add_argument("--batches", type=int, default=40, help="fresh batches screened per gate and checkpoint")
    ap.add_argument("--reference", type=int, default=200, help="batches averaged for the policy gradient")
    ap.add_argument("--seed", type=int, default=0)
    args, overrides = ap.parse_known_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    register()
    with initialize_config_module("kondo_bench.conf", version_base="1.3"):
        cfg = compose("config", overrides=["task=reversal", "method=dg", *overrides])
    task = make_task(cfg, torch.device("cpu"))
    trainer = Method("dg") if args.train == "dg" else Method("dgk", gate="topk", keep_rate=RHO)
    methods = {name: Method("dgk", keep_rate=RHO, **kw) for name, kw in GATES.items()}
    print(f"token reversal H = {task.H}, M = {task.M}, batch {cfg.task.batch_size}; policy trained by "
          f"{'DG' if args.train == 'dg' else 'top-k ρ = 3 %'}; gates at ρ = {RHO:g} of tokens; "
          f"{args.batches} batches per gate, policy gradient from {args.reference}")
    done = 0
    for target in sorted(args.steps):
        for _ in range(target - done):
            batch = task.act() if trainer.gated else task.act_with_grad()
            learn_step(task, batch, trainer.select(batch.advantage, batch.logp), trainer)
        done = target
        err = 1 - task.evaluate()["seq_error"]
        out, base = measure(task, methods, args.batches, args.reference)
        print(f"\nafter {target} steps: sampled sequence reward {err:.3f}; share of wrong tokens in U > 0 "
              f"answers among all tokens {base['wrong in U>0 (all tokens)']:.3f}")
        print("| gate | kept correct | kept U > 0 | kept surprisal | kept wrong in U > 0 | answers a batch | "
              "cos(E gate grad, PG) | mean cos(batch grad, PG) |")
        print("|---|---|---|---|---|---|---|---|")
        for name, r in out.items():
            print(f"| {name} | {r['correct']:.3f} | {r['U>0']:.3f} | {r['surprisal']:.3f} | {r['wrong in U>0']:.3f} | "
                  f"{r['answers']:.1f} | {r['cos mean']:+.3f} | {r['cos batch']:+.3f} |", flush=True)


if __name__ == "__main__":
    main()
