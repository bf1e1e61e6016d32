"""The two kinds of training step the loop runs; each returns what it did (`Stepped`).

- `ScoreStep`: act, screen, gate, learn. The policy samples a batch, the method screens it
  without autograd into a `Selection`, and the core's compacted backward learns from the
  kept rows only. Every score-function estimator (pg, dg, ppo, pmpo, ce) through any gate.
- `PathwiseStep`: an estimator that differentiates through the sample (a VAE's reparam,
  Gumbel-Softmax, silent) has no per-sample score term to screen or gate; the task's own
  `pathwise_step` trains it and says what it did.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import torch

from .core import Learned, Selection, backward
from .methods import Method
from .tasks import Batch, Task, draw

log = logging.getLogger(__name__)
PLAIN = Method("pg")  # one pass, loss -coef * log pi: what every method but PPO uses


@dataclass
class Stepped:
    """What one step did, for the loop's accounting."""

    reward: torch.Tensor  # [B] the rows' rewards (train_reward)
    screened_units: int  # units the step screened (the keep rate's denominator)
    learned: Learned  # backward rows and units, kept units, optimiser steps
    price: float | None = None  # the price a gate used, if any


def learn_step(task: Task, batch: Batch, sel: Selection, method: Method | None = None, guard=None,
               refresh_old: bool = False, step: Callable[[torch.Tensor], None] | None = None) -> Learned:
    """The task's step through the core's compacted backward (`kondo_bench.core.backward`):
    backward passes on the kept rows only, the loss normalised by all screened units.

    `batch.logp_grad` (an ungated step acted with autograd) skips the re-forward; the task's
    own loss (a decoder's) is added on the same rows, or on all when it needs every row.
    `refresh_old`: the screen ran in bf16, so a ratio-based estimator recomputes the acting
    policy's log pi of the kept rows in fp32 first. `step`: what takes the loss (default
    `task.learn`, one optimiser step; e.g. a function that only records the gradient).
    """
    batch.data["keep"] = sel.keep  # a task may end its re-forward at the last kept unit (lm: right-trimming)
    return backward(sel, lambda rows: task.logp(batch, rows), step or task.learn, (method or PLAIN).estimator,
                    units=existing_units(batch),
                    logp_old=batch.logp, logp_grad=batch.logp_grad,
                    # None when the task has no loss of its own (the base class's): nothing to add
                    own_loss=None if type(task).own_loss is Task.own_loss else lambda rows: task.own_loss(batch, rows),
                    all_rows=task.own_loss_rows == "all",
                    refresh_old=refresh_old, watch=guard.watch if guard else None)


def existing_units(batch: Batch) -> int | None:
    """The units a batch has where some of its entries are padding (`valid`, a language model's
    positions after its end-of-sequence token), else None: every entry is a unit. Such padding
    is neither screened nor kept, so it counts in neither the keep rate nor backward_units."""
    valid = batch.data.get("valid")
    return None if valid is None else int(valid.sum())


class ScoreStep:
    """Act, screen, gate, learn: one step of a score-function estimator through its gate."""

    def __init__(self, task: Task, method: Method, timer, guard, device: torch.device, stale=None,
                 screen_bf16: bool = False):
        self.task, self.method, self.timer, self.guard, self.stale = task, method, timer, guard, stale
        self.device = device
        self.acts_with_grad = not method.gated and stale is None  # else: screen, then re-forward kept rows
        # speculative screening: a cheaper bf16 forward decides; the kept rows re-run in fp32
        self.screen_bf16 = screen_bf16 and not self.acts_with_grad
        self.noted = False

    def __call__(self, step: int) -> Stepped:
        task, method, timer = self.task, self.method, self.timer
        cast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.screen_bf16 else nullcontext()
        with timer.phase("act"), (self.stale.acting() if self.stale else nullcontext()), cast:
            batch = draw(task, self.acts_with_grad, oracle=method.supervised)
        with timer.phase("screen"):
            sel = method.select(batch.advantage, batch.logp, batch.data.get("valid"))  # padding is no unit
            self.guard.watch("delight", sel.delight)
        if not self.noted:
            self.noted = True
            if note := method.keep_rate_note(method.gated_units(sel.keep)):
                log.warning(note)
        with timer.phase("learn"):
            learned = learn_step(task, batch, sel, method, self.guard, refresh_old=self.screen_bf16)
        units = existing_units(batch)
        return Stepped(batch.reward, sel.keep.numel() if units is None else units, learned, sel.price)


class PathwiseStep:
    """Through the sample: the task's `pathwise_step(step, timer, guard) -> Stepped` trains it."""

    def __init__(self, task: Task, timer, guard):
        if not hasattr(task, "pathwise_step"):
            raise TypeError(f"{type(task).__name__} has no pathwise_step: a pathwise estimator cannot run on it")
        self.task, self.timer, self.guard = task, timer, guard

    def __call__(self, step: int) -> Stepped:
        return self.task.pathwise_step(step, self.timer, self.guard)
