"""Whether a figure's job is finished, and the tables of its jobs.

A job is finished when its config is identical to the one the job would run (or, where that
cannot be resolved here, it ran the same overrides), with the quality metric its task reports
now, and either its folder holds a `summary.json` with status complete or solved, or the
sweep's committed file `<out>/<scale>/finished/<sweep>.jsonl` has such a record of it
(`store.py`). `load_jobs` reads the finished ones from their folders, else their records.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..resultconfig import NOT_RESULTS, result_config, upgraded
from ..results import incomplete_reason, is_finished
from ..sweepplan import read_overrides
from ..sweeps import job_tables, read_job, tables_of
from .core import FigureData, Scale
from .store import metrics_rows


@dataclass
class Job:
    overrides: list  # one value per key, as Hydra's basic sweeper writes them
    folder: Path
    config: str | None  # canonical JSON of the resolved config; None where it cannot be resolved here
    record: dict | None = None  # its line in the sweep's finished/ file, if it has one
    metric: str | None = None  # the metric its figure draws by name (Figure.metric), else the task's quality



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


def _flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in config.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def record_difference(job: Job) -> str | None:
    """Where the job's finished/ record ran another config than this command would: the keys
    that differ, as `key=its value (this command: value)`; None when it has no such record.
    What a reader needs when a committed figure's jobs show as not done, e.g. a setting the
    records ran with (`device.threads=1`) left off the command."""
    if job.record is None or job.config is None or not is_finished(job.record.get("summary")):
        return None
    ran = _flat(json.loads(_canonical(upgraded(job.record["summary"].get("result_config") or {}))))
    now = _flat(json.loads(job.config))
    keys = sorted(k for k in ran.keys() | now.keys() if ran.get(k) != now.get(k))
    if not keys:
        return None
    def shown(v):
        return "not set" if v is None else v

    return ", ".join(f"{k}={shown(ran.get(k))} (this command: {shown(now.get(k))})" for k in keys[:3]) + (
        ", ..." if len(keys) > 3 else "")


def is_done(job: Job, extra: list[str]) -> bool:
    """Finished with the same config, in its folder or as a committed record."""
    return folder_done(job, extra) or record_done(job, extra)

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
