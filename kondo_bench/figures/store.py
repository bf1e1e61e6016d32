"""Finished jobs kept as files to commit: `<out>/<scale>/finished/<sweep>.jsonl`.

A run folder (`runs/<sweep>/<job>/`) lives on the machine that ran it and is not committed
(`runs/` is ignored). So that a figure can be built up over several sessions, or partly on
another machine, `kondo-bench figures` also keeps every finished job of a sweep as one
line of that sweep's file, and treats a line whose config is the one the job would run as
finished work, like a finished folder. A line holds everything the tables are built from:

    {"job": "method=dg,seed=1",              # the job's folder name (Hydra's override_dirname)
     "overrides": ["task=bandit", ...],      # as .hydra/overrides.yaml has them
     "summary": {...},                       # summary.json, less its `config` (result_config stays)
     "metrics": {"columns": [...], "rows": [[...], ...]}}   # metrics.jsonl, column-wise

Lines are sorted by job, one per job: a rerun of a job (another config) replaces its line,
and two sessions that finished different jobs touch different lines. Files are written
whole and atomically, and only when a line changed.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..results import METRICS, SUMMARY, _atomic_write_text, _clean, read_metrics
from ..sweepplan import read_overrides

FINISHED = "finished"  # the folder of the files, beside runs/ under <out>/<scale>/
log = logging.getLogger(__name__)


def store_path(out: Path, sweep: str) -> Path:
    return out / FINISHED / f"{sweep}.jsonl"


def portable(value, root: Path):
    """`value` with every absolute path string in it made relative to `root` (the repository):
    a record is committed, and a reader's checkout has none of this machine's folders."""
    if isinstance(value, dict):
        return {k: portable(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, root) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        return os.path.relpath(value, root)
    return value


def record_of(job: Path, root: Path | None = None) -> dict:
    """A finished job folder as one record (see the module's docstring); absolute paths in its
    summary (the data folder) are made relative to `root`, by default the folder `figures` runs
    from (the repository)."""
    summary = json.loads((job / SUMMARY).read_text())
    summary.pop("config", None)  # result_config is the part that decides results; the rest is run options
    summary = portable(summary, Path.cwd() if root is None else root)
    rows = read_metrics(job) if (job / METRICS).exists() else []
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return {"job": job.name, "overrides": read_overrides(job), "summary": summary,
            "metrics": {"columns": columns, "rows": [[row.get(k) for k in columns] for row in rows]}}


def metrics_rows(record: dict) -> list[dict]:
    """A record's metrics rows, as read_metrics returns them (a key a row lacked reads null,
    which the tables hold as NaN either way)."""
    m = record.get("metrics") or {}
    return [dict(zip(m.get("columns", []), row)) for row in m.get("rows", [])]


def read_store(path: Path) -> dict[str, dict]:
    """job name -> record; a line that is not a record (a torn write, a merge marker) is
    skipped with a warning, so the other jobs still count."""
    records = {}
    if not path.exists():
        return records
    for i, line in enumerate(path.read_text(errors="replace").splitlines()):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            rec = None
        if not isinstance(rec, dict) or not isinstance(rec.get("job"), str) or not isinstance(rec.get("summary"), dict):
            log.warning("%s: line %d is not a finished-job record: skipped", path, i + 1)
            continue
        records[rec["job"]] = rec
    return records


def write_store(path: Path, records: dict[str, dict]) -> bool:
    """Write the records, one line each, sorted by job; False (nothing written) when the file
    already holds exactly these."""
    text = "".join(json.dumps(_clean(portable(records[k], Path.cwd())), separators=(",", ":")) + "\n"
                   for k in sorted(records))
    if path.exists() and path.read_text(errors="replace") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(path, text)
    return True
