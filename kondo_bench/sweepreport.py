"""A sweep's end: which of the jobs it launched failed or never ran, said in one line each.

Read from the jobs' folders (their summaries), so it holds for every Hydra launcher.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .faults import disk_full


def _touched_since(job: Path, since: float) -> bool:
    """Whether this sweep wrote into the job's folder: a folder left by an earlier, killed
    command (which this one did not launch, e.g. a search's later stage) is not its failure."""
    files = [job, *job.iterdir(), *(job / ".hydra").glob("*")] if job.is_dir() else []
    return any(f.stat().st_mtime >= since for f in files if f.exists())


def report_failed_jobs(sweep_dir: str | None, since: float, jobs: int) -> int:
    """At a sweep's end: how many of its jobs failed, which, and the first error. Read from the
    jobs' summaries (written since `since`), so it holds for every launcher."""
    from .results import read_summary
    from .sweepplan import _overrides, job_dirs, never_started

    if not sweep_dir or not Path(sweep_dir).is_dir():
        return 0
    failed, jobs_seen = [], job_dirs(sweep_dir)
    for job in jobs_seen:
        summary_file = job / "summary.json"
        if summary_file.is_file() and summary_file.stat().st_mtime >= since:
            summary = read_summary(job) or {}
            if summary.get("status") == "failed":
                failed.append((job, summary.get("error")))
        elif not summary_file.is_file() and job != Path(sweep_dir) and _touched_since(job, since):
            failed.append((job, "it ended without a summary (killed?)"))
    unstarted = never_started(Path(sweep_dir), jobs_seen)
    if (failed or unstarted) and (full := disk_full(sweep_dir)):  # jobs' records are missing: say why, once
        print(f"kondo-bench: error: the disk holding {sweep_dir} is full ({full} free), so jobs could not write "
              f"their results; free some space and run the same command again (finished jobs are skipped)",
              file=sys.stderr)
        return 1
    if unstarted:
        print(f"kondo-bench: error: {len(unstarted)} of {jobs} jobs never started (the first: "
              f"{' '.join(unstarted[0][1])}); `kondo-bench summarize {sweep_dir}` lists them", file=sys.stderr)
    if not failed:
        return 1 if unstarted else 0
    names = [f"{job.relative_to(sweep_dir)} ({' '.join(f'{k}={v}' for k, v in _overrides(job))})"
             for job, _ in failed]
    print(f"kondo-bench: error: {len(failed)} of {jobs} jobs failed: {', '.join(names)}; the first error: "
          f"{failed[0][1]}; `kondo-bench summarize {sweep_dir}` lists them", file=sys.stderr)
    return 1
