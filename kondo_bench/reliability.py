"""Nothing finished is lost, nothing unfinished passes for finished: where each part lives.

- `stopping.py`: `StopFlag` (Ctrl-C or SIGTERM stops the loop at the next step boundary),
  `check_stop`, and `NumericsGuard` (a non-finite delight, loss or weight stops the run);
- `checkpoint.py`: checkpoints at evaluation boundaries, written atomically with a checksum;
  a resumed run continues exactly where it left off;
- `folderlock.py`: `FolderLock`, one writer per run folder; a lock of a dead process does not count;
- `resultconfig.py`: `result_config`, the part of the config that decides a run's results, and
  `upgraded`, for deciding whether a finished folder or a checkpoint belongs to the run asked for.

The names stay importable from here, for code written against this module.
"""

from .checkpoint import (CHECKPOINT, CHECKPOINT_KEYS, CHECKPOINT_MAGIC, load_checkpoint, read_checkpoint,
                         remove_stale_temporaries, rng_state, save_checkpoint, set_aside, set_rng_state)
from .folderlock import LOCK, FolderBusy, FolderLock, lock_holder, refuse_locked
from .resultconfig import ADDED_KEYS, NOT_RESULTS, TASK_ADDED_KEYS, result_config, upgraded
from .stopping import NumericsError, NumericsGuard, StopFlag, Stopped, check_stop

__all__ = ["ADDED_KEYS", "CHECKPOINT", "CHECKPOINT_KEYS", "CHECKPOINT_MAGIC", "LOCK", "NOT_RESULTS", "TASK_ADDED_KEYS",
           "FolderBusy", "FolderLock", "NumericsError", "NumericsGuard", "StopFlag", "Stopped", "check_stop",
           "load_checkpoint", "lock_holder", "read_checkpoint", "refuse_locked", "remove_stale_temporaries",
           "result_config", "rng_state", "save_checkpoint", "set_aside", "set_rng_state", "upgraded"]
