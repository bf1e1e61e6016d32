"""Stopping `kondo-bench figures` cleanly: a stop signal goes on to the sweep it is running.

`figures` runs each sweep as a process of its own (`kondo-bench run -m ...`, jobs.launch) and
reads that process's output. Ctrl-C or SIGTERM to `figures` while such a sweep runs:

- is passed on to the sweep's process, which stops as any sweep does (kondo_bench/sweepstop.py):
  its running jobs end "interrupted" with their summaries, the rest do not start, exit 130.
  A second signal is passed on too (the jobs then stop at once, still with their summaries); a
  third kills the sweep's process (SIGKILL). The sweep's process leads a process group of its
  own (setsid), so that a signal to the group of `figures` (a terminal's Ctrl-C, `kill -TERM
  -PGID`) reaches it once, through here: twice, it would be taken for a second signal;
- `figures` reads the sweep's output to its end and waits for it, records the jobs that
  finished (jobs.run_sweeps), then ends in one line with exit 130 (`Stopped`, raised once the
  sweep's process is gone; command.main says it). No process outlives `figures`, and a sweep
  never goes on writing into a pipe nobody reads;
- should `figures` die without a word (kill -9), the sweep's process gets SIGTERM from the
  kernel (`DIE_WITH_ENV`: it asks for that itself as it starts, cli.run_main).

Outside a sweep (planning, drawing) interrupt.guarded stands: one line and exit 130 at once,
nothing runs then. A signal `figures` ignores (`nohup`) stays ignored.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager

PASSED_ON = 2  # signals passed on as they are; any later one kills the sweep's process


class Stopped(Exception):
    """`figures` got a stop signal while a sweep ran; raised once that sweep's process ended."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)


class PassOn:
    """The signal handlers of `figures` while a sweep's process runs (see the module's docstring)."""

    def __init__(self):
        self.signals: list[int] = []
        self.child = None  # the sweep's subprocess.Popen, once started
        self.sent = 0

    @contextmanager
    def installed(self):
        old = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)
               if signal.getsignal(s) is not signal.SIG_IGN}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def attach(self, child) -> None:
        """The sweep's process has started: it gets any signal that came while it was starting."""
        self.child = child
        self._pass_on()

    def stopped(self) -> None:
        """Raise `Stopped` if a signal came (call once the sweep's process has ended)."""
        if self.signals:
            raise Stopped(self.signals[0])

    def _handler(self, signum, _frame) -> None:
        self.signals.append(signum)
        self._pass_on()

    def _pass_on(self) -> None:
        while self.child is not None and self.sent < len(self.signals):
            i = self.sent
            self.sent += 1
            # send_signal: nothing to a process already reaped (its pid may be another's by now)
            self.child.send_signal(self.signals[i] if i < PASSED_ON else signal.SIGKILL)
