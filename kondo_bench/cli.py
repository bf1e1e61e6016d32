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
from .faults import guard_hydra_writes, guard_joblib_pool
from .jobfault import announce, job_fault, record  # its import guards each sweep job's composition

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
guard_hydra_writes()  # here, not in run_main: a joblib worker imports this module to run its jobs
log = logging.getLogger("kondo_bench")


def _report(error: UserError) -> None:
    print(f"kondo-bench: error: {error}", file=sys.stderr)
    sys.exit(2)


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def _hydra_run(cfg) -> float | None:
    from .faults import job_failed
    from .sweepstop import in_parent, stopped

    hydra_cfg = HydraConfig.get()
    out_dir = hydra_cfg.runtime.output_dir
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if multirun and (why := stopped(hydra_cfg.sweep.dir)):  # the sweep was stopped before this job began
        job_failed(out_dir, cfg, f"not started: the sweep was stopped by {why}", status="interrupted")
        return None
    if multirun and (fault := job_fault(hydra_cfg)):  # an override of this job's own cannot be set
        record(cfg, out_dir, fault, _shown(out_dir))
        return None
    if multirun and not in_parent() and hasattr(os, "fork"):
        return _in_child(cfg, out_dir)
    return _job(cfg, out_dir, multirun, hydra_cfg)


def _in_child(cfg, out_dir: str) -> None:
    """A parallel launcher's job (joblib's worker) in a child process of its worker: a job killed
    (the kernel's out-of-memory killer, kill -9) costs that job only, recorded failed in its
    folder, where a dead worker would take the whole pool down with it. The worker itself never
    computes (no thread pool, no GPU context), so forking it is safe."""
    import signal

    from .faults import job_failed
    from .results import is_finished, read_summary

    hydra_cfg = HydraConfig.get()
    sys.stdout.flush()
    sys.stderr.flush()
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    worker = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _own_locks()
            _die_with(worker)
            for s in old:
                signal.signal(s, signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL)
            _job(cfg, out_dir, True, hydra_cfg)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    for s in old:  # the signals are the job's to take (the sweep's parent passes them on to it)
        signal.signal(s, signal.SIG_IGN)
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if os.WIFSIGNALED(status) and not is_finished(read_summary(out_dir)):
        name = signal.Signals(os.WTERMSIG(status)).name
        why = " (the kernel's out-of-memory killer sends SIGKILL: lower the run's size or run fewer jobs at once)" \
            if name == "SIGKILL" else ""
        job_failed(out_dir, cfg, f"the job's process was killed by {name}{why}")
        print(f"kondo-bench: error: job {_shown(out_dir)} failed: killed by {name}", file=sys.stderr)
    elif os.WIFEXITED(status) and os.WEXITSTATUS(status) and read_summary(out_dir) is None:
        job_failed(out_dir, cfg, f"the job's process ended with status {os.WEXITSTATUS(status)} and no summary")
    return None


def _own_locks() -> None:
    """Give a job's forked process a lock for its progress bar that no other process shares.
    tqdm's default lock holds a multiprocessing semaphore made once per worker and inherited by
    every job forked from it: a job killed while it held that semaphore (tqdm takes it whenever a
    bar is made or closed, and in its monitor thread) left it taken for good, and the worker's
    next job hung at its first bar. A thread lock is process-local, and a process-local one never
    reaches the resource tracker either."""
    import threading

    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


def _die_with(parent: int) -> None:
    """This process gets SIGTERM when `parent` dies (Linux): a job's process when its worker dies,
    a sweep's when the `figures` reading it does, so that it ends 'interrupted' rather than run
    on as an orphan nobody waits for."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the worker died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def _job(cfg, out_dir: str, multirun: bool, hydra_cfg) -> float | None:
    """One run, its outcome printed in one line; in a sweep, its fault is recorded in its folder
    and costs this job only."""
    from .faults import as_user_error, describe, job_failed
    from .folderlock import FolderBusy
    from .interrupt import say
    from .sweepstop import in_parent, mark_stopped
    from .experiment import run_experiment

    shown = _shown(out_dir)
    sweep_dir = hydra_cfg.sweep.dir if multirun else None
    try:
        try:
            summary = run_experiment(cfg, out_dir, task_config=hydra_cfg.runtime.choices.get("task"))
        except (OSError, RuntimeError, MemoryError) as e:  # the machine's fault: one line where we can
            raise as_user_error(e, out_dir) or e
    except UserError as e:
        if not multirun:
            if not isinstance(e, FolderBusy):  # a live run's folder is not ours to tidy
                _remove_if_not_a_run(out_dir)
            _report(e)
        if not isinstance(e, FolderBusy):
            job_failed(out_dir, cfg, str(e))  # this job's fault costs this job only: the sweep goes on
        say(f"kondo-bench: error: job {shown} failed: {e}", sys.stderr)
        return None
    except Exception as e:  # noqa: BLE001 - in a sweep, an unexpected error costs its job only
        if not multirun:
            raise
        line = describe(e, out_dir) or f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        job_failed(out_dir, cfg, line, exc=e)
        say(f"kondo-bench: error: job {shown} failed: {line} (traceback in {shown}/error.txt)", sys.stderr)
        return None
    if summary.get("skipped"):
        say(f"skipped: {shown} already holds a {summary['status']} run of this config (resume=false reruns it)")
        return summary["final_quality"]
    if summary["status"] == "failed":
        say(f"kondo-bench: error: run failed: {summary['error']}; partial metrics and a failed summary "
            f"are in {shown}", sys.stderr)
        if not multirun:
            sys.exit(1)
        return None  # a sweep goes on to its next job
    stop = summary["status"] == "interrupted"
    if stop and multirun:  # before the line: nothing it costs may start the jobs not yet begun
        mark_stopped(sweep_dir, "a signal" if in_parent() else "a signal to one of its jobs")
    q = summary["final_quality"]
    say(f"{summary['status']}: {summary['quality_metric']}={q if q is None else f'{q:.4g}'} "
        f"after {summary['steps']} steps; backward samples {summary['backward_samples']:,} "
        f"of {summary['forward_samples']:,} screened; {summary['wall_seconds']:.1f} s; results in {shown}")
    if stop and (not multirun or in_parent()):
        sys.exit(130)  # the basic launcher: the sweep ends with this job (a worker's marked the sweep stopped)
    return q


def _shown(path: str) -> str:
    """A result folder as the user named it: relative to the current directory when inside it."""
    rel = Path(os.path.relpath(path))
    return str(rel) if not rel.parts or rel.parts[0] != ".." else str(path)


def _remove_if_not_a_run(out_dir: str) -> None:
    """After a refusal inside the job: remove the folder Hydra made if it holds nothing but
    Hydra's own files (`.hydra/`, the log) and our lock, so that it is not taken for a run."""
    from .folderlock import LOCK

    folder = Path(out_dir)
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    if all(p.name in (".hydra", LOCK) or p.suffix == ".log" and p.is_file() for p in entries):
        shutil.rmtree(folder, ignore_errors=True)


def run_main(rest: list[str]) -> int:
    """`kondo-bench run`: every refusal first, then Hydra; a sweep's exit status says how it
    ended: 0 every job complete (or skipped), 1 a job failed or never ran, 2 refused before
    anything ran, 130 stopped by a signal."""
    from .interrupt import say
    from .preflight import check_run
    from .sweepreport import report_failed_jobs
    from .sweepstop import DIE_WITH_ENV, SweepStopper, clear, shut_down_workers, stopped

    if parent := os.environ.pop(DIE_WITH_ENV, None):  # a sweep of `figures`: no orphan should it die
        _die_with(int(parent))
    started = time.time()
    try:
        plan = check_run(rest)  # every refusal happens here, before Hydra makes a folder
    except UserError as e:
        _report(e)
    if plan and plan.failed:  # said now, not at the sweep's end
        announce(plan.failed, plan.jobs)
    sys.argv = [sys.argv[0], *rest, *(plan.pin if plan else [])]
    try:
        if not (plan and plan.multirun):
            _hydra_run()
            return 0
        clear(plan.sweep_dir)
        guard_joblib_pool()
        try:
            with SweepStopper(plan.sweep_dir).installed():
                _hydra_run()
        finally:
            shut_down_workers()
    finally:
        if plan and plan.lock is not None:
            plan.lock.__exit__(None, None, None)
    if why := stopped(plan.sweep_dir):
        say(f"kondo-bench: sweep stopped by {why}: its running jobs ended 'interrupted' and the rest did not "
            f"start; run the same command again to continue (`kondo-bench summarize {plan.sweep_dir}` lists them)",
            sys.stderr)
        return 130
    return report_failed_jobs(plan.sweep_dir, started, plan.jobs)


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
        return run_main(rest)
    if command == "data":
        from .download import data_main
        return data_main(rest)
    if command == "summarize":
        from .summarize import summarize_main
        return summarize_main(rest)
    if command == "plot":
        from .plots import plot_main
        return plot_main(rest)
    if command == "figures":
        from .figures import figures_main
        return figures_main(rest)
    print(f"kondo-bench: error: unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # python -m kondo_bench.cli: the signal guard of `kondo-bench` too
    from kondo_bench.interrupt import guarded

    sys.exit(guarded(main))
