"""`kondo-bench run|data ...`: thin; parses, dispatches.

`run` hands the rest of the command line to Hydra, so every Hydra feature works as usual:
`kondo-bench run task=mnist price=0.1`, `kondo-bench run -m price=0,0.1,1 seed=0,1`,
`kondo-bench run --cfg job`, `hydra/launcher=joblib`, ...
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from .config import register
from .errors import UserError

USAGE = """usage: kondo-bench COMMAND [ARGS]

commands:
  run [-m] [KEY=VALUE ...]   train one run, or a Hydra multirun sweep with -m
                             (e.g. kondo-bench run task=mnist method=dgk keep_rate=0.03)
  data mnist [--root DIR]    download and verify the MNIST IDX files
  summarize SWEEP_DIR [--out FILE_STEM]
                             one tidy table (CSV + Parquet) of every job in a sweep folder
  plot SWEEP_DIR [--out DIR] quality-cost trade-off (Pareto frontier) and learning curves, PNG + PDF
  figures [--scale test|quick|report|paper] [--only NAME] [--out DIR] [--jobs N] [KEY=VALUE ...]
                             run each paper figure's sweeps (skipping finished jobs) and draw it

options:
  -h, --help                 this message (COMMAND --help: that command's options)
  --version                  the kondo-bench version

`kondo-bench run --help` lists the config groups and keys; README.md documents them.
"""

register()
log = logging.getLogger("kondo_bench")


def _report(error: UserError) -> None:
    print(f"kondo-bench: error: {error}", file=sys.stderr)
    sys.exit(2)


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def _hydra_run(cfg) -> float | None:
    from .train import run_experiment

    out_dir = HydraConfig.get().runtime.output_dir
    shown = _shown(out_dir)
    try:
        summary = run_experiment(cfg, out_dir, task_config=HydraConfig.get().runtime.choices.get("task"))
    except UserError as e:
        from .reliability import FolderBusy

        if not isinstance(e, FolderBusy):  # a live run's folder is not ours to tidy
            _remove_if_not_a_run(out_dir)
        _report(e)
    if summary.get("skipped"):
        print(f"skipped: {shown} already holds a {summary['status']} run of this config (resume=false reruns it)")
        return summary["final_quality"]
    if summary["status"] == "failed":
        print(f"kondo-bench: error: run failed: {summary['error']}; partial metrics and a failed summary "
              f"are in {shown}", file=sys.stderr)
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            sys.exit(1)
        return None  # a sweep goes on to its next job
    q = summary["final_quality"]
    print(f"{summary['status']}: {summary['quality_metric']}={q if q is None else f'{q:.4g}'} "
          f"after {summary['steps']} steps; backward samples {summary['backward_samples']:,} "
          f"of {summary['forward_samples']:,} screened; {summary['wall_seconds']:.1f} s; results in {shown}")
    if summary["status"] == "interrupted":
        sys.exit(130)
    return q


def _shown(path: str) -> str:
    """A result folder as the user named it: relative to the current directory when inside it."""
    rel = Path(os.path.relpath(path))
    return str(rel) if not rel.parts or rel.parts[0] != ".." else str(path)


def _remove_if_not_a_run(out_dir: str) -> None:
    """After a refusal inside the job: remove the folder Hydra made if it holds nothing but
    Hydra's own files (`.hydra/`, the log) and our lock, so that it is not taken for a run."""
    from .reliability import LOCK

    folder = Path(out_dir)
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    if all(p.name in (".hydra", LOCK) or p.suffix == ".log" and p.is_file() for p in entries):
        shutil.rmtree(folder, ignore_errors=True)


def report_failed_jobs(sweep_dir: str | None, since: float, jobs: int) -> int:
    """At a sweep's end: how many of its jobs failed, which, and the first error. Read from the
    jobs' summaries (written since `since`), so it holds for every launcher."""
    from .results import read_summary
    from .sweeps import _overrides, job_dirs

    if not sweep_dir or not Path(sweep_dir).is_dir():
        return 0
    failed = []
    for job in job_dirs(sweep_dir):
        summary_file = job / "summary.json"
        if summary_file.is_file() and summary_file.stat().st_mtime >= since:
            summary = read_summary(job) or {}
            if summary.get("status") == "failed":
                failed.append((job, summary.get("error")))
    if not failed:
        return 0
    names = [f"{job.relative_to(sweep_dir)} ({' '.join(f'{k}={v}' for k, v in _overrides(job))})"
             for job, _ in failed]
    print(f"kondo-bench: error: {len(failed)} of {jobs} jobs failed: {', '.join(names)}; the first error: "
          f"{failed[0][1]}; `kondo-bench summarize {sweep_dir}` lists them", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] in ("--version", "-V"):
        from . import __version__
        print(f"kondo-bench {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "run":
        from .preflight import check_run

        started = time.time()
        try:
            plan = check_run(rest)  # every refusal happens here, before Hydra makes a folder
        except UserError as e:
            _report(e)
        sys.argv = [sys.argv[0], *rest, *(plan.pin if plan else [])]
        _hydra_run()
        if plan and plan.multirun:
            return report_failed_jobs(plan.sweep_dir, started, plan.jobs)
        return 0
    if command == "data":
        from .download import data_main
        return data_main(rest)
    if command == "summarize":
        from .sweeps import summarize_main
        return summarize_main(rest)
    if command == "plot":
        from .plots import plot_main
        return plot_main(rest)
    if command == "figures":
        from .figures import figures_main
        return figures_main(rest)
    print(f"kondo-bench: error: unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
