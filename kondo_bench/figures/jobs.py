"""A figure's jobs: expand its sweeps, check which are finished, launch the rest, load them.

Each sweep runs through the real command line (`python -m kondo_bench run -m ...`)
into `<out>/<scale>/runs/<sweep name>/<job>`, the job folder named by the overrides that
vary within the sweep (Hydra's `override_dirname`), so a rerun maps every job to the same
folder. A job is finished when its config is identical to the one the job would run and
either its folder holds a `summary.json` with status complete, or the sweep's committed
file `<out>/<scale>/finished/<sweep>.jsonl` has a complete record of it (`store.py`).
Only the rest are launched (as few multiruns as possible); after each sweep its finished
folders are recorded in that file, so the next session, on any machine, skips them too.
"""

from __future__ import annotations

import fnmatch
import functools
import itertools
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import pandas as pd

from ..progress import Progress
from ..reliability import NOT_RESULTS, result_config, upgraded
from ..results import FINISHED, incomplete_reason, is_finished
from ..sweeps import job_tables, read_job, read_overrides, tables_of
from .core import Figure, FigureData, Scale, Sweep
from .store import metrics_rows, read_store, record_of, store_path, write_store


# ---------------------------------------------------------------- jobs: expand, check, launch
@dataclass
class Job:
    overrides: list  # one value per key, as Hydra's basic sweeper writes them
    folder: Path
    config: str | None  # canonical JSON of the resolved config; None where it cannot be resolved here
    record: dict | None = None  # its line in the sweep's finished/ file, if it has one
    metric: str | None = None  # the metric its figure draws by name (Figure.metric), else the task's quality


def _parse(overrides):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(list(overrides))


def expand(overrides) -> tuple[list[list[str]], list[str]]:
    """The grid of a multirun, as the basic sweeper builds it, and the keys that do not vary."""
    choices, constant = [], []
    for o in _parse(overrides):
        key = o.get_key_element()
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        choices.append([f"{key}={v}" for v in values])
        if len(values) == 1:
            constant.append(o.key_or_group)
    return [list(job) for job in itertools.product(*choices)], constant


def job_folder(root: Path, job: list[str], exclude: list[str]) -> Path:
    """Hydra's `override_dirname` of a job: its non-excluded overrides, sorted, comma-joined."""
    lines = sorted(line for line, o in zip(job, _parse(job)) if o.key_or_group not in exclude)
    return root / ",".join(lines)


def _is_hydra(override: str) -> bool:
    return override.lstrip("+~").startswith("hydra")


def resolved_config(overrides: list[str]) -> str | None:
    """The config a job would run, as its summary records it (canonical JSON)."""
    from ..compose import compose

    try:
        cfg = compose([o for o in overrides if not _is_hydra(o) or o.startswith("hydra.searchpath=")])
        return _canonical(result_config(cfg))
    except Exception:  # e.g. ${hydra:...} interpolations: fall back to comparing overrides
        return None


def _canonical(config: dict) -> str:
    return json.dumps(json.loads(json.dumps(config)), sort_keys=True)


def finished(summary: dict | None, ran: list[str] | None, job: Job, extra: list[str]) -> bool:
    """A summary (and the overrides it ran with) is this job's, finished: status complete or
    solved, the
    config it would run now (or, where that cannot be resolved here, the same overrides) and
    the quality metric its task reports now (a reversal run from before `expected_error` has
    none: drawn beside new runs it would mix two metrics on one axis)."""
    if not is_finished(summary):
        return False
    if job.config is not None:
        quality = None if job.metric else _quality(json.loads(job.config).get("task", {}).get("name"))
        return (_canonical(upgraded(summary.get("result_config") or {})) == job.config
                and (quality is None or summary.get("quality_metric") in (quality, None)))

    def relevant(overrides):
        return sorted(o for o in overrides if not _is_hydra(o) and o.lstrip("+~").split("=")[0].split(".")[0] not in NOT_RESULTS)

    return relevant(ran or []) == relevant(job.overrides + extra)


@functools.cache
def _quality(task: str | None) -> str | None:
    """The quality metric a task reports now (None for a task this code does not know)."""
    from ..errors import UserError
    from ..tasks import task_class

    try:
        return task_class(task).quality
    except (UserError, TypeError):
        return None


def folder_done(job: Job, extra: list[str]) -> bool:
    """Finished in its run folder on this machine."""
    try:
        summary = json.loads((job.folder / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if incomplete_reason(job.folder, summary):  # metrics cut short since: run again, never drawn short
        return False
    return finished(summary, read_overrides(job.folder), job, extra)


def record_done(job: Job, extra: list[str]) -> bool:
    """Finished as a record in the sweep's finished/ file (committed, from any machine)."""
    return job.record is not None and finished(job.record["summary"], job.record.get("overrides"), job, extra)


def is_done(job: Job, extra: list[str]) -> bool:
    """Finished with the same config, in its folder or as a committed record."""
    return folder_done(job, extra) or record_done(job, extra)


def grids(jobs: list[list[str]]) -> list[list[str]]:
    """Few multiruns covering exactly these jobs: a grid over the key that gives the fewest
    groups of the other overrides, then grids joined over any key while that makes fewer
    (seeds 3, 4 of four methods are one multirun, not one per seed: a parallel launcher then
    keeps every worker busy across them). The whole sweep, when nothing is done yet, is
    passed as it was written instead."""
    if len(jobs) <= 1:
        return [list(j) for j in jobs]
    out = min((_join(jobs, i) for i in range(len(jobs[0])) if len({j[i] for j in jobs}) > 1), key=len)
    while len(fewer := min((_join(out, i) for i in range(len(out[0]))), key=len)) < len(out):
        out = fewer
    return out


def _join(grids: list[list[str]], i: int) -> list[list[str]]:
    """Grids equal but for the i-th override's values joined into one, {a} × R and {b} × R into
    {a, b} × R: exactly their jobs (distinct jobs have distinct values there)."""
    groups: dict[tuple, list[str]] = {}
    for g in grids:
        groups.setdefault(tuple(g[:i] + g[i + 1:]), []).append(g[i].partition("=")[2])
    key = grids[0][i].partition("=")[0]
    return [[*rest[:i], f"{key}={','.join(values)}", *rest[i:]] for rest, values in groups.items()]


def launch(sweep_dir: Path, overrides: list[str], exclude: list[str], verbose: bool,
           progress: Progress | None = None, finished: Callable[[], object] | None = None) -> int:
    """One multirun through the real command line; its output goes to sweep_dir/launch.log,
    each job's end to `progress`, and `finished()` is called as each job completes (its
    summary.json is written by then)."""
    # resume=false: these jobs were found not done, so an old run of another config is replaced
    cmd = [sys.executable, "-m", "kondo_bench", "run", "-m", *overrides, "resume=false",
           f"hydra.sweep.dir={sweep_dir}", "hydra.sweep.subdir=${hydra.job.override_dirname}",
           f"hydra.job.config.override_dirname.exclude_keys=[{','.join([*exclude, 'resume'])}]"]
    # One thread per job: the runs are small, and parallel launchers then use one core each.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    sweep_dir.mkdir(parents=True, exist_ok=True)
    say = progress.write if progress else lambda text: print(text, flush=True)
    tail: list[str] = []
    with open(sweep_dir / "launch.log", "a") as log, \
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        log.write("$ " + " ".join(cmd) + "\n")
        for line in proc.stdout:
            log.write(line)
            tail = (tail + [line.rstrip()])[-20:]
            if verbose or line.startswith((*DONE_LINES, "interrupted:", "kondo-bench: error")):
                say("    " + line.rstrip())
            if progress and line.startswith(JOB_ENDS):
                progress.ended(ok=line.startswith(DONE_LINES))
            if finished and line.startswith(DONE_LINES):
                finished()
    if proc.returncode != 0 and not verbose:
        say("    " + "\n    ".join(tail))
    return proc.returncode


DONE_LINES = tuple(f"{status}:" for status in FINISHED)  # how `run` reports a finished job
JOB_ENDS = (*DONE_LINES, "interrupted:", "kondo-bench: error: run failed")  # one line per job that ended


@dataclass
class Plan:
    """One sweep of a figure: its jobs, and where and how they are launched and recorded."""

    sweep: Sweep
    root: Path
    exclude: list
    jobs: list
    store: Path  # the sweep's finished/ file


def plan_sweeps(fig: Figure, scale: Scale, out: Path, extra: list[str], only: list[str] | None = None) -> list[Plan]:
    """Every job of a figure's sweeps (those matching a glob of `only`, when given), with its
    folder, config and record; says how many are done."""
    plans = []
    # Folders are named by what varies in the whole sweep, so the jobs of a run capped by
    # `--seeds N` (even N = 1) have the folders and records of the same jobs run uncapped.
    full = {sw.name: sw for sw in fig.sweeps(replace(scale, max_seeds=None))}
    for sweep in fig.sweeps(scale):
        if only and not any(fnmatch.fnmatch(sweep.name, g) for g in only):
            continue
        grid, _ = expand(sweep.overrides)
        _, constant = expand(full.get(sweep.name, sweep).overrides)
        exclude = constant + [o.key_or_group for o in _parse(extra)]
        root, store = out / "runs" / sweep.name, store_path(out, sweep.name)
        records = read_store(store)
        if sweep.select is not None:
            grid = selected(sweep, grid, root, exclude, records)
        jobs = []
        for j in grid:
            folder = job_folder(root, j, exclude)
            jobs.append(Job(j, folder, resolved_config(j + extra), records.get(folder.name), fig.metric))
        done = sum(is_done(j, extra) for j in jobs)
        print(f"[{fig.name}] sweep {sweep.name}: {len(jobs)} jobs, {done} done, {len(jobs) - done} to run -> {root}",
              flush=True)
        plans.append(Plan(sweep, root, exclude, jobs, store))
    return plans


def selected(sweep: Sweep, grid: list[list[str]], root: Path, exclude: list[str], records: dict) -> list[list[str]]:
    """The grid jobs a searching sweep runs now, from what it has finished (folders and records)."""
    named = [(j, job_folder(root, j, exclude).name) for j in grid]
    finished = {name: rec["summary"] for name, rec in records.items()}
    for _, name in named:  # a folder finished on this machine beats its record
        try:
            finished[name] = json.loads((root / name / "summary.json").read_text())
        except (OSError, json.JSONDecodeError):
            pass
    chosen = sweep.select([(dict(o.split("=", 1) for o in j), name) for j, name in named], finished)
    return [j for j, name in named if name in chosen]


def record_finished(plan: Plan, extra: list[str]) -> bool:
    """Add the sweep's jobs finished in their folders to its finished/ file (a job's record
    replaces an older one of the same job); True when the file changed."""
    records = read_store(plan.store)
    for j in plan.jobs:
        if folder_done(j, extra):
            j.record = records[j.folder.name] = record_of(j.folder)
    return write_store(plan.store, records) if records else False


@dataclass
class Watch:
    """Jobs done / total, failed and an ETA over every figure's jobs (kondo_bench/progress.py)."""

    progress: Progress
    skipped: int  # complete before this command started
    launched: dict = field(default_factory=dict)  # folder -> Job, each counted once

    def settle(self, extra: list[str]) -> None:
        """Counts from the launched jobs' folders, whatever their output said."""
        ok = sum(is_done(j, extra) for j in self.launched.values())
        self.progress.update(done=self.skipped + ok, failed=len(self.launched) - ok)


def run_sweeps(fig: Figure, plans: list[Plan], extra: list[str], verbose: bool, watch: Watch) -> tuple[list[Job], int]:
    """Launch what is not done yet; returns every job of the figure and the number of failed launches."""
    failed = 0
    for p in plans:
        todo = [j for j in p.jobs if not is_done(j, extra)]  # again: an earlier figure may have run them
        if not todo:
            record_finished(p, extra)  # folders finished before the records existed (or on this machine)
            continue
        whole = len(todo) == len(p.jobs) and p.sweep.select is None
        batches = [list(p.sweep.overrides)] if whole else grids([j.overrides for j in todo])
        for overrides in batches:  # each job is recorded as it completes: a session that ends keeps it
            failed += launch(p.root, overrides + extra, p.exclude, verbose, watch.progress,
                             lambda: record_finished(p, extra)) != 0
        watch.launched.update((j.folder, j) for j in todo)
        watch.settle(extra)
        record_finished(p, extra)  # whatever the output said
    return [j for p in plans for j in p.jobs], failed


def load_jobs(name: str, scale: Scale, out: Path, jobs: list[Job], extra: list[str]) -> FigureData:
    """The tables of a figure's jobs: finished ones (from their folders, else their records) in
    `runs`/`curves`, the rest in `incomplete`."""
    runs_root = out / "runs"
    results, missing = [], []
    for j in jobs:
        run = str(j.folder.relative_to(runs_root))
        if folder_done(j, extra):
            results.append(read_job(j.folder, runs_root))
        elif record_done(j, extra):
            results.append(job_tables(run, j.record["summary"], metrics_rows(j.record), j.record.get("overrides", [])))
        elif j.folder.exists():
            _, inc, _ = read_job(j.folder, runs_root)
            missing.append({"run": run, "reason": inc["reason"] if inc else
                            "finished with a different config: rerun to replace it"})
        elif j.record is not None:
            missing.append({"run": run, "reason": "its record in finished/ ran a different config: "
                            "rerun to replace it"})
        else:
            missing.append({"run": run, "reason": "never started"})
    tables = tables_of(results)
    for df in (tables.runs, tables.curves):
        if not df.empty:
            df.insert(0, "sweep", df["run"].str.split("/").str[0])
    incomplete = pd.DataFrame(missing, columns=["run", "reason"])
    return FigureData(name, scale, out, tables.runs, tables.curves, incomplete)
