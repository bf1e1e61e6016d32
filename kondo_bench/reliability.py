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
import time
from contextlib import contextmanager, suppress
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
    "device.force_bf16": False,
}
# Keys added to one task's schema: (task.name, key) -> the value runs before them had.
TASK_ADDED_KEYS = {
    ("mnist", "model"): None,  # the network as a config axis; null is the task's own MLP
    ("reversal", "model"): None,  # null is the task's own transformer
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
        stored = {**stored, "method": {**method, "estimator": PRESETS[method["name"]], "gate": gate},
                  "device": device}
    for key, value in ADDED_KEYS.items():
        if "." not in key:
            stored = stored if key in stored else {**stored, key: value}
            continue
        group, name = key.split(".", 1)
        node = stored.get(group)
        if isinstance(node, dict) and name not in node:
            stored = {**stored, group: {**node, name: value}}
    task = stored.get("task")
    for (task_name, name), value in TASK_ADDED_KEYS.items():
        if isinstance(task, dict) and task.get("name") == task_name and name not in task:
            task = {**task, name: value}
            stored = {**stored, "task": task}
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


# A checkpoint file: a header line, the SHA-256 of the payload, then the payload (torch.save's
# bytes). A file whose payload does not hash to its header (bytes flipped on disk, a copy cut
# short) is never loaded.
CHECKPOINT_MAGIC = b"kondo-bench checkpoint v1\n"
CHECKPOINT_KEYS = ("step", "task", "counters", "seconds", "stale", "rng", "rows", "result_config")


def save_checkpoint(out_dir: Path, state: dict) -> None:
    """The state with a checksum of its content, to a temporary file in the same folder, then
    renamed over the old one."""
    import hashlib
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{CHECKPOINT}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(CHECKPOINT_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n")
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, Path(out_dir) / CHECKPOINT)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def set_aside(path: Path, why: str) -> Path:
    """Rename a file that cannot be trusted (never delete it: it may be wanted for a post-mortem),
    with one warning naming why and where it went; the run then starts without it."""
    n = 1
    while (aside := path.with_name(f"{path.name}.bad-{n}")).exists():
        n += 1
    os.replace(path, aside)
    log.warning("%s %s; set aside as %s, and the run starts from step 0", path, why, aside.name)
    return aside


def read_checkpoint(path: Path) -> dict:
    """The verified state in a checkpoint file; ValueError saying what is wrong with it."""
    import hashlib
    import io

    data = path.read_bytes()
    if not data.startswith(CHECKPOINT_MAGIC):
        raise ValueError("has no checksum header (written by an older version, or not a checkpoint)")
    digest, _, payload = data[len(CHECKPOINT_MAGIC):].partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise ValueError("does not match its checksum (its bytes changed after it was written)")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - a payload that hashes right but does not load: same outcome
        raise ValueError(f"cannot be read ({type(e).__name__}: {e})") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"lacks {', '.join(missing)}")
    return state


def load_checkpoint(out_dir: Path, config: dict) -> dict | None:
    """The folder's checkpoint if it belongs to this config, else None. One that fails its
    checksum, cannot be read or lacks a key is set aside with one warning (`set_aside`): the run
    starts over rather than not at all, and the next rerun does not meet it again."""
    path = Path(out_dir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        state = read_checkpoint(path)
    except (ValueError, OSError) as e:
        set_aside(path, str(e))
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


_HELD: dict[str, int] = {}  # folders this process holds the lock of -> how many holders


class FolderLock:
    """Hold the folder's lock while a run writes it; `FolderBusy` if a live process holds it.
    Re-entrant within a process: the CLI takes it before Hydra writes, the run again inside."""

    def __init__(self, folder):
        self.folder, self.fd, self.nested = Path(folder), None, False

    def __enter__(self):
        key = f"{os.getpid()}:{self.folder.absolute()}"  # a forked child holds none of its parent's
        if key in _HELD:
            _HELD[key] += 1
            self.nested = True
            return self
        made = not self.folder.is_dir()
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
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:  # a full disk: one line, and no empty lock left behind to puzzle over
            from .faults import as_user_error

            os.close(fd)
            (self.folder / LOCK).unlink(missing_ok=True)
            if made:
                with suppress(OSError):
                    self.folder.rmdir()
            raise as_user_error(e, self.folder) or UserError(f"cannot write {self.folder / LOCK}: {e}") from None
        self.fd = fd
        _HELD[key] = 1
        return self

    def __exit__(self, *exc):
        key = f"{os.getpid()}:{self.folder.absolute()}"  # a forked child holds none of its parent's
        if self.nested or self.fd is not None:
            _HELD[key] -= 1
            if _HELD[key] == 0:
                del _HELD[key]
        if self.nested:
            self.nested = False
            return
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor releases the flock
            self.fd = None
