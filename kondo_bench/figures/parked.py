"""Unfinished jobs carried to another machine: `<out>/<scale>/parked/<sweep>/<job>/`.

A run folder is not committed (`runs/` is ignored), so a job stopped part-way continues from
its checkpoint on the machine that ran it only: on a new machine the same command would start
it again from step 0, and a paper-scale H* run can be two CPU-hours. `kondo-bench figures
--park` copies each unfinished job's latest checkpoint, with the metrics rows it counts, into
the sweep's parked folder, to commit beside `finished/`:

    parked/<sweep>/<job>/checkpoint.pt    # as the run wrote it (checksummed; see checkpoint.py)
    parked/<sweep>/<job>/metrics.jsonl    # its first `rows` rows, the ones the checkpoint counts

Before a job is launched, a parked checkpoint of its config at a later step than its folder's
own is copied into the folder, and the run continues from it as from its own (resume=true).
A job's parked copy is removed once the job is finished: its `finished/` record replaces it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..checkpoint import CHECKPOINT, read_checkpoint
from ..folderlock import lock_holder
from ..resultconfig import upgraded
from ..results import METRICS, _atomic_write_text, read_metrics
from .done import Job, _canonical

PARKED = "parked"  # the folder of the parked jobs, beside runs/ and finished/ under <out>/<scale>/


def _state(path: Path, job: Job) -> dict | None:
    """The checkpoint file's state if it is sound and of the job's config, else None."""
    try:
        state = read_checkpoint(path)
    except (ValueError, OSError):  # missing, cut short, or not a checkpoint
        return None
    ran = _canonical(upgraded(state.get("result_config") or {}))
    return state if job.config is None or ran == job.config else None


def step_of(folder: Path, job: Job) -> int:
    """The step of the folder's checkpoint of the job's config; -1 where it has none."""
    state = _state(folder / CHECKPOINT, job)
    return -1 if state is None else int(state["step"])


def _copy(src: Path, dst: Path, job: Job) -> int | None:
    """Copy src's checkpoint and the metrics rows it counts into dst (the rows first, the
    checkpoint last, each in one rename: a copy cut short leaves no checkpoint without its
    rows); the checkpoint's step, or None when src has no sound checkpoint of the job's config
    or fewer rows than it counts (then dst is left as it was)."""
    try:
        data = (src / CHECKPOINT).read_bytes()  # read once: the run may write a newer one meanwhile
    except OSError:
        return None
    made = not dst.exists()
    dst.mkdir(parents=True, exist_ok=True)
    tmp = dst / f".{CHECKPOINT}.copy.tmp"
    step = None
    try:
        tmp.write_bytes(data)
        state = _state(tmp, job)
        rows = read_metrics(src)[:state["rows"]] if state else []
        if state is not None and len(rows) == state["rows"]:
            _atomic_write_text(dst / METRICS, "".join(json.dumps(row) + "\n" for row in rows))
            tmp.replace(dst / CHECKPOINT)
            step = int(state["step"])
    finally:
        tmp.unlink(missing_ok=True)
        if step is None and made:
            dst.rmdir()
    return step


def parked_dir_of(out: Path, sweep: str) -> Path:
    """A sweep's parked folder, beside its runs/ folder and finished/ file."""
    return out / PARKED / sweep


def park(parked_dir: Path, jobs: list[Job]) -> list[tuple[str, int]]:
    """Park each job whose folder holds a checkpoint of its config later than its parked one;
    the (job, step) pairs parked."""
    parked = []
    for j in jobs:
        dst = parked_dir / j.folder.name
        if step_of(j.folder, j) > step_of(dst, j) and (step := _copy(j.folder, dst, j)) is not None:
            parked.append((j.folder.name, step))
    return parked


def unpark(parked_dir: Path, jobs: list[Job]) -> list[tuple[str, int]]:
    """Copy each job's parked checkpoint into its run folder where it is later than the
    folder's own (and no live run is writing the folder); the (job, step) pairs the runs will
    continue from."""
    restored = []
    for j in jobs:
        src = parked_dir / j.folder.name
        later = step_of(src, j) > step_of(j.folder, j)
        if later and lock_holder(j.folder) is None and (step := _copy(src, j.folder, j)) is not None:
            restored.append((j.folder.name, step))
    return restored


def drop(parked_dir: Path, jobs: list[Job]) -> None:
    """Remove the parked copies of these (finished) jobs, and the sweep's folder once empty."""
    if not parked_dir.is_dir():  # the common case: nothing of this sweep is parked
        return
    for j in jobs:
        shutil.rmtree(parked_dir / j.folder.name, ignore_errors=True)
    if parked_dir.is_dir() and not any(parked_dir.iterdir()):
        parked_dir.rmdir()
