"""One writer per run folder: `FolderLock` holds the folder's lock while a run writes it, and
a lock of a dead process does not count (`lock_holder`, `refuse_locked` for the pre-run check).
"""

from __future__ import annotations

import fcntl
import logging
import os
from contextlib import suppress
from pathlib import Path

from .errors import UserError

log = logging.getLogger(__name__)


# One writer per run folder: an advisory lock (flock) on a file in the folder, held for the
# run's life. The kernel drops it when the process dies however it dies (kill -9 included),
# so a stale lock never blocks the next run; the file keeps the holder's pid for the message.
LOCK = ".kondo-bench.lock"


def refuse_locked(folder, pid: int | None) -> None:
    who = f"process {pid}" if pid else "another process"
    raise FolderBusy(f"{folder} is being written by {who} (a kondo-bench run that is still alive); "
                     f"wait for it to finish, stop it (kill {pid or 'PID'}), or choose another folder "
                     "with hydra.run.dir=... (or hydra.sweep.dir=...)")


def _holder_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


def lock_holder(folder) -> int | None:
    """The pid of a live process holding the folder's lock (0 if unknown), else None."""
    path = Path(folder) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _holder_pid(fd) or 0
    except OSError:  # no locks on this filesystem
        return None
    finally:
        os.close(fd)


class FolderBusy(UserError):
    """A live process is writing the run folder."""


_HELD: dict[str, int] = {}  # folders this process holds the lock of -> how many holders


class FolderLock:
    """Hold the folder's lock while a run writes it; `FolderBusy` if a live process holds it.
    Re-entrant within a process: the CLI takes it before Hydra writes, the run again inside."""

    def __init__(self, folder):
        self.folder, self.fd, self.nested = Path(folder), None, False

    def __enter__(self):
        key = f"{os.getpid()}:{self.folder.absolute()}"  # a forked child holds none of its parent's
        if key in _HELD:
            _HELD[key] += 1
            self.nested = True
            return self
        made = not self.folder.is_dir()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"cannot write results to {self.folder} ({e.strerror or e}); "
                            "choose a writable folder with hydra.run.dir=... (or hydra.sweep.dir=...)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder_pid(fd)
            os.close(fd)
            refuse_locked(self.folder, pid)
        except OSError as e:  # e.g. a filesystem without locks: run unguarded rather than not at all
            log.warning("cannot lock %s (%s); make sure no other run writes it", self.folder, e.strerror or e)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:  # a full disk: one line, and no empty lock left behind to puzzle over
            from .faults import as_user_error

            os.close(fd)
            (self.folder / LOCK).unlink(missing_ok=True)
            if made:
                with suppress(OSError):
                    self.folder.rmdir()
            raise as_user_error(e, self.folder) or UserError(f"cannot write {self.folder / LOCK}: {e}") from None
        self.fd = fd
        _HELD[key] = 1
        return self

    def __exit__(self, *exc):
        key = f"{os.getpid()}:{self.folder.absolute()}"  # a forked child holds none of its parent's
        if self.nested or self.fd is not None:
            _HELD[key] -= 1
            if _HELD[key] == 0:
                del _HELD[key]
        if self.nested:
            self.nested = False
            return
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor releases the flock
            self.fd = None
