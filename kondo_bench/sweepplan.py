"""Which jobs a sweep folder holds, and which it meant to run.

A job folder is any folder holding `summary.json`, `metrics.jsonl` or `.hydra/config.yaml`;
its overrides are the lines Hydra wrote into `.hydra/overrides.yaml`. The jobs a sweep
meant to run come from the `multirun.yaml` Hydra writes when it launches one: those no job
folder ran never started (stopped, or the launcher died).
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

import yaml

from .results import METRICS, SUMMARY


def job_dirs(root: str | Path) -> list[Path]:
    """Every job folder under root (root itself may be one), in a stable order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))  # skip .hydra, .submitit
        if SUMMARY in filenames or METRICS in filenames or os.path.exists(os.path.join(dirpath, ".hydra", "config.yaml")):
            found.append(Path(dirpath))
    return sorted(found, key=_natural)


def _natural(path: Path):
    """Sort job 10 after job 9."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.parts]


def read_overrides(job: Path) -> list[str]:
    """The overrides a job ran with, as Hydra wrote them (.hydra/overrides.yaml)."""
    path = job / ".hydra" / "overrides.yaml"
    return [str(line) for line in yaml.safe_load(path.read_text()) or []] if path.exists() else []


def _overrides(job: Path | list[str]) -> list[tuple[str, str]]:
    """(key, value) of each override of a job folder (or of these override lines), Hydra's own left out."""
    out = []
    for line in read_overrides(job) if isinstance(job, Path) else job:
        key, _, value = str(line).partition("=")
        if key.startswith("~") or key.startswith("hydra"):
            continue
        out.append((key.lstrip("+"), value))
    return out


MULTIRUN = "multirun.yaml"  # what Hydra writes into a sweep folder when it launches the sweep


def planned_jobs(root: Path) -> list[list[str]] | None:
    """The override lines of every job the sweep under `root` meant to run, in Hydra's order, from
    its multirun.yaml (None where there is none, or another sweeper than the basic one made it)."""
    path = Path(root) / MULTIRUN
    if not path.is_file():
        return None
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        saved = yaml.safe_load(path.read_text()) or {}
        hydra = saved.get("hydra") or {}
        if not str((hydra.get("sweeper") or {}).get("_target_", "")).endswith("BasicSweeper"):
            return None
        params = [f"{k}={v}" for k, v in ((hydra.get("sweeper") or {}).get("params") or {}).items()]
        lines = params + [str(x) for x in (hydra.get("overrides") or {}).get("task") or []]
        batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(lines), None)
        return [list(job) for batch in batches for job in batch]
    except Exception:  # noqa: BLE001 - an unreadable or foreign multirun.yaml: list the folders only
        return None


def never_started(root: Path, jobs: list[Path]) -> list[tuple[int, list[str]]]:
    """(number, override lines) of each planned job (planned_jobs) that no job folder under root
    ran: none holds its overrides."""
    planned = planned_jobs(root)
    if not planned:
        return []
    ran = collections.Counter(tuple(sorted(read_overrides(j))) for j in jobs)  # two jobs may share overrides
    out = []
    for i, p in enumerate(planned):
        key = tuple(sorted(p))
        if ran[key] > 0:
            ran[key] -= 1
        else:
            out.append((i, p))
    return out
