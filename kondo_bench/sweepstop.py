"""Stopping a sweep cleanly under any launcher: one signal to its parent stops every job.

Ctrl-C or SIGTERM to a `kondo-bench run -m ...` parent process:

- marks the sweep folder stopped (a `.kondo-bench.stopped` file holding the signal's name), so
  that a job that has not started yet does not start (it writes an "interrupted" summary
  saying so and returns at once);
- passes the signal on to every live job of the sweep in another process (a joblib worker):
  each job's lock file names its pid, so the signal goes to the processes running jobs and
  to nothing else. Each of them ends its run with an "interrupted" summary (a second signal:
  at once). A thread started with the handlers looks every `POLL` seconds until the launcher
  returns, so a job that took its lock just after the signal is stopped too;
- the parent then exits with status 130 (see cli.main), and joblib's idle workers are shut
  down, so no process outlives the sweep.

Under the basic launcher the jobs run in the parent itself: a job's own `StopFlag` takes the
signal while it runs, and the sweep ends with that job (as it always did).
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

STOPPED = ".kondo-bench.stopped"
POLL = 0.3
PARENT_ENV = "KONDO_BENCH_SWEEP_PARENT"  # the pid of the process that launched the sweep
DIE_WITH_ENV = "KONDO_BENCH_DIE_WITH"  # a pid (`figures`): the sweep's process gets SIGTERM when it dies


def stopped(sweep_dir) -> str | None:
    """The signal that stopped this sweep, if one did (read by each job before it starts)."""
    try:
        return (Path(sweep_dir) / STOPPED).read_text().strip() or "a signal"
    except (OSError, TypeError):
        return None


def mark_stopped(sweep_dir, why: str) -> None:
    """Mark the sweep stopped; the first reason given is kept."""
    try:
        Path(sweep_dir).mkdir(parents=True, exist_ok=True)
        with open(Path(sweep_dir) / STOPPED, "x") as f:
            f.write(why + "\n")
    except OSError:  # FileExistsError included: already stopped, by the reason written first
        pass


def clear(sweep_dir) -> None:
    """A new launch of the sweep (a resume) runs its unfinished jobs again."""
    if sweep_dir:
        (Path(sweep_dir) / STOPPED).unlink(missing_ok=True)


def in_parent() -> bool:
    """Whether this process launched the sweep (the basic launcher), not a worker of it."""
    return os.environ.get(PARENT_ENV) == str(os.getpid())


def live_jobs(sweep_dir) -> dict[Path, int]:
    """Job folders under the sweep whose lock a live process holds, with that process's pid."""
    from .folderlock import LOCK, lock_holder

    out = {}
    for lock in Path(sweep_dir).rglob(LOCK):
        if (pid := lock_holder(lock.parent)) and pid != os.getpid():
            out[lock.parent] = pid
    return out


class SweepStopper:
    """The parent's signal handlers while its launcher runs (see the module's docstring)."""

    def __init__(self, sweep_dir):
        self.dir = Path(sweep_dir)
        self.signals: list[int] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._forward, daemon=True)

    @contextmanager
    def installed(self):
        os.environ[PARENT_ENV] = str(os.getpid())
        old = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}
        # The forwarding thread starts here, not in the handler: starting a thread takes
        # threading's internal locks, which the interrupted main thread may be holding.
        self.thread.start()
        try:
            yield self
        finally:
            self.done.set()
            self.thread.join(timeout=5)
            for s, h in old.items():
                signal.signal(s, h)
            os.environ.pop(PARENT_ENV, None)

    def _handler(self, signum, _frame) -> None:
        # Only a list append and a file write: nothing that takes a lock the main thread holds.
        mark_stopped(self.dir, signal.Signals(signum).name)
        self.signals.append(signum)

    def _forward(self) -> None:
        sent: dict[int, int] = {}  # pid -> how many of our signals it has had
        while True:
            for pid in set(live_jobs(self.dir).values()) if self.signals else ():
                while sent.get(pid, 0) < len(self.signals):
                    try:
                        os.kill(pid, self.signals[sent.get(pid, 0)])
                    except ProcessLookupError:
                        break
                    sent[pid] = sent.get(pid, 0) + 1
            if self.done.wait(POLL):
                return


def shut_down_workers() -> None:
    """joblib keeps its worker processes for reuse after a sweep: end them with it."""
    import sys

    if "joblib" not in sys.modules:
        return
    try:
        from joblib.externals.loky import reusable_executor

        executor = getattr(reusable_executor, "_executor", None)
        if executor is not None:
            executor.shutdown(wait=True)  # idle by now: they exit cleanly
    except Exception:  # noqa: BLE001 - nothing to shut down
        pass
