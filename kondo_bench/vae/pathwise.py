"""Pathwise encoder estimators: the reparameterisation trick, Gumbel-Softmax, Silent Gradients.

Why they have a step of their own instead of act-screen-gate-learn: they differentiate
*through* the sampled code. The encoder's gradient arrives through the decoder's backward
pass over every sample, so there is no per-sample score term whose backward pass a gate
could keep or skip, nothing for a screen to score, and the sampling forward pass must keep
its graph. The loop (steps.PathwiseStep) therefore hands the whole step to `Task.pathwise_step`,
which calls `step` below; the config, the counters, the timers, the evaluation, the results
files, sweeps and plots are the loop's, as for every method.

Accounting: each row (image x code) runs forward and backward once: forward_samples =
backward_samples = backward_units = rows, no re-forward, one optimiser step. The forward
pass is timed as `act`, the backward pass and the step as `learn`.

Silent Gradients (arXiv 2508.03587; what we know and our closed forms:
docs/papers.md). With the MLP decoder, a linear decoder is trained beside it:
    loss = KL (exact)
         + (-log p(x|z)) of sampled codes through the MLP decoder: the decoder learns from it
           in full, the encoder gets (1 - w) of its gradient (the `into` estimator's)
         + (-E_q[log N(x; W z + b, sigma^2)]) in closed form: the linear decoder learns from
           it in full, the encoder gets w of its gradient (the silent gradient: no sample)
with w annealed from 1 to 0 over method.anneal_steps (linear or cosine; `constant` keeps 1).
With task.decoder=linear the two decoders are one: both of its estimates are mixed, w and
1 - w, for the encoder and the decoder alike; at w = 1 the whole gradient is exact.
"""

from __future__ import annotations

import math

import torch

from ..core import Learned
from ..steps import Stepped
from ..tasks.baselines import leave_one_out
from .model import scale_grad


def silent_weight(step: int, mcfg) -> float:
    """w at a step (1-based): 1 at step 1, 0 from step anneal_steps + 1 on (`constant`: always 1)."""
    schedule = getattr(mcfg.schedule, "value", mcfg.schedule)
    if schedule == "constant":
        return 1.0
    t = min(max(step - 1, 0) / mcfg.anneal_steps, 1.0)
    return 1 - t if schedule == "linear" else 0.5 * (1 + math.cos(math.pi * t))


def _sample(task, params: torch.Tensor, kind: str) -> torch.Tensor:
    """Codes with gradient, [rows, width]: reparam (Gaussian) or Gumbel-Softmax (categorical)."""
    if kind == "reparam":
        z = task.code.rsample(params, task.S)
    else:
        z = task.code.gumbel(params, task.S, task.mcfg.tau, task.mcfg.straight_through)
    return z.reshape(params.shape[0] * task.S, -1)


def loss(task, x: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The step's loss on images x [B, 784] (means per image) and the reward log p(x|z) per row."""
    vae, code, S = task.vae, task.code, task.S
    params = vae.encoder(x)
    rows = x.shape[0] * S
    x_rows = x.repeat_interleave(S, 0)
    kl = code.kl(params).mean()
    est = task.method.estimator.name
    if est != "silent":
        ll = vae.decoder.loglik(x_rows, _sample(task, params, est))
        return -ll.mean() + kl, ll.detach()
    w = silent_weight(step, task.mcfg)
    one = vae.decoder is vae.linear  # task.decoder=linear: one model, its two estimates mixed
    if task.into in ("reparam", "gumbel"):
        z = _sample(task, params, task.into)
        ll = vae.decoder.loglik(x_rows, z if one else scale_grad(z, 1 - w))
        sampled = -ll.mean()
    else:  # REINFORCE or DG terms, leave-one-out baseline, summed over the latent variables per row
        z = code.sample(params.detach(), S)
        ll = vae.decoder.loglik(x_rows, code.decoder_input(z.reshape(rows, -1)))
        logq = code.logq(params, z).reshape(rows, -1)
        advantage = leave_one_out(ll.detach(), S)
        if task.unit.value == "sample":
            logq = logq.sum(-1)
        else:
            advantage = advantage[:, None].expand_as(logq)
        coef = task.score_method.select(advantage, logq).coef
        score = -(coef * logq).sum() / rows
        sampled = -ll.mean() + (score if one else (1 - w) * score)
    if one:
        sampled = (1 - w) * sampled
    closed = 0.0
    if w > 0:  # at w = 0 the linear decoder guides nothing any more: not computed
        closed = -vae.linear.expected_loglik(x, code, params if one else scale_grad(params, w)).mean()
        closed = w * closed if one else closed
    return sampled + closed + kl, ll.detach()


def step(task, step: int, timer, guard) -> Stepped:
    """One optimiser step of encoder and decoder(s): every row screened and run backward."""
    with timer.phase("act"):
        total, reward = loss(task, task.draw_images(), step)
    with timer.phase("learn"):
        guard.watch("loss", total)
        task.optimizer.zero_grad(set_to_none=True)
        total.backward()
        task.optimizer.step()
    n = reward.numel()
    return Stepped(reward, n, Learned(n, n, n, 1))
