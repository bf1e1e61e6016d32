"""Many runs as one tidy table: find a sweep's job folders, load them once, find the frontier.

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

Plots and figures take these tables; nothing re-parses the run folders.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from .reliability import NOT_RESULTS
from .results import METRICS, SUMMARY, incomplete_reason, is_finished, read_metrics

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


def write_table(df: pd.DataFrame, stem: str | Path) -> list[Path]:
    """CSV always; Parquet too, or JSON lines when pyarrow (or fastparquet) is missing."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + ".csv")]
    df.to_csv(paths[0], index=False)
    try:
        df.to_parquet(stem.with_name(stem.name + ".parquet"), index=False)
        paths.append(stem.with_name(stem.name + ".parquet"))
    except ImportError:
        df.to_json(stem.with_name(stem.name + ".jsonl"), orient="records", lines=True)
        paths.append(stem.with_name(stem.name + ".jsonl"))
    return paths


SHOW = ["run", "task", "method", "gate", "price", "keep_rate", "eta", "seed", "final_quality",
        "best_quality", "backward_samples", "forward_samples", "cost", "train_seconds"]


def show(tables: SweepTables, file=None) -> None:
    """Print the results table (the columns that tell jobs apart) and the incomplete jobs."""
    runs = tables.runs
    if runs.empty:
        print("no complete jobs", file=file)
    else:
        extra = [c for c in runs.columns if c not in CONFIG_COLUMNS + RESULT_COLUMNS + META_COLUMNS + DATA_COLUMNS
                 and runs[c].nunique(dropna=False) > 1]
        cols = [c for c in SHOW if c in runs.columns and (c in ("run", "final_quality", "seed")
                                                          or runs[c].notna().any())]
        cols = cols[:8] + extra + cols[8:]
        with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200,
                               "display.float_format", _fmt):
            print(runs[cols].to_string(index=False), file=file)
    if not tables.incomplete.empty:
        print(f"\n{len(tables.incomplete)} incomplete job(s), not in the table above:", file=file)
        for r in tables.incomplete.itertuples():
            print(f"  {r.run}: {r.reason}", file=file)


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def summarize_main(argv: list[str]) -> int:
    """`kondo-bench summarize SWEEP_DIR [--out FILE_STEM]`."""
    parser = argparse.ArgumentParser(prog="kondo-bench summarize",
                                     description="One tidy table of every job in a sweep folder.")
    parser.add_argument("sweep_dir", help="a multirun folder (or any folder of run folders)")
    parser.add_argument("--out", help="file stem for the tables (default: SWEEP_DIR/sweep): writes STEM.csv, "
                        "STEM.parquet (STEM.jsonl without pyarrow) and STEM_incomplete.csv")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    root = Path(args.sweep_dir)
    if not root.is_dir():
        print(f"kondo-bench: error: no folder {root}", file=sys.stderr)
        return 2
    tables = load_sweep(root, curves=False)
    if tables.runs.empty and tables.incomplete.empty:
        print(f"kondo-bench: error: no run folders under {root} (looked for {SUMMARY} and .hydra/)", file=sys.stderr)
        return 2
    show(tables)
    stem = Path(args.out) if args.out else root / "sweep"
    try:
        written = write_table(tables.runs, stem)
        if not tables.incomplete.empty:
            written += write_table(tables.incomplete, stem.with_name(stem.name + "_incomplete"))[:1]
    except OSError as e:
        from .faults import describe

        why = (describe(e, stem.parent) or f"{e.strerror or e}: {e.filename or stem}").split(": choose")[0]
        print(f"kondo-bench: error: cannot write the tables to {stem}.*: {why}; give --out a writable "
              "FILE_STEM", file=sys.stderr)
        return 2
    print(f"\n{len(tables.runs)} complete, {len(tables.incomplete)} incomplete; wrote "
          + ", ".join(str(p) for p in written))
    return 0
