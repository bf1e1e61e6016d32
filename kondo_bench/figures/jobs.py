"""A figure's jobs: expand its sweeps into jobs, launch those not finished, record them.

Each sweep runs through the real command line (`python -m kondo_bench run -m ...`)
into `<out>/<scale>/runs/<sweep name>/<job>`, the job folder named by the overrides that
vary within the sweep (Hydra's `override_dirname`), so a rerun maps every job to the same
folder. A job is finished when its config is identical to the one the job would run and
either its folder holds a `summary.json` with status complete, or the sweep's committed
file `<out>/<scale>/finished/<sweep>.jsonl` has a complete record of it (`done.py` decides,
and loads the finished jobs' tables; `store.py` keeps the records). Only the rest are
launched (as few multiruns as possible); after each sweep its finished folders are recorded
in that file, so the next `kondo-bench figures`, on any machine, skips them too; a job
stopped part-way and parked (`parked.py`) continues there from its parked checkpoint. A stop
signal while a sweep runs is passed on to it; `figures` ends once it has (`stop.py`).
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..progress import Progress
from ..results import FINISHED, SUMMARY
from ..sweepstop import DIE_WITH_ENV
from .core import Figure, Scale, Sweep
from .done import Job, folder_done, is_done, record_difference, record_done, resolved_config
from .parked import drop, parked_dir_of, unpark
from .stop import PassOn
from .store import read_store, record_of, store_path, write_store


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
    summary.json is written by then). A stop signal meanwhile is passed on to it, and raises
    `Stopped` once it has ended (stop.py)."""
    # resume=true: a job whose folder holds a checkpoint of its config (a run stopped part-way,
    # checkpoint_every > 0) continues from it; `forget_finished` has set aside the summaries of
    # finished runs these jobs replace (another config), which resume=true would refuse
    cmd = [sys.executable, "-m", "kondo_bench", "run", "-m", *overrides, "resume=true",
           f"hydra.sweep.dir={sweep_dir}", "hydra.sweep.subdir=${hydra.job.override_dirname}",
           f"hydra.job.config.override_dirname.exclude_keys=[{','.join([*exclude, 'resume'])}]"]
    # One thread per job: the runs are small, and parallel launchers then use one core each.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           DIE_WITH_ENV: str(os.getpid())}
    sweep_dir.mkdir(parents=True, exist_ok=True)
    say = progress.write if progress else lambda text: print(text, flush=True)
    tail: list[str] = []
    with open(sweep_dir / "launch.log", "a") as log, PassOn().installed() as stop, \
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                             start_new_session=True) as proc:  # signals reach it through `figures` only
        stop.attach(proc)
        log.write("$ " + " ".join(cmd) + "\n")
        for line in proc.stdout:  # to its end, after a stop signal too: the sweep ends its jobs first
            log.write(line)
            tail = (tail + [line.rstrip()])[-20:]
            if verbose or line.startswith((*DONE_LINES, "interrupted:", "kondo-bench: error")):
                say("    " + line.rstrip())
            if progress and line.startswith("interrupted:"):
                progress.update(interrupted=progress.interrupted + 1)
            elif progress and line.startswith(JOB_ENDS):
                progress.ended(ok=line.startswith(DONE_LINES))
            if finished and line.startswith(DONE_LINES):
                finished()
    stop.stopped()
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
    store: Path  # the sweep's finished/ file, <out>/<scale>/finished/<sweep>.jsonl

    @property
    def parked(self) -> Path:
        """The sweep's parked/ folder (parked.py), beside its finished/ file."""
        return parked_dir_of(self.store.parent.parent, self.sweep.name)


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
        pending = [j for j in jobs if not is_done(j, extra)]  # each job's folder and record read once
        print(f"[{fig.name}] sweep {sweep.name}: {len(jobs)} jobs, {len(jobs) - len(pending)} done, {len(pending)} "
              f"to run -> {root}", flush=True)
        if other := [d for j in pending if (d := record_difference(j))]:
            print(f"[{fig.name}] sweep {sweep.name}: {len(other)} of its committed records ran another config, e.g. "
                  f"{Counter(other).most_common(1)[0][0]}: give the command the same settings to use them (running "
                  f"replaces them)", flush=True)
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
    changed = write_store(plan.store, records) if records else False
    drop(plan.parked, [j for j in plan.jobs if record_done(j, extra)])  # its record replaces its parked copy
    return changed


@dataclass
class Watch:
    """Jobs done / total, failed and an ETA over every figure's jobs (kondo_bench/progress.py)."""

    progress: Progress
    skipped: int  # complete before this command started
    launched: dict = field(default_factory=dict)  # folder -> Job, each counted once

    def settle(self, extra: list[str]) -> None:
        """Counts from the launched jobs' folders, whatever their output said."""
        ok = sum(is_done(j, extra) for j in self.launched.values())
        self.progress.update(done=self.skipped + ok, failed=len(self.launched) - ok, interrupted=0)


def forget_finished(todo: list[Job]) -> None:
    """Remove the summary in each to-run job's folder: a finished one there is not this job's
    (another config, or a quality metric of before), and left there resume=true would refuse it
    (another config) or skip it (the same config, another metric); any other (interrupted,
    failed) the run replaces anyway. The folder's checkpoint stays: the run continues from it
    only if it is of this config."""
    for j in todo:
        (j.folder / SUMMARY).unlink(missing_ok=True)


def run_sweeps(fig: Figure, plans: list[Plan], extra: list[str], verbose: bool, watch: Watch,
               broken: set[str] | None = None) -> tuple[list[Job], int]:
    """Launch what is not done yet; returns every job of the figure and the number of failed
    launches (the names of the sweeps whose launch failed are added to `broken`)."""
    failed = 0
    for p in plans:
        todo = [j for j in p.jobs if not is_done(j, extra)]  # again: an earlier figure may have run them
        if not todo:
            record_finished(p, extra)  # folders finished before the records existed (or on this machine)
            continue
        forget_finished(todo)
        for name, step in unpark(p.parked, todo):
            watch.progress.write(f"[{fig.name}] {p.sweep.name}/{name}: continues from its parked checkpoint "
                                 f"(step {step})")
        whole = len(todo) == len(p.jobs) and p.sweep.select is None
        batches = [list(p.sweep.overrides)] if whole else grids([j.overrides for j in todo])
        try:
            for overrides in batches:  # each job is recorded as it completes: a session that ends keeps it
                if launch(p.root, overrides + extra, p.exclude, verbose, watch.progress,
                          lambda: record_finished(p, extra)) != 0:
                    failed += 1
                    if broken is not None:
                        broken.add(p.sweep.name)
        finally:  # stopped by a signal too (stop.Stopped): what finished is recorded before `figures` ends
            record_finished(p, extra)  # whatever the output said
        watch.launched.update((j.folder, j) for j in todo)
        watch.settle(extra)
    return [j for p in plans for j in p.jobs], failed
