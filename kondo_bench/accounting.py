"""What a run paid: sample counts, a modelled cost, and synchronised wall-clock per phase.

Three measures, never mixed:
- counts: forward (screening) samples, backward samples (rows that ran a backward pass),
  backward units (tokens for sequence tasks; equal to samples otherwise), and the
  re-forward samples a gated step runs with autograd on its kept rows;
- modelled cost in forward-equivalents: `cost = forward + c * backward` is the paper's
  measure (it charges nothing for re-running kept rows), and
  `cost_with_reforward = forward + reforward + c * backward` is what this code pays;
- wall-clock seconds per phase (act, screen, learn, eval), synchronised on CUDA so that
  asynchronous kernels are charged to the phase that launched them; and the process's CPU
  seconds in the training phases (`time_train_cpu`).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch


@dataclass
class Counters:
    steps: int = 0  # screened batches
    optimizer_steps: int = 0  # optimiser steps taken: 0 when nothing was kept, PPO's epochs x minibatches
    forward_samples: int = 0
    backward_samples: int = 0
    backward_units: int = 0
    reforward_samples: int = 0

    def record(self, n_screened: int, learned) -> None:
        """One screened batch and what its learn step did (a train.Learned)."""
        self.steps += 1
        self.forward_samples += n_screened
        self.backward_samples += learned.backward_rows
        self.backward_units += learned.backward_units
        self.optimizer_steps += learned.optimizer_steps
        self.reforward_samples += learned.reforward_rows

    def costs(self, cost_ratio: float) -> dict:
        return {
            "cost": self.forward_samples + cost_ratio * self.backward_samples,
            "cost_with_reforward": self.forward_samples + self.reforward_samples
            + cost_ratio * self.backward_samples,
        }

    def as_dict(self, cost_ratio: float) -> dict:
        return {**asdict(self), **self.costs(cost_ratio)}


PHASES = ("act", "screen", "learn", "eval")


@dataclass
class PhaseTimer:
    """Accumulates wall-clock seconds per phase; `sync` makes CUDA timings honest."""

    device: torch.device
    seconds: dict = field(default_factory=lambda: {p: 0.0 for p in PHASES})

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def phase(self, name: str):
        self._sync()
        start, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self._sync()
            self.seconds[name] += time.perf_counter() - start
            if name != "eval":  # the process's CPU seconds in the training phases: what a busy
                # neighbour disturbs less than wall-clock, which counts the waits for a core
                self.seconds["train_cpu"] = self.seconds.get("train_cpu", 0.0) + time.process_time() - cpu

    def as_dict(self) -> dict:
        out = {f"time_{p}": round(s, 6) for p, s in self.seconds.items()}  # time_train_cpu among them
        out["time_train"] = round(sum(self.seconds[p] for p in PHASES if p != "eval"), 6)
        return out
