"""Everything `kondo-bench run` can refuse, checked before Hydra creates a folder.

Hydra makes the run folder (`.hydra/`, the job's log) before it calls the job, so a value
refused inside the job would leave a folder that looks like a started run. Here the
command line is parsed with Hydra's own override parser, every job of a sweep is
composed (once per choice of config groups; the other keys are set on a copy; how, is
`jobconfigs.py`), and each config goes through `config.validate`, the device check, the result folder's
writability and its lock. Any problem is one `UserError` line; nothing is created. In a
sweep, a job whose own value is refused while others pass is not a refusal: the plan lists it,
and the sweep runs with that job recorded failed in its folder (`jobfault.py`).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .validation import validate
from .compose import groups
from .jobconfigs import _as_job, _check_choices, _compose, _hydra_dirs, _job_folder, _parse, _values
from .memory import check_memory
from .errors import OneJobError, UserError
from .faults import check_space

MAX_JOBS = 10_000  # beyond this many sweep jobs, leave the checks to each job
# Hydra flags that only print something (no run, no folder); with -m Hydra refuses them.
PRINT_FLAGS = ("--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help", "--shell-completion", "-sc")


@dataclass
class Plan:
    """What the checks found: how many jobs, and the sweep folder to pin (multirun)."""

    multirun: bool
    jobs: int = 0
    sweep_dir: str | None = None
    pin: list[str] = field(default_factory=list)  # extra overrides for Hydra (a pinned run or sweep folder)
    lock: object = None  # the run's (or the sweep's) FolderLock, taken here and held until the command ends
    failed: dict = field(default_factory=dict)  # a sweep's jobs that cannot run: number -> why (recorded failed)


CONFIG_DIR_FLAGS = ("--config-dir", "-cd")


def split_config_dir(args: list[str]) -> tuple[list[str], str | None]:
    """(the arguments without Hydra's `--config-dir DIR` / `-cd DIR` / `--config-dir=DIR`, DIR)."""
    rest, config_dir, i = [], None, 0
    while i < len(args):
        a = args[i]
        if a in CONFIG_DIR_FLAGS:
            if i + 1 >= len(args):
                raise UserError(f"{a} needs a folder: kondo-bench run {a} DIR task=NAME")
            config_dir, i = args[i + 1], i + 2
            continue
        if a.split("=", 1)[0] in CONFIG_DIR_FLAGS and "=" in a:
            config_dir = a.split("=", 1)[1]
        else:
            rest.append(a)
        i += 1
    if config_dir is not None and not Path(config_dir).expanduser().is_dir():
        raise UserError(f"--config-dir {config_dir}: no such folder")
    return rest, config_dir


def check_run(args: list[str], lock: bool = True) -> Plan | None:
    """Check `kondo-bench run ARGS`; None when Hydra should handle them as they are (--cfg, ...).
    With `lock`, the run's (or sweep's) folder lock is taken and returned in the plan."""
    args, config_dir = split_config_dir(args)
    flags = [a for a in args if a.startswith("-")]
    multirun = any(a in ("-m", "--multirun") for a in flags)
    printing = [a for a in flags if a.split("=")[0] in PRINT_FLAGS]
    if printing and multirun:
        raise UserError(f"{printing[0]} prints and -m runs a sweep: Hydra takes one of them; drop -m "
                        f"to see the config of one job (e.g. kondo-bench run --cfg job task=bandit)")
    if any(a not in ("-m", "--multirun") for a in flags):
        return None  # --cfg, --info, ...: Hydra's own business
    overrides = _parse(args)
    search = [o.input_line for o in overrides if o.key_or_group == "hydra.searchpath"]
    group_keys = groups(search, config_dir)
    for o in overrides:
        if o.is_sweep_override() and not o.is_discrete_sweep():
            raise UserError(f"{o.input_line}: list the values instead (a,b,c or range(a,b)); "
                            "glob and interval sweeps are not supported")
    hydra_ov = [o for o in overrides if o.key_or_group.startswith("hydra")]
    job_ov = [o for o in overrides if not o.key_or_group.startswith("hydra")]
    if not multirun:
        sweeps = [o.input_line for o in job_ov if o.is_sweep_override()]
        if sweeps:
            raise UserError(f"{sweeps[0]} is a sweep: add -m to run one job per value "
                            f"(kondo-bench run -m {' '.join(args)})")
    choices = {o.key_or_group: o for o in job_ov if o.key_or_group in group_keys}
    for group, o in choices.items():
        _check_choices(group, [str(v) for v in _values(o)], search, config_dir)
    plan = Plan(multirun)
    lists = [[(o, v) for v in _values(o)] for o in job_ov]
    n_jobs = 1
    for values in lists:
        n_jobs *= len(values)
    plan.jobs = n_jobs
    hydra_lines = [o.input_line for o in hydra_ov]
    cache: dict = {}  # composed configs (with the hydra node) by their group choices
    jobs, plan.failed = _check_jobs(lists, n_jobs, multirun, hydra_lines, cache, group_keys, config_dir)
    hydra = _hydra_dirs(next(iter(cache.values()))[0])
    if multirun:
        plan.sweep_dir = hydra["sweep_dir"]
        _check_folder_named(plan.sweep_dir, "hydra.sweep.dir")
        if not any(o.key_or_group == "hydra.sweep.dir" for o in hydra_ov) and plan.sweep_dir:
            plan.pin = [f"hydra.sweep.dir={plan.sweep_dir}"]
        _check_writable(plan.sweep_dir or ".", "hydra.sweep.dir")
        _check_sweep_unlocked(plan.sweep_dir)
        for sub, job_cfg in jobs:  # another config's finished job where this sweep would write
            if sub is not None:
                _check_not_another_run(str(Path(plan.sweep_dir) / sub), job_cfg)
        plan.lock = _lock(plan.sweep_dir) if lock else None
    else:
        cfg = jobs[0][1]
        _check_folder_named(hydra["run_dir"], "hydra.run.dir")
        if not any(o.key_or_group == "hydra.run.dir" for o in hydra_ov) and hydra["run_dir"]:
            plan.pin = [f"hydra.run.dir={hydra['run_dir']}"]  # the folder checked and locked here is the one used
        _check_writable(hydra["run_dir"] or ".", "hydra.run.dir")
        _check_unlocked(hydra["run_dir"])
        _check_not_another_run(hydra["run_dir"], cfg)
        plan.lock = _lock(hydra["run_dir"]) if lock else None
    return plan


def _check_jobs(lists, n_jobs: int, multirun: bool, hydra_lines, cache, group_keys, config_dir):
    """Compose and check each job: ([(its sub-folder in a sweep, its config or None where it cannot
    run)], {job number: why it cannot run}). In a sweep, a job whose own value is refused (cannot
    be set, out of range, its device or memory) is listed, and recorded failed when the sweep
    runs (jobfault.py), while the others run; when every job is refused, or the fault concerns the
    sweep (a misspelt key or group option), it is one refusal, as for a single run."""
    folders: dict[str, int] = {}  # each job's folder -> the job that writes it
    jobs, failed = [], {}
    for num, combo in enumerate(itertools.islice(itertools.product(*lists), None if n_jobs <= MAX_JOBS else 1)):
        full = cfg = None
        try:
            full, cfg = _compose(combo, hydra_lines, cache, group_keys, config_dir)
            with _as_job(full, num if multirun else None):  # ${hydra:job.num} and the like resolve as in the job
                _check_config(cfg)
        except OneJobError as e:  # its value cannot be set: Hydra cannot compose it either (jobfault.py)
            if not multirun:
                raise
            failed[num], full, cfg = str(e), e.full, None
        except UserError as e:
            if not multirun or cfg is None:  # a misspelt key or group option: the whole sweep's fault
                raise
            failed[num] = str(e)  # the job itself refuses it again, in its folder
        jobs.append((_job_folder(full, combo, num, folders, group_keys) if multirun else None,
                     None if num in failed else cfg))
    if failed and len(failed) == len(jobs):  # no job can run: nothing to record, one line as for one run
        raise UserError(failed[min(failed)])
    return jobs, failed


def _check_config(cfg) -> None:
    validate(cfg)
    _check_device(cfg.device.name)
    check_memory(cfg)
    if "data_root" in cfg.task and not cfg.task.data_root:
        from .data import check_data_env

        check_data_env()


def _check_folder_named(folder: str | None, key: str) -> None:
    """An empty folder name would write into the current directory: refuse it."""
    if folder is not None and not folder.strip():
        raise UserError(f"{key} is empty, which would write results into the current folder; name a folder, "
                        f"e.g. {key}=runs/my-run")


def _lock(folder: str | None):
    """Take the folder's lock now, before Hydra writes into it, and hold it while the command runs:
    a second run started at the same moment is refused before it writes anything."""
    from .folderlock import FolderLock

    if not folder:
        return None
    return FolderLock(folder).__enter__()


def _check_not_another_run(folder: str | None, cfg) -> None:
    """Refuse now, before Hydra rewrites its `.hydra/`, a folder holding another config's complete run
    (any complete run, for a sweep's job that cannot run: `cfg` None; its failure is never
    written over a complete run, so it would go unrecorded)."""
    from .experiment import refuse_other_config
    from .results import is_finished, read_summary

    if folder and cfg is None and is_finished(read_summary(folder)):
        raise UserError(f"{folder} already holds a complete run, and the job of this sweep that would write there "
                        "cannot run; choose another folder with hydra.sweep.dir=...")
    if folder and cfg is not None and cfg.resume:
        refuse_other_config(folder, cfg)


def _check_device(name: str) -> None:
    if name not in ("auto", "cpu"):
        from .runsetup import resolve_device

        resolve_device(name)


def check_out(folder: str | Path, flag: str = "--out") -> None:
    """An output folder given on a command line (summarize, plot, figures): a file, a read-only
    place or one that cannot be made is one line, before anything is computed."""
    _check_writable(str(folder), flag)


def _check_writable(folder: str, key: str) -> None:
    """A result folder that cannot be written is an error now, not after the run: try it."""
    path = Path(folder).expanduser().absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    reason = None if existing.is_dir() else f"{existing} is not a folder"
    if reason is None:
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".kondo-bench-probe-", dir=existing))
        except OSError as e:
            reason = f"{e.strerror or e} in {existing}"
    if reason:
        raise UserError(f"cannot write results under {folder}: {reason}; choose a writable folder with {key}=...")
    check_space(existing, folder, key)


def _check_unlocked(folder: str | None) -> None:
    from .folderlock import lock_holder, refuse_locked

    if folder and (pid := lock_holder(folder)) is not None:
        refuse_locked(folder, pid)


def _check_sweep_unlocked(folder: str | None) -> None:
    from .folderlock import LOCK, lock_holder, refuse_locked

    if folder and Path(folder).is_dir():
        _check_unlocked(folder)  # another sweep's parent holds the folder
        for lock in Path(folder).glob(f"*/{LOCK}"):
            if (pid := lock_holder(lock.parent)) is not None:
                refuse_locked(lock.parent, pid)
