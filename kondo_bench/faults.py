"""What a fault of the environment looks like to the user: one line naming the cause and the fix.

A full disk, a read-only folder or memory running out surface as OSError, RuntimeError or
MemoryError from deep inside Python, torch or a C++ stream ("basic_ios::clear: iostream
error"). `as_user_error` turns those into a `UserError` line (exit 2 for a single run; in a
sweep, the job is recorded failed with the line and the sweep goes on); anything else is left
as it is. `job_failed` is what a sweep's job writes in its folder when it cannot run.
"""

from __future__ import annotations

import errno
import re
import shutil
import sys
import traceback
from pathlib import Path

from .errors import UserError

FOLDER = "choose another folder with hydra.run.dir=... (hydra.sweep.dir=... for a sweep)"


class EnvironmentFault(UserError):
    """The machine, not the config: disk full, read-only, out of memory."""


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def out_of_memory(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, MemoryError) or isinstance(e, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text)


def describe(e: BaseException, folder: str | Path | None = None) -> str | None:
    """One line for a fault of the environment, else None."""
    where = f" ({folder})" if folder else ""
    if out_of_memory(e):
        return (f"out of memory: {_first_line(e)}; lower task.batch_size (or the model's or the evaluation's "
                "size: task.eval_prompts, task.hidden, task.d_model), or run fewer jobs at once")
    if isinstance(e, OSError):
        path = e.filename or folder or "the results"
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"no space left on the disk holding {path}: free some space, or {FOLDER}"
        if e.errno == errno.EROFS:
            return f"{path} is on a read-only file system: {FOLDER}"
        if e.errno in (errno.EACCES, errno.EPERM):
            return f"permission denied writing {path}: {FOLDER}"
        if e.errno in (errno.ENOTDIR, errno.EISDIR):
            return f"{path}: a file stands where a folder should be (or the reverse): {FOLDER}"
    if isinstance(e, RuntimeError) and ("iostream error" in str(e) or "PytorchStreamWriter" in str(e)
                                        or "file write failed" in str(e)):
        free = _free(folder)
        return (f"cannot write a checkpoint{where}: {_first_line(e)}"
                f"{f' ({free} free on its disk)' if free else ''}; free some space, or {FOLDER}")
    return None


MIN_FREE = 2**20  # Hydra's .hydra files, the log, the first rows and a summary: a disk with less is full


def disk_full(folder) -> str | None:
    """The free space ("12 KiB") of the disk holding folder when it is too little for a run, else None."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    return f"{free // 1024} KiB" if free < MIN_FREE else None


def check_space(existing: Path, folder: str, key: str) -> None:
    """Refuse a result folder on a disk that is already full, before Hydra writes its `.hydra/`
    there (a write that fails inside Hydra is its traceback, not our line)."""
    if full := disk_full(existing):
        raise EnvironmentFault(f"no space left on the disk holding {folder} ({full} free): free some "
                               f"space, or choose another folder with {key}=...")


def _free(folder) -> str | None:
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB" if folder else None
    except OSError:
        return None


def as_user_error(e: BaseException, folder=None) -> UserError | None:
    line = describe(e, folder)
    return EnvironmentFault(line) if line else None


def job_failed(out_dir, cfg, error: str, status: str = "failed", exc: BaseException | None = None) -> None:
    """Record a job that ended without a result: a summary with its status and one-line reason
    (the config, so `summarize` shows which job it was), and for an unexpected error the
    traceback in `error.txt` beside it. Never over a complete run; a folder that cannot be
    written is left as it is (the sweep's last line still counts the job)."""
    from omegaconf import OmegaConf

    from .results import read_metrics, write_ended

    try:
        config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    except Exception:  # noqa: BLE001 - an interpolation that cannot resolve: keep what can be read
        config = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    task, method = config.get("task") or {}, config.get("method") or {}
    try:
        rows = read_metrics(out_dir)
        write_ended(out_dir, {"status": status, "error": error, "task": task.get("name"),
                              "method": method.get("name"), "seed": config.get("seed"),
                              "steps": rows[-1].get("step", 0) if rows else 0, "steps_planned": task.get("steps"),
                              "config": config})
        if exc is not None:
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            (Path(out_dir) / "error.txt").write_text(text)
    except OSError:
        pass


def guard_hydra_writes() -> None:
    """Hydra's own writes, made before any code of ours runs in a job, never end in a traceback.

    A sweep's job whose `.hydra/` cannot be written (the disk filled up during an earlier job)
    fails inside Hydra, which prints a traceback and ends the whole sweep. Its config writer is
    wrapped so that the fault is left to the job: the job's own first write fails in one line,
    the job is counted failed and the sweep goes on (and runs again once space is freed).
    A log line that cannot be written (cli.log on a full disk) is dropped, not a traceback:
    the writes that matter (metrics, checkpoint, summary) say it in one line."""
    import logging

    from hydra.core import utils

    logging.raiseExceptions = False
    if getattr(utils._save_config, "guarded", False):
        return
    save = utils._save_config

    def save_config(cfg, filename, output_dir):
        try:
            save(cfg, filename, output_dir)
        except OSError:  # the job's own writes meet the same fault and name it
            pass

    save_config.guarded = True
    utils._save_config = save_config


def guard_joblib_pool() -> None:
    """A joblib worker process killed outright (kill -9 of the worker itself, not of the job
    process it forks) breaks joblib's whole pool: the launcher raised TerminatedWorkerError
    through Hydra, a traceback, and the jobs not yet begun never ran. The launcher is wrapped so
    that this is one line; the sweep then ends as usual, its last lines listing the job that
    did not finish and the jobs that never started (exit 1). Nothing where joblib is not installed."""
    try:
        from hydra_plugins.hydra_joblib_launcher import _core
        from joblib.externals.loky.process_executor import TerminatedWorkerError
    except ImportError:
        return
    if getattr(_core.launch, "guarded", False):
        return
    launch = _core.launch

    def guarded_launch(*args, **kwargs):
        try:
            return launch(*args, **kwargs)
        except TerminatedWorkerError as e:
            codes = re.search(r"exit codes of the workers are \{(.*?)\}", str(e))
            print(f"kondo-bench: error: a joblib worker process was killed ({codes.group(1) if codes else 'a signal'}), "
                  "which ends joblib's pool: its job and those not yet begun did not run; run the same command "
                  "again (finished jobs are skipped)", file=sys.stderr)
            return []  # the sweeper reads no results: the sweep's own end says which jobs are missing

    guarded_launch.guarded = True
    _core.launch = guarded_launch
