"""Profile: where a training step's time goes, gated and ungated (figures, not a test).

For each case (the MNIST default: 100 images, MLP 784-100-100-10; the reversal default:
100 episodes, H = 10, a 64-wide 3-layer transformer) and each method, one thread:

  phases   a wall-clock breakdown of the step by phase, timed around the same library calls
           the loop makes, in its order (`phased_step` below):
             act          the task's acting forward pass and sampling (with autograd when ungated)
             screen       delight, the estimator's coefficients, the screening score
             gate         the gate's keep mask (and, ungated, the all-ones mask)
             gather       the kept rows' indices and the kept-unit count
             reforward    the compacted forward pass with autograd over the kept rows
                          (the task's own gather of their inputs included)
             loss         the estimator's loss terms, summed and scaled
             backward     zero_grad and loss.backward()
             optimiser    the optimiser step
             bookkeeping  the numerics guard, the counters, the interval sums
           Phases are timed in this thread's CPU time. `step_ms` (wall-clock) and `step_cpu_ms`
           time the real loop body (draw, select, learn_step, guard, counters) alone,
           interleaved with the phased step; `phases_ms` is the sum of the phases.
  ops      torch.profiler's top operators by self CPU time over the real step.

Rounds alternate the methods (interleaved); each cell is the median over rounds, with min
and max. Every row records threads, CPU model and load average.

    python scripts/profile_step.py [--rounds 7] [--calls 100] [--out results/profile_cpu.csv]
                                   [--ops-out results/profile_ops_cpu.csv]
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from hydra import compose, initialize_config_module

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchtable import machine, med, print_table, write_csv  # noqa: E402

from kondo_bench.accounting import Counters  # noqa: E402
from kondo_bench.config import register  # noqa: E402
from kondo_bench.core import delight, screening_score, sequence_score  # noqa: E402
from kondo_bench.methods import Method  # noqa: E402
from kondo_bench.stopping import NumericsGuard  # noqa: E402
from kondo_bench.tasks import draw, make_task  # noqa: E402
from kondo_bench.train import learn_step, new_interval  # noqa: E402

CALLS_SCALE = {"mnist": 1.0, "mnist-b1000": 0.2, "reversal": 0.1}  # a reversal step is ~40x an MNIST one: fewer calls
PHASES = ("act", "screen", "gate", "gather", "reforward", "loss", "backward", "optimiser", "bookkeeping")
CASES = {  # name: (task overrides, {method label: Method})
    "mnist": (["task=mnist"], {"pg": lambda: Method("pg"),
                               "dgk-0.03": lambda: Method("dgk", gate="topk", keep_rate=0.03)}),
    "mnist-b1000": (["task=mnist", "task.batch_size=1000"],
                    {"pg": lambda: Method("pg"), "dgk-0.03": lambda: Method("dgk", gate="topk", keep_rate=0.03)}),
    "reversal": (["task=reversal"], {"pg": lambda: Method("pg"),
                                     "dgk-0.1-token": lambda: Method("dgk", gate="topk", keep_rate=0.1),
                                     "dgk-0.1-sequence": lambda: Method("dgk", gate="topk", keep_rate=0.1,
                                                                        unit="sequence")}),
}


class Loop:
    """One task and method with the loop's per-step state (guard, counters, interval)."""

    def __init__(self, task, method: Method):
        self.task, self.method = task, method
        self.guard, self.counters, self.interval = NumericsGuard(task.device), Counters(), new_interval()
        self.grad = not method.gated

    def step(self) -> None:
        """The loop body of train.train, without its phase timers."""
        batch = draw(self.task, self.grad)
        sel = self.method.select(batch.advantage, batch.logp)
        self.guard.watch("delight", sel.delight)
        learned = learn_step(self.task, batch, sel, self.method, self.guard)
        self._account(batch, sel, learned)

    def _account(self, batch, sel, learned) -> None:
        self.counters.record(batch.reward.numel(), learned)
        self.interval["reward"] += batch.reward.sum()
        self.interval["screened_units"] += sel.keep.numel()
        self.interval["kept_units"] += learned.kept_units
        self.interval["steps"] += 1

    def phased_step(self, seconds: dict) -> None:
        """The same calls as `step`, in its order, with a clock between phases (CPU: no sync needed).
        The clock is this thread's CPU time: on a loaded machine, wall-clock laps of tens of
        microseconds mostly measure when the scheduler ran something else."""
        task, m, clock = self.task, self.method, time.thread_time
        t = clock()

        def lap(name):
            nonlocal t
            now = clock()
            seconds[name] = seconds.get(name, 0.0) + now - t
            t = now

        batch = draw(task, self.grad)
        lap("act")
        adv, logp = batch.advantage.detach(), batch.logp.detach()
        chi = delight(adv, logp)
        coef = m.estimator.coef(adv, logp, chi)
        score = screening_score(m.signal, adv, logp, chi, m.signal_alpha) if m.gate.name != "none" else None
        lap("screen")
        if score is None:
            keep = torch.ones_like(chi, dtype=torch.bool)
        elif m.unit.value == "sequence" and score.dim() > 1:
            keep, _ = m.gate.keep(sequence_score(score, m.unit_reduce))
            keep = keep.reshape(-1, *[1] * (score.dim() - 1)).expand_as(score)
            coef = torch.where(keep, coef, 0.0)
        else:
            keep, _ = m.gate.keep(score)
            coef = torch.where(keep, coef, 0.0)
        lap("gate")
        n_rows, n_units = keep.shape[0], keep.numel()
        if batch.logp_grad is not None:
            logp_new, logp_old, mb, kept = batch.logp_grad, batch.logp, None, n_units
        else:
            mb = keep.reshape(n_rows, -1).any(1).nonzero()[:, 0]
            kept = int(keep.sum())
            lap("gather")
            logp_new = task.logp(batch, mb)
            lap("reforward")
            coef, logp_old = torch.index_select(coef, 0, mb), torch.index_select(batch.logp, 0, mb)
        loss = m.loss(coef, logp_new, logp_old).sum() / n_units
        lap("loss")
        task.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lap("backward")
        task.optimizer.step()
        lap("optimiser")
        self.guard.watch("delight", chi)
        self.guard.watch("loss", loss)
        rows = n_rows if mb is None else mb.numel()
        learned = type("L", (), {"backward_rows": rows, "backward_units": kept, "kept_units": kept,
                                 "optimizer_steps": 1, "reforward_rows": 0 if mb is None else rows})
        self._account(batch, type("S", (), {"keep": keep}), learned)
        lap("bookkeeping")


def profile_case(case: str, rounds: int, calls: int, top: int) -> tuple[list[dict], list[dict]]:
    overrides, methods = CASES[case]
    calls = max(3, round(calls * CALLS_SCALE[case]))
    with initialize_config_module("kondo_bench.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, "device=cpu"])
    torch.manual_seed(0)
    loops = {}
    for label, make in methods.items():
        task = make_task(cfg, torch.device("cpu"))
        loops[label] = Loop(task, make())
    step_s, step_cpu = {k: [] for k in loops}, {k: [] for k in loops}
    phase_s = {k: {p: [] for p in PHASES} for k in loops}
    names = list(loops)
    for r in range(rounds):  # interleaved: each round visits every method, rotating the order
        for label in names[r % len(names):] + names[:r % len(names)]:
            loop = loops[label]
            for _ in range(3):
                loop.step()
            t0, c0 = time.perf_counter(), time.thread_time()
            for _ in range(calls):
                loop.step()
            step_s[label].append((time.perf_counter() - t0) / calls)
            step_cpu[label].append((time.thread_time() - c0) / calls)
            acc: dict = {}
            for _ in range(calls):
                loop.phased_step(acc)
            for p in PHASES:
                phase_s[label][p].append(acc.get(p, 0.0) / calls)
    rows, ops = [], []
    for label, loop in loops.items():
        ms = lambda xs: round(med(xs) * 1e3, 4)  # noqa: E731
        row = {"case": case, "method": label, "gated": loop.method.gated,
               "step_ms": ms(step_s[label]), "step_min_ms": round(min(step_s[label]) * 1e3, 4),
               "step_max_ms": round(max(step_s[label]) * 1e3, 4), "step_cpu_ms": ms(step_cpu[label]),
               "step_cpu_min_ms": round(min(step_cpu[label]) * 1e3, 4),
               "step_cpu_max_ms": round(max(step_cpu[label]) * 1e3, 4),
               "phases_ms": round(sum(med(phase_s[label][p]) for p in PHASES) * 1e3, 4)}
        row.update({f"{p}_ms": ms(phase_s[label][p]) for p in PHASES})
        row.update({"rounds": rounds, "calls": calls, **machine()})
        rows.append(row)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                loop.step()
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        for e in events[:top]:
            ops.append({"case": case, "method": label, "op": e.key, "calls_per_step": round(e.count / calls, 2),
                        "self_us_per_step": round(e.self_cpu_time_total / calls, 2),
                        "self_share": round(e.self_cpu_time_total / total, 4), **machine()})
    return rows, ops


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="mnist,reversal")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=100, help="steps per method per round (reversal: a tenth)")
    ap.add_argument("--top", type=int, default=12, help="operators per case and method in the ops CSV")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="CSV of the phase breakdown")
    ap.add_argument("--ops-out", default=None, help="CSV of torch.profiler's top operators")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    register()
    rows, ops = [], []
    for case in args.cases.split(","):
        r, o = profile_case(case, args.rounds, args.calls, args.top)
        rows += r
        ops += o
    print_table(rows, ["case", "method", "step_ms", "step_cpu_ms", "phases_ms", *[f"{p}_ms" for p in PHASES], "load_avg_1m"])
    print_table(ops, ["case", "method", "op", "calls_per_step", "self_us_per_step", "self_share"])
    write_csv(rows, args.out)
    write_csv(ops, args.ops_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
