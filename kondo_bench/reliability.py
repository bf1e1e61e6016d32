"""Nothing finished is lost, nothing unfinished passes for finished.

- `StopFlag`: Ctrl-C or SIGTERM asks the loop to stop at the next step boundary.
- `NumericsGuard`: a non-finite delight, loss or weight stops the run, naming the first
  step and the quantity. Flags are kept on the device and read only at evaluations, so
  the guard adds no host synchronisation per step.
- Checkpoints: model, optimiser, RNG states, counters and timers at evaluation
  boundaries, written atomically; a resumed run continues exactly where it left off.
- `result_config`: the part of the config that decides a run's results, for deciding
  whether a finished folder or a checkpoint belongs to the run being asked for.
"""

from __future__ import annotations

import math
import os
import random
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

CHECKPOINT = "checkpoint.pt"
NOT_RESULTS = ("progress", "resume", "checkpoint_every")  # keys that do not change what a run computes


class NumericsError(Exception):
    pass


class StopFlag:
    def __init__(self):
        self.signal: str | None = None

    @contextmanager
    def installed(self):
        def handler(signum, _frame):
            self.signal = signal.Signals(signum).name

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


class NumericsGuard:
    QUANTITIES = ("delight", "loss", "weights")

    def __init__(self, device: torch.device):
        self.first_bad = torch.full((len(self.QUANTITIES),), -1, dtype=torch.long, device=device)
        self.step = 0

    def watch(self, quantity: str, tensor: torch.Tensor) -> None:
        i = self.QUANTITIES.index(quantity)
        bad = ~torch.isfinite(tensor.detach()).all()
        self.first_bad[i] = torch.where(bad & (self.first_bad[i] < 0), self.step, self.first_bad[i])

    def check(self, params: list[torch.Tensor], quality: dict) -> None:
        """At an evaluation: raise NumericsError if anything went non-finite since the start."""
        for p in params:
            self.watch("weights", p)
        bad = [(s, q) for s, q in zip(self.first_bad.tolist(), self.QUANTITIES) if s >= 0]
        if bad:
            step, quantity = min(bad)
            raise NumericsError(f"non-finite {quantity} (first seen at step {step}); lower the learning rate or check the task's rewards")
        for key, value in quality.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise NumericsError(f"non-finite {key} at step {self.step}")


def result_config(cfg) -> dict:
    c = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    return {k: v for k, v in c.items() if k not in NOT_RESULTS}


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(out_dir: Path, state: dict) -> None:
    """torch.save to a temporary file in the same folder, then rename over the old one."""
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{CHECKPOINT}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, Path(out_dir) / CHECKPOINT)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(out_dir: Path, config: dict) -> dict | None:
    """The folder's checkpoint if it belongs to this config, else None."""
    path = Path(out_dir) / CHECKPOINT
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    return state if state.get("result_config") == config else None
