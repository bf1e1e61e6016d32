"""One run's files: metrics rows as they happen, a summary written last and atomically.

A run folder holds `.hydra/` (the composed config, written by Hydra), `metrics.jsonl`
(one JSON row per evaluation, flushed as written so a killed run keeps every finished
row) and `summary.json`. The summary is written once, at the end, by rename: a folder
without it is incomplete, and its `status` says how the run ended.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from pathlib import Path

from .errors import UserError

METRICS = "metrics.jsonl"
# How a run may end as planned: its budget spent (`complete`), or stopped at the first
# evaluation whose quality crossed `solved_below` (`solved`: the rest of the budget would only
# refine a result already reached). Both are finished work; `interrupted` and `failed` are not.
FINISHED = ("complete", "solved")
SUMMARY = "summary.json"
log = logging.getLogger(__name__)


def _clean(x):
    """JSON has no NaN: write non-finite floats as null rather than invalid JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def atomic_write_json(path: Path, obj) -> None:
    """Write to a temporary file in the same folder, then rename over the target."""
    _atomic_write_text(path, json.dumps(_clean(obj), indent=2, sort_keys=False) + "\n")


def _atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunWriter:
    """Metrics rows, flushed as written. `rows` are kept from an earlier attempt (a resume)."""

    def __init__(self, out_dir: str | Path, rows: list[dict] | None = None):
        self.dir = Path(out_dir)
        self.rows = [_clean(row) for row in rows or []]
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            # the kept rows replace the file in one rename: a kill here loses no row the checkpoint counts
            _atomic_write_text(self.dir / METRICS, "".join(json.dumps(row) + "\n" for row in self.rows))
            self._metrics = open(self.dir / METRICS, "a", buffering=1)
        except OSError as e:
            raise UserError(f"cannot write results to {self.dir} ({e.strerror or e}); "
                            "choose a writable folder with hydra.run.dir=... (or hydra.sweep.dir=...)") from e
        self.views: list = []  # live views of the rows (kondo_bench/loggers.py): TensorBoard, W&B

    def attach(self, views: list) -> None:
        """Feed these views the rows so far (a resume's kept rows), then every new row."""
        self.views = list(views)
        for row in self.rows:
            for view in self.views:
                view.log(row)

    def append(self, row: dict) -> None:
        row = _clean(row)
        self.rows.append(row)
        self._metrics.write(json.dumps(row) + "\n")
        self._metrics.flush()
        for view in self.views:
            view.log(row)

    def close_views(self, status: str | None = None) -> None:
        views, self.views = self.views, []
        for view in views:
            view.close(status)

    def finish(self, summary: dict) -> None:
        """Write the summary last, with the metrics file's row count and digest: a folder whose
        metrics no longer match them (truncated, edited) is not complete (`incomplete_reason`)."""
        self.close_views(summary.get("status"))
        self._metrics.close()
        summary = {**summary, **metrics_digest(self.dir)}
        atomic_write_json(self.dir / SUMMARY, summary)


def metrics_digest(run_dir: str | Path) -> dict:
    """The metrics rows' count and SHA-256, as a finished run's summary records them: of the rows
    every reader reads (read_metrics), so a torn line the readers drop changes neither."""
    path = Path(run_dir) / METRICS
    data = path.read_bytes() if path.exists() else b""
    digest, rows = hashlib.sha256(), 0
    for line in data.split(b"\n"):
        try:
            is_row = isinstance(json.loads(line), dict) if line.strip() else False
        except ValueError:
            is_row = False
        if is_row:
            digest.update(line.strip() + b"\n")
            rows += 1
    return {"metrics_rows": rows, "metrics_sha256": digest.hexdigest()}


def incomplete_reason(run_dir: str | Path, summary: dict) -> str | None:
    """Why a folder whose summary says complete is not (its metrics file no longer matches the
    row count and digest the summary recorded), else None. Summaries written before the
    digest existed are taken at their word."""
    if "metrics_sha256" not in summary:
        return None
    now = metrics_digest(run_dir)
    if now["metrics_sha256"] == summary["metrics_sha256"]:
        return None
    return (f"{METRICS} holds {now['metrics_rows']} rows, not the {summary.get('metrics_rows')} its summary "
            "recorded (truncated or changed since): rerun the job")


def write_ended(run_dir: str | Path, summary: dict) -> None:
    """A summary for a job that ended without training (failed before its first step, or not
    started because its sweep was stopped): it says why, so that no one takes the folder for a
    run still going. Never over a complete run's summary."""
    run_dir = Path(run_dir)
    prior = read_summary(run_dir)
    if is_finished(prior):
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / SUMMARY, {"steps": 0, **summary, **metrics_digest(run_dir)})


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The metrics rows of a run folder. A run killed mid-write (kill -9, a lost node, power)
    can leave a torn last line: it is dropped with a warning, as is any other line that is
    not a JSON row, so that a resume, `summarize` and the plots still read what was finished."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    lines = path.read_text(errors="replace").split("\n")
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        elif any(rest.strip() for rest in lines[i + 1:]):
            log.warning("%s: dropped line %d, which is not a JSON row", path, i + 1)
        else:
            log.warning("%s: dropped a torn last line (the run was killed while writing it)", path)
    return rows


def is_finished(summary: dict | None) -> bool:
    """A summary of a run that ended as planned (see FINISHED)."""
    return bool(summary) and summary.get("status") in FINISHED


def read_summary(run_dir: str | Path) -> dict | None:
    """The summary, or None if there is none or it cannot be read (then the run is incomplete)."""
    path = Path(run_dir) / SUMMARY
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        log.warning("ignoring unreadable %s (%s)", path, e)
        return None
