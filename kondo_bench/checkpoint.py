"""Checkpoints: model, optimiser, RNG states, counters and timers at evaluation boundaries,
written atomically with a checksum; a resumed run continues exactly where it left off, and a
checkpoint that cannot be trusted is set aside, never loaded.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

from .resultconfig import upgraded

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


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
