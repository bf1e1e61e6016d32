"""The compacted backward: re-run the forward pass with autograd on the kept rows only.

This is where a gate saves compute. Masking the loss of skipped units would still pay their
backward pass; here the rows with no kept unit never enter the autograd graph at all.

    loss = sum over kept units of the estimator's terms  /  N (all screened units)

N is a constant of the batch, as in the paper's official code, so a gate changes which terms
exist, not their scale. PPO makes `epochs` passes of `minibatches` optimiser steps over the
kept rows; a minibatch's loss is divided by its share of the rows, so each step is on the
same scale as one over them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import torch

from .estimators import PG, Estimator
from .select import Selection

LogpFn = Callable[[torch.Tensor], torch.Tensor]  # rows (long [R]) -> log pi of their taken actions, with autograd
StepFn = Callable[[torch.Tensor], None]  # loss -> one optimiser step (zero_grad, backward, step)


@dataclass
class Learned:
    """What one learn step did. `kept_units` counts each kept unit once (the keep rate's
    numerator); `backward_rows`/`backward_units` count every pass over them (PPO's epochs)."""

    backward_rows: int = 0
    backward_units: int = 0
    kept_units: int = 0
    optimizer_steps: int = 0
    reforward_rows: int = 0  # rows re-run forward (with autograd, or for fp32 old log pi)


def optimizer_step(optimizer: torch.optim.Optimizer) -> StepFn:
    """The usual step for a plain optimiser: zero the gradients, backward, step."""
    def step(loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def backward(sel: Selection, logp: LogpFn, step: Union[StepFn, torch.optim.Optimizer],
             estimator: Estimator | None = None, *, logp_old: torch.Tensor | None = None,
             logp_grad: torch.Tensor | None = None, own_loss: Callable[[torch.Tensor], torch.Tensor | None] | None = None,
             all_rows: bool = False, refresh_old: bool = False,
             watch: Callable[[str, torch.Tensor], None] | None = None, units: int | None = None) -> Learned:
    """Learn from a screened batch: backward passes on the kept rows only, compacted.

    sel         the screen's decision (`Method.select`): coef and keep per unit, [B] or [B, T]
    logp(rows)  log pi of the taken actions of those rows (long [R]) with autograd, shaped
                like sel.coef[rows]: a forward pass over R rows, not B
    step        an optimiser, or a function taking the loss through one optimiser step
    estimator   whose per-unit loss terms (default: PG's -coef log pi)
    logp_old    the acting policy's log pi (default sel.logp): PPO's pi_old
    logp_grad   the acting pass's log pi *with* its graph (an ungated one-pass step): no re-forward
    own_loss(rows) per-row terms of a loss of the caller's own (e.g. a decoder's), or None;
                added as their sum over the rows / all rows, like the estimator's terms
    all_rows    every row runs backward (own_loss needs all rows), not only those with a kept unit
    refresh_old recompute pi_old of the kept rows in fp32 first, for a ratio-based estimator
                after a bf16 screen (else rounding alone moves the ratio off 1)
    watch(name, loss) sees every loss before its backward (a NaN guard)
    units       how many entries of sel.keep are units, where some are not (a language model's
                padding after its end-of-sequence token): an ungated step keeps exactly these
                (default: every entry). The gated path counts the kept mask itself.

    Returns the counts: rows and units that ran backward (each pass), units kept, optimiser steps.
    """
    est = estimator or PG()
    if isinstance(step, torch.optim.Optimizer):
        step = optimizer_step(step)
    logp_old = sel.logp if logp_old is None else logp_old
    n_rows, n_units = sel.keep.shape[0], sel.keep.numel()
    if logp_grad is not None:  # ungated: the acting forward pass already has its graph
        loss = est.loss(sel.coef, logp_grad, logp_old).sum() / n_units
        if own_loss is not None:  # no `loss + 0.0`: it would add an autograd node to every step
            loss = loss + _own(own_loss, torch.arange(n_rows, device=sel.keep.device), n_rows)
        if watch:
            watch("loss", loss)
        step(loss)
        kept = n_units if units is None else units  # padding has no term: not a backward unit
        return Learned(n_rows, kept, kept, 1)
    one_unit = sel.keep.dim() == 1  # one unit per row (MNIST, the bandit): the mask is the rows' already
    if all_rows:
        idx = torch.arange(n_rows, device=sel.keep.device)
    else:  # no any() over units when each row has one
        idx = (sel.keep if one_unit else sel.keep.reshape(n_rows, -1).any(1)).nonzero()[:, 0]
    rows = idx.numel()
    if rows == 0:  # nothing kept: no backward, no optimiser step
        return Learned()
    # one unit per row, and only rows with a kept unit: the kept units are the rows, no second
    # count (on a GPU the sum() is a host-device sync)
    kept_units, reforward = (rows if one_unit and not all_rows else int(sel.keep.sum())), 0
    if refresh_old and est.ratio_based:
        with torch.no_grad():  # float(): a bf16 screen may have returned bf16 log pi
            logp_old = logp_old.float()
            logp_old[idx] = logp(idx).float()
        reforward = rows
    steps = 0
    for _ in range(est.epochs):
        # one minibatch (all but PPO): the kept rows as they are, no shuffle and no chunk() call
        batches = idx[torch.randperm(rows, device=idx.device)].chunk(est.minibatches) if est.minibatches > 1 else (idx,)
        for mb in batches:  # at most `minibatches`: fewer when rows are few
            steps += 1
            share = mb.numel() / rows  # of the step's rows: a minibatch's loss is divided by its share
            # index_select: the rows of x, as x[mb] gives them, for less of Python's indexing path
            loss = est.loss(torch.index_select(sel.coef, 0, mb), logp(mb),
                            torch.index_select(logp_old, 0, mb)).sum() / (n_units * share)
            if own_loss is not None:
                loss = loss + _own(own_loss, mb, n_rows * share)
            if watch:
                watch("loss", loss)
            step(loss)
    return Learned(rows * est.epochs, kept_units * est.epochs, kept_units, steps, reforward + rows * est.epochs)


def _own(own_loss, rows: torch.Tensor, count: float) -> torch.Tensor | float:
    """The caller's own loss on these rows, divided like the estimator's terms (0 when none)."""
    terms = own_loss(rows) if own_loss is not None else None
    return 0.0 if terms is None else terms.sum() / count
