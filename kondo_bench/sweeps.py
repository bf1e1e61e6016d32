"""Many runs as one tidy table: load a sweep's job folders once, find the frontier.

A job folder is any folder holding `summary.json`, `metrics.jsonl` or `.hydra/config.yaml`
(a Hydra multirun writes one per job under its sweep folder). `load_sweep` reads each
once and returns three pandas tables:

- `runs`: one row per *complete* job (summary.json with status complete): its config
  (task, method, gate, price, keep_rate, eta, seed, cost_ratio, device, plus every other key
  of the resolved config as a dotted column, `task.horizon`, `method.signal`, whether or not
  the job typed it; keys that do not change results, such as `resume`, are left out) and
  its results;
- `incomplete`: every other job, with the reason (no summary, status interrupted, ...);
  never mixed into `runs`;
- `curves`: the metrics rows of the complete jobs, with the same config columns.

Plots and figures take these tables; nothing re-parses the run folders. Which folders a
sweep holds, and which jobs it meant to run, is `sweepplan.py`; `kondo-bench summarize`,
which prints and writes the tables, is `summarize.py`.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from .resultconfig import NOT_RESULTS
from .results import METRICS, SUMMARY, incomplete_reason, is_finished, read_metrics
from .sweepplan import _overrides, job_dirs, never_started, read_overrides

# Config columns every row has; the flattened config adds the rest (e.g. `task.steps`, `method.signal`).
CONFIG_COLUMNS = ["task", "method", "gate", "price", "keep_rate", "eta", "seed", "cost_ratio", "device"]
RESULT_COLUMNS = ["status", "quality_metric", "final_quality", "best_quality", "forward_samples",
                  "backward_samples", "backward_units", "reforward_samples", "backward_fraction",
                  "cost", "cost_with_reforward", "optimizer_steps", "steps", "train_seconds", "wall_seconds"]
META_COLUMNS = ["run", "sweep"]  # where a row came from, not what it ran
DATA_COLUMNS = ["data_source", "train_images", "eval_images"]  # from the summary, where a task has data
# Config keys already carried by a config column (`method.eta` is `eta`; `gate` is the resolved
# method.gate), and keys that do not change what a run computes.
_ALIASES = {"method", "method.name", "method.eta", "method.gate", "task.name", "device", "device.name",
            *NOT_RESULTS}
# Metrics-row keys that would shadow a config column: renamed in `curves`.
_ROW_RENAMES = {"keep_rate": "interval_keep_rate", "price": "interval_price"}


@dataclass
class SweepTables:
    runs: pd.DataFrame
    incomplete: pd.DataFrame
    curves: pd.DataFrame


def _select(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def config_columns(config: dict, prefix: str = "") -> dict:
    """The resolved config flattened to dotted columns (`task.horizon`, `method.signal`), so that
    a key no job of a sweep typed is still a column; lists become strings."""
    cols = {}
    for key, value in config.items():
        dotted = prefix + str(key)
        if dotted in NOT_RESULTS:  # the whole group (logger.*): a run's options, not what it computes
            continue
        if isinstance(value, dict):
            cols.update(config_columns(value, dotted + "."))
        elif dotted not in CONFIG_COLUMNS and dotted not in _ALIASES:
            cols[dotted] = str(value) if isinstance(value, list) else value
    return cols


@functools.lru_cache(maxsize=None)
def preset_defaults(task: str, method: str, search: tuple[str, ...] = (), config_dir: str | None = None) -> dict:
    """The config columns of `kondo-bench run task=TASK method=METHOD` with nothing else set:
    what a run of that pair reads when no one typed a key ({} for a pair with no YAML on the
    search path: the package's conf/, and `search`/`config_dir` as the run had them)."""
    from omegaconf import OmegaConf

    from .compose import compose

    try:
        cfg = compose([f"task={task}", f"method={method}", *search], config_dir=config_dir)
    except Exception:  # noqa: BLE001  an unknown name: no defaults, every value is shown
        return {}
    return config_columns(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))


def _override_columns(job: Path | list[str], config: dict) -> dict:
    """Each override key as a column, typed from the resolved config where it is a scalar.

    A config-group choice (task=bandit_multi) is kept as the choice name; for `task` it
    replaces the task's own name, so bandit and bandit_multi stay apart.
    """
    cols = {}
    for key, value in _overrides(job):
        typed = _select(config, key)
        if isinstance(typed, (dict, list)) or typed is None and value not in ("null", ""):
            typed = value  # a group choice, or a key the config does not carry
        if key == "task" or key not in CONFIG_COLUMNS and key not in _ALIASES:
            cols[key] = typed
    return cols


def _hydra_config(job: Path) -> dict:
    path = job / ".hydra" / "config.yaml"
    try:
        return yaml.safe_load(path.read_text()) or {} if path.exists() else {}
    except yaml.YAMLError:
        return {}


def read_job(job: Path, root: Path) -> tuple[dict | None, dict | None, list[dict]]:
    """(result row, None, metrics rows) for a complete job; (None, incomplete row, []) otherwise."""
    run = str(job.relative_to(root)) if job != root else "."
    rows = read_metrics(job) if (job / METRICS).exists() else []
    summary, reason = None, None
    try:
        summary = json.loads((job / SUMMARY).read_text()) if (job / SUMMARY).exists() else None
    except (json.JSONDecodeError, OSError) as e:
        reason = f"unreadable {SUMMARY} ({e})"
    if summary is None and reason is None:
        reason = f"no {SUMMARY} ({len(rows)} metrics rows: still running, killed or failed)"
    if summary is not None and reason is None and is_finished(summary):
        reason = incomplete_reason(job, summary)  # its metrics cut short since: never plotted short
    config = None if summary and summary.get("config") else _hydra_config(job)
    return job_tables(run, summary, rows, read_overrides(job), reason, config)


def job_tables(run: str, summary: dict | None, rows: list[dict], overrides: list[str], reason: str | None = None,
               config: dict | None = None) -> tuple[dict | None, dict | None, list[dict]]:
    """`read_job` from a job's contents rather than its folder (a finished job kept as a record):
    its summary, metrics rows and override lines; `reason` says why a job without a summary is
    incomplete, `config` stands in for a summary that carries none."""
    if summary is not None and reason is None and not is_finished(summary):
        reason = f"status {summary.get('status')} after {summary.get('steps')} of {summary.get('steps_planned')} steps"
        if summary.get("error"):
            reason += f": {summary['error']}"
    if reason is not None:
        cfg = (summary or {}).get("config") or config or {}
        method = cfg.get("method") or {}
        inc = {"run": run, "reason": reason, "task": (cfg.get("task") or {}).get("name"),
               "method": method.get("name"), "price": cfg.get("price"), "keep_rate": cfg.get("keep_rate"),
               "eta": method.get("eta"), "seed": cfg.get("seed"), **_override_columns(overrides, cfg)}
        return None, inc, []
    # a record keeps only result_config: the rest of the config does not change results, nor columns
    config = summary.get("config") or summary.get("result_config") or config or {}
    forward = summary.get("forward_samples") or 0
    row = {
        "run": run,
        **{k: summary.get(k) for k in CONFIG_COLUMNS},
        **config_columns(config),
        **_override_columns(overrides, config),
        "status": summary["status"],
        "quality_metric": summary.get("quality_metric"),
        "final_quality": summary.get("final_quality"),
        "best_quality": summary.get("best_quality"),
        **{k: summary.get(k) for k in ("forward_samples", "backward_samples", "backward_units",
                                       "reforward_samples", "cost", "cost_with_reforward",
                                       "optimizer_steps", "steps", "wall_seconds")},
        "backward_fraction": summary.get("backward_samples", 0) / forward if forward else math.nan,
        "train_seconds": summary.get("time_train"),
        # what the task learnt from, where it says (MNIST: full set or the test-split fallback)
        **{k: summary[k] for k in DATA_COLUMNS if k in summary},
    }
    return row, None, rows


def load_sweep(source: str | Path | list[Path], root: str | Path | None = None, curves: bool = True) -> SweepTables:
    """Read every job under a sweep folder (or the given job folders) once."""
    missing = []
    if isinstance(source, (str, Path)):
        root = Path(source)
        jobs = job_dirs(root)
        # the jobs a sweep meant to run but no folder ran (stopped, or the launcher died)
        missing = [job_tables(f"(job {i})", None, [], lines, f"never started ({' '.join(lines)})")
                   for i, lines in never_started(root, jobs)]
    else:
        jobs = [Path(j) for j in source]
        root = Path(root) if root is not None else Path(os.path.commonpath([str(j) for j in jobs])) if jobs else Path(".")
    return tables_of([read_job(job, root) for job in jobs] + missing, curves)


def tables_of(results: list[tuple[dict | None, dict | None, list[dict]]], curves: bool = True) -> SweepTables:
    """The three tables from `read_job` (or `job_tables`) results, one per job."""
    done, missing, metric_frames = [], [], []
    for row, inc, rows in results:
        if row is None:
            missing.append(inc)
            continue
        done.append(row)
        if curves and rows:
            m = pd.DataFrame(rows).rename(columns=_ROW_RENAMES)
            m["quality"] = m.get(row["quality_metric"])
            for k, v in row.items():
                if k not in RESULT_COLUMNS or k == "quality_metric":
                    m[k] = v
            metric_frames.append(m)
    runs = _numeric(pd.DataFrame(done))
    if not runs.empty:  # config columns first, then results, in a fixed order
        extra = [c for c in runs.columns if c not in CONFIG_COLUMNS + RESULT_COLUMNS + META_COLUMNS + DATA_COLUMNS]
        data = [c for c in DATA_COLUMNS if c in runs.columns]
        runs = runs[["run", *CONFIG_COLUMNS, *sorted(extra), *RESULT_COLUMNS, *data]]
    incomplete = pd.DataFrame(missing, columns=None if missing else ["run", "reason"])
    for col in incomplete.columns:  # a job that never started has its values as typed (strings): one type a column
        if incomplete[col].dtype == object and incomplete[col].map(type).nunique() > 1:
            incomplete[col] = incomplete[col].map(lambda v: v if v is None else str(v))
    curves_df = _numeric(pd.concat(metric_frames, ignore_index=True)) if metric_frames else pd.DataFrame()
    return SweepTables(runs, incomplete, curves_df)


def _numeric(df: pd.DataFrame) -> pd.DataFrame:
    """price and keep_rate are None where the gate does not use them: NaN, in float columns."""
    for col in ("price", "keep_rate", "eta", "cost_ratio"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    return df


def series_keys(runs: pd.DataFrame) -> list[str]:
    """The columns that say what a job ran: the config columns (seed excluded), and each other
    config key that varies among runs of the same task and method (a key a preset fixes, such
    as PPO's epochs, or one every run shares, tells no series apart).

    Jobs equal on these are seeds of one configuration: one point, or one line, in a plot.
    """
    skip = set(RESULT_COLUMNS) | set(META_COLUMNS) | set(DATA_COLUMNS) | {"seed"}
    base = [c for c in CONFIG_COLUMNS if c in runs and c not in skip]
    groups = runs.groupby([c for c in ("task", "method") if c in runs], dropna=False) if len(runs) else None
    return base + [c for c in runs.columns if c not in skip and c not in base and groups is not None
                   and groups[c].nunique(dropna=False).gt(1).any()]


def pareto_front(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Rows no other row beats on both x and y (lower is better for both), sorted by x.

    A row is dominated when another has x' <= x and y' <= y with at least one strict;
    identical points are all kept.
    """
    d = df.dropna(subset=[x, y]).sort_values([x, y], kind="mergesort")
    keep, best_y, best_x = [], math.inf, None
    for idx, xv, yv in zip(d.index, d[x], d[y]):
        if yv < best_y or (yv == best_y and xv == best_x):
            keep.append(idx)
            best_y, best_x = yv, xv
    return d.loc[keep]
