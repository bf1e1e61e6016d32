"""Nothing finished is lost, nothing unfinished passes for finished.

- `StopFlag`: Ctrl-C or SIGTERM asks the loop to stop at the next step boundary.
- `NumericsGuard`: a non-finite delight, loss or weight stops the run, naming the first
  step and the quantity. Flags are kept on the device and read only at evaluations, so
  the guard adds no host synchronisation per step.
- Checkpoints: model, optimiser, RNG states, counters and timers at evaluation
  boundaries, written atomically; a resumed run continues exactly where it left off.
- `FolderLock`: one writer per run folder; a lock of a dead process does not count.
- `result_config`: the part of the config that decides a run's results, for deciding
  whether a finished folder or a checkpoint belongs to the run being asked for.
"""

from __future__ import annotations

import fcntl
import logging
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

from .errors import UserError

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
NOT_RESULTS = ("progress", "resume", "checkpoint_every", "logger")  # keys that do not change what a run computes


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


# Keys added to the schema after results were committed, with the value that reproduces what
# runs before them computed. A stored config without such a key ran with that value, so it is
# the same computation as today's config with the key at that value (and a different one
# with any other). Add a key here when adding it to config.py with a behaviour-keeping default.
ADDED_KEYS = {
    "solved_below": None,  # a top-level key: no dot
    "method.unit": "token",
    "method.unit_reduce": "mean",
}


def upgraded(stored: dict) -> dict:
    """A stored result config in today's keys, so that a finished run of the same computation
    is still recognised.

    Keys added since (ADDED_KEYS) take the value runs had before them. A config stored before
    estimators and gates were split: its method had no `estimator` (the preset's),
    every preset but dgk was ungated whatever `gate` said, and there was no
    device.deterministic (CPU results do not change with it). PPO's are left as they were:
    their metrics rows carry the old, wrong keep rate, so they are run again."""
    method = stored.get("method")
    if not isinstance(method, dict) or method.get("name") == "ppo" and "estimator" not in method:
        return stored
    from .config import PRESETS

    if "estimator" not in method:
        if method.get("name") not in PRESETS:
            return stored
        gate = method.get("gate") if method.get("name") == "dgk" else "none"
        device = {"deterministic": True, **(stored.get("device") or {})}
        stored = {**stored, "method": {**method, "estimator": PRESETS[method["name"]].value, "gate": gate},
                  "device": device}
    for key, value in ADDED_KEYS.items():
        if "." not in key:
            stored = stored if key in stored else {**stored, key: value}
            continue
        group, name = key.split(".", 1)
        node = stored.get(group)
        if isinstance(node, dict) and name not in node:
            stored = {**stored, group: {**node, name: value}}
    return stored


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
    """The folder's checkpoint if it belongs to this config, else None (an unreadable one
    is ignored with a warning: the run starts over rather than not at all)."""
    path = Path(out_dir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file means the same: start over
        log.warning("ignoring unreadable %s (%s); the run starts from step 0", path, e)
        return None
    return state if upgraded(state.get("result_config") or {}) == config else None


def remove_stale_temporaries(out_dir: Path) -> None:
    """Temporary files of an atomic write that a killed run left behind."""
    for tmp in Path(out_dir).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


# One writer per run folder: an advisory lock (flock) on a file in the folder, held for the
# run's life. The kernel drops it when the process dies however it dies (kill -9 included),
# so a stale lock never blocks the next run; the file keeps the holder's pid for the message.
LOCK = ".kondo-bench.lock"


def refuse_locked(folder, pid: int | None) -> None:
    who = f"process {pid}" if pid else "another process"
    raise FolderBusy(f"{folder} is being written by {who} (a kondo-bench run that is still alive); "
                     f"wait for it to finish, stop it (kill {pid or 'PID'}), or choose another folder "
                     "with hydra.run.dir=... (or hydra.sweep.dir=...)")


def _holder_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


def lock_holder(folder) -> int | None:
    """The pid of a live process holding the folder's lock (0 if unknown), else None."""
    path = Path(folder) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _holder_pid(fd) or 0
    except OSError:  # no locks on this filesystem
        return None
    finally:
        os.close(fd)


class FolderBusy(UserError):
    """A live process is writing the run folder."""


class FolderLock:
    """Hold the folder's lock while a run writes it; `FolderBusy` if a live process holds it."""

    def __init__(self, folder):
        self.folder, self.fd = Path(folder), None

    def __enter__(self):
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"cannot write results to {self.folder} ({e.strerror or e}); "
                            "choose a writable folder with hydra.run.dir=... (or hydra.sweep.dir=...)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder_pid(fd)
            os.close(fd)
            refuse_locked(self.folder, pid)
        except OSError as e:  # e.g. a filesystem without locks: run unguarded rather than not at all
            log.warning("cannot lock %s (%s); make sure no other run writes it", self.folder, e.strerror or e)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor releases the flock
            self.fd = None
