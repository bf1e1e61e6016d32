"""What stops a run inside its loop, and how.

- `StopFlag`: Ctrl-C or SIGTERM asks the loop to stop at the next step boundary; long loops
  inside a step call `check_stop()`, and a second signal stops at once (`Stopped`).
- `NumericsGuard`: a non-finite delight, loss or weight stops the run, naming the first
  step and the quantity (`NumericsError`). Flags are kept on the device and read only at
  evaluations, so the guard adds no host synchronisation per step.
"""

from __future__ import annotations

import math
import signal
import time
from contextlib import contextmanager

import torch


class NumericsError(Exception):
    pass


class Stopped(Exception):
    """The run stops now, inside its step: a second signal, or a first one that a long loop
    (sampling, evaluation) has seen for longer than `StopFlag.GRACE` seconds."""


class StopFlag:
    """Ctrl-C or SIGTERM: the first asks the loop to stop at the next step boundary (its last
    row evaluated and written); long loops inside a step call `check_stop()`, so a step that
    would take minutes stops within about GRACE seconds; a second signal stops at once. Either
    way the run writes an "interrupted" summary."""

    GRACE = 1.0  # seconds a long loop lets the current step finish before it gives up on it

    def __init__(self):
        self.signal: str | None = None
        self.at = 0.0

    @contextmanager
    def installed(self):
        global _ACTIVE

        def handler(signum, _frame):
            name = signal.Signals(signum).name
            if self.signal is not None:
                self.signal = name
                raise Stopped(f"a second {name}")
            self.signal, self.at = name, time.monotonic()

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        previous, _ACTIVE = _ACTIVE, self
        try:
            yield self
        finally:
            _ACTIVE = previous
            for s, h in old.items():
                signal.signal(s, h)

    def check(self) -> None:
        if self.signal is not None and time.monotonic() - self.at >= self.GRACE:
            raise Stopped(f"{self.signal} during a long step")


_ACTIVE: StopFlag | None = None  # the running loop's flag, for check_stop


def check_stop() -> None:
    """For loops inside a step that can run long (a sampler's positions, an evaluation's
    batches): raise `Stopped` once a stop signal has waited GRACE seconds. Free otherwise."""
    flag = _ACTIVE
    if flag is not None and flag.signal is not None:
        flag.check()


class NumericsGuard:
    QUANTITIES = ("delight", "loss", "weights")

    def __init__(self, device: torch.device):
        self.seen: list[tuple[int, int, torch.Tensor]] = []  # (step, quantity, float64 sum), until a check
        self.step = 0

    def watch(self, quantity: str, tensor: torch.Tensor) -> None:
        # One reduction per watch, read at the next check: a float64 sum is non-finite exactly
        # when an element is (float32 and narrower elements cannot overflow it), and keeping it
        # costs no host sync. The earlier per-watch isfinite/all/where/index_put was 8 small ops,
        # about 8 % of an MNIST default step (scripts/profile_step.py, `bookkeeping`).
        self.seen.append((self.step, self.QUANTITIES.index(quantity), tensor.detach().sum(dtype=torch.float64)))

    def check(self, params: list[torch.Tensor], quality: dict) -> None:
        """At an evaluation: raise NumericsError if anything went non-finite since the start."""
        for p in params:
            self.watch("weights", p)
        finite = torch.isfinite(torch.stack([s for _, _, s in self.seen])).tolist() if self.seen else []
        bad = [(step, self.QUANTITIES[i]) for (step, i, _), ok in zip(self.seen, finite) if not ok]
        self.seen.clear()  # all finite, or the run stops here: nothing earlier is needed again
        if bad:
            step, quantity = min(bad)
            raise NumericsError(f"non-finite {quantity} (first seen at step {step}); lower the learning rate or check the task's rewards")
        for key, value in quality.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise NumericsError(f"non-finite {key} at step {self.step}")
