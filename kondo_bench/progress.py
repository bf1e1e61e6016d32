"""How far a sweep has got: jobs done / total, jobs failed, and an ETA from the finished jobs.

`Progress` draws a tqdm bar on a terminal and otherwise prints a plain line, at most every
`every` seconds and once at the end, readable in a log file:

    [mnist] jobs: 37/240 done (12 skipped), 1 failed, 34 min 10 s elapsed, about 3 h 10 min left

Jobs already finished when the sweep starts count as done from the start, but not towards
the pace: the ETA is the remaining jobs at the pace of the jobs that ended since the start
(`eta_seconds`), which accounts for jobs running in parallel without knowing how many do.

Two users: `kondo-bench figures` (kondo_bench/figures/jobs.py feeds it each job's end from the
launched multirun's output) and a multirun sweep (`SweepProgress`, a Hydra callback that
watches the sweep folder's summary.json files, so it works with any launcher).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from hydra.experimental.callback import Callback
from tqdm import tqdm

from .results import FINISHED


def eta_seconds(ended: int, elapsed: float, remaining: int) -> float | None:
    """Seconds left for `remaining` jobs if they go at the pace of the `ended` ones (done or
    failed since the start, in `elapsed` wall-clock seconds); None until one has ended."""
    if remaining <= 0:
        return 0.0
    if ended <= 0 or elapsed <= 0:
        return None
    return elapsed / ended * remaining


def format_duration(seconds: float | None) -> str:
    """'2 h 05 min', '4 min 07 s', '12 s'; '?' when unknown."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h} h {m:02d} min"
    return f"{m} min {s:02d} s" if m else f"{s} s"


class Progress:
    def __init__(self, total: int | None, skipped: int = 0, label: str = "jobs", every: float = 30.0,
                 stream=None, clock=time.monotonic):
        self.total, self.skipped, self.label, self.every = total, skipped, label, every
        self.done, self.failed, self.interrupted = skipped, 0, 0
        self.stream = stream or sys.stdout
        self.clock, self.start = clock, clock()
        self.last_line = -float("inf")
        self.bar = (tqdm(total=total, initial=skipped, unit="job", file=self.stream, dynamic_ncols=True,
                         desc=label, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
                    if _isatty(self.stream) else None)
        self._show(force=True)

    def eta(self) -> float | None:
        if self.total is None:
            return None
        ended = self.failed + self.interrupted
        remaining = self.total - self.done - ended
        return eta_seconds(self.done - self.skipped + ended, self.clock() - self.start, remaining)

    def line(self) -> str:
        total = "?" if self.total is None else self.total
        skipped = f" ({self.skipped} skipped)" if self.skipped else ""
        left = "" if self.total is None else f", about {format_duration(self.eta())} left"
        if self.total is not None and self.done + self.failed + self.interrupted >= self.total:
            left = ", all ended"
        stopped = f", {self.interrupted} interrupted" if self.interrupted else ""
        return (f"{self.label}: {self.done}/{total} done{skipped}, {self.failed} failed{stopped}, "
                f"{format_duration(self.clock() - self.start)} elapsed{left}")

    def update(self, done: int | None = None, failed: int | None = None, interrupted: int | None = None) -> None:
        """Set the counts (from a sweep folder, or after a launch ended)."""
        changed = (done is not None and done != self.done) or (failed is not None and failed != self.failed) \
            or (interrupted is not None and interrupted != self.interrupted)
        self.done = self.done if done is None else done
        self.failed = self.failed if failed is None else failed
        self.interrupted = self.interrupted if interrupted is None else interrupted
        if changed:
            self._show()

    def ended(self, ok: bool) -> None:
        """One job ended: done if ok, else failed."""
        self.update(done=self.done + ok, failed=self.failed + (not ok))

    def write(self, text: str) -> None:
        """A line of other output, printed above the bar on a terminal."""
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self._show()
            self.bar.close()
            self.bar = None
        self._show(force=True)

    def _show(self, force: bool = False) -> None:
        if self.bar is not None:
            self.bar.n = self.done
            eta = self.eta()
            stopped = f", {self.interrupted} interrupted" if self.interrupted else ""
            self.bar.set_postfix_str(f"{self.failed} failed{stopped}" + ("" if eta is None else f", ~{format_duration(eta)} left"))
            return
        now = self.clock()
        if force or now - self.last_line >= self.every:
            self.last_line = now
            print(self.line(), file=self.stream, flush=True)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# ---------------------------------------------------------------- a multirun: a Hydra callback
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def grid_size(overrides) -> int:
    """Jobs in a basic sweeper's grid: the product of each override's number of values."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    n = 1
    for o in OverridesParser.create().parse_overrides(list(overrides)):
        if o.is_sweep_override():
            n *= len(list(o.sweep_string_iterator()))
    return n


def folder_counts(sweep_dir: Path) -> tuple[int, int, int]:
    """(complete, failed, interrupted) runs under a sweep folder, from their summary.json; a job
    that failed before its first step (bad data, out of memory) writes a failed summary too."""
    done = failed = interrupted = 0
    for path in Path(sweep_dir).rglob("summary.json"):
        try:
            status = json.loads(path.read_text()).get("status")
        except (OSError, ValueError):
            continue  # being written: counted at the next look
        done += status in FINISHED
        failed += status == "failed"
        interrupted += status == "interrupted"
    return done, failed, interrupted


class SweepProgress(Callback):
    """`kondo-bench run -m ...`: jobs done / total, failed and ETA, from the sweep folder.

    Watching the folder rather than counting job ends in this process works with every
    launcher (joblib's workers and SLURM jobs run elsewhere). Configured in conf/config.yaml
    as `hydra.callbacks.progress`; `~hydra.callbacks.progress` turns it off.
    """

    def __init__(self, every: float = 30.0, poll: float = 2.0):
        self.every, self.poll = every, poll
        self.progress, self.stop, self.thread, self.lock = None, threading.Event(), None, threading.Lock()

    def __getstate__(self) -> dict:  # joblib and submitit pickle the callbacks: locks and threads stay here
        return {"every": self.every, "poll": self.poll}

    def __setstate__(self, state: dict) -> None:
        # unpickled in a joblib worker before its jobs: Hydra's config writer is wrapped there
        # too, so a job whose .hydra/ cannot be written is one line (kondo_bench/faults.py)
        from .faults import guard_hydra_writes

        guard_hydra_writes()
        self.__init__(**state)

    def on_multirun_start(self, config, **kwargs) -> None:
        self.dir = Path(config.hydra.sweep.dir)
        basic = config.hydra.sweeper.get("_target_") == BASIC_SWEEPER
        total = grid_size(config.hydra.overrides.task) if basic else None
        done, _, _ = folder_counts(self.dir)  # finished before: these jobs will be skipped
        self.progress = Progress(total, skipped=min(done, total or done), label=f"sweep {self.dir}",
                                 every=self.every, stream=sys.stderr)
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def on_job_end(self, config, job_return, **kwargs) -> None:
        if self.progress is not None:  # the basic launcher: this process, right at the job's end
            self._look()

    def on_multirun_end(self, config, **kwargs) -> None:
        if self.progress is None:
            return
        self.stop.set()
        self.thread.join(timeout=10)
        self._look()
        self.progress.close()
        self.progress = None

    def _look(self) -> None:
        with self.lock:  # the watcher thread and on_job_end
            done, failed, interrupted = folder_counts(self.dir)
            if self.progress is not None:
                total = self.progress.total
                self.progress.update(done=max(self.progress.skipped, done if total is None else min(done, total)),
                                     failed=failed, interrupted=interrupted)

    def _watch(self) -> None:
        while not self.stop.wait(self.poll):
            self._look()
