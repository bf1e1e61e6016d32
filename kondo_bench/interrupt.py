"""A stop signal at any moment of a command: one line and exit 130, never a traceback.

While a run steps, its own handlers take Ctrl-C and SIGTERM (reliability.StopFlag: the run
ends "interrupted" with its rows kept; sweepstop.SweepStopper in a sweep's parent). Outside
them (torch and Hydra being imported, the config composed, the data loaded, `summarize` or
`figures` at work) Ctrl-C was a KeyboardInterrupt traceback and SIGTERM an exit 143 with no
word. `guarded` ends the command there at once with one line.

At once, by os._exit, not by raising: an exception thrown into an import half-way leaves
that module broken for the rest of the process (a later import of it recursed until
RecursionError), and a library's bare `except:` may swallow it. Nothing is lost: no run has
stepped yet (or its summary is written), a run's folder without a summary is run again by
the same command, and the folder lock goes with the process.

`say` prints a command's outcome line so that a reader gone away with the signal (a killed
`figures` reading a sweep's output) cannot turn the stop into a traceback or, in a sweep, into
this job's error and the start of the next job.

Light on purpose (no torch, no Hydra): it is installed before they are imported.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Callable


def _stop(signum, _frame) -> None:
    line = (f"kondo-bench: stopped by {signal.Signals(signum).name}; run the same command again to continue "
            "(finished runs are skipped)\n")
    for stream in (sys.stdout, sys.stderr):  # what was printed before the signal still shows
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a stream half-way through a write: leave it
            pass
    os.write(2, line.encode())  # not print(): the signal may have come in the middle of one
    os._exit(130)


def guarded(command: Callable[[], int]) -> int:
    """command(), with Ctrl-C and SIGTERM outside a run's own handlers ending it in one line and
    exit 130. A signal the caller ignores (SIG_IGN: `nohup`, a shell's background job) stays ignored."""
    for s in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(s) in (signal.default_int_handler, signal.SIG_DFL):
            signal.signal(s, _stop)
    return command()


def say(line: str, stream=None) -> None:
    """Print one line of a command's outcome (stdout unless `stream`). A reader that went away
    (the `figures` process reading a sweep's output was killed, a pipe closed) costs the line
    only: a run's folder holds all its line says, and what must follow the line (a sweep ending
    with its interrupted job, exit 130) must not fail on it. Every standard stream whose reader
    is gone then writes to /dev/null, so later lines, and the flush at exit, cannot fail either."""
    stream = sys.stdout if stream is None else stream
    try:
        print(line, file=stream, flush=True)
    except BrokenPipeError:
        for s in {id(s): s for s in (stream, sys.stdout, sys.stderr)}.values():
            if s is stream or _reader_gone(s):
                _to_devnull(s)


def _reader_gone(stream) -> bool:
    """A pipe whose read end is closed polls as an error (Linux); anything else: assume read."""
    import select

    try:
        poll = select.poll()
        poll.register(stream.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no file descriptor (a test's capture), no poll
        return False


def _to_devnull(stream) -> None:
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)
    except (AttributeError, OSError, ValueError):  # no file descriptor: nothing to redirect
        pass
