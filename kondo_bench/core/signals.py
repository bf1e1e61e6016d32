"""The screening signals: what a gate compares with its price, or ranks.

    surprisal  l   = -log pi(a|h)              (the acting policy, no gradient)
    delight    chi = U * l                      (large when a surprising action turned out well)
    DG weight  w   = sigma(chi / eta)           (eta = 0: the hard step 1{chi > 0})

Every function here is elementwise or batch-wide over any tensor shape ([B] per sample,
[B, T] per token) and needs nothing but torch.
"""

from __future__ import annotations

from enum import Enum

import torch


class Signal(str, Enum):
    """What a gate screens on (the score compared with the price, or ranked for top-k)."""

    delight = "delight"  # chi = U * l
    random = "random"  # uniform noise: the control at equal keep rate
    advantage = "advantage"  # U
    abs_advantage = "abs_advantage"  # |U|
    surprisal = "surprisal"  # l = -log pi(a|h)
    additive = "additive"  # signal_alpha * U + (1 - signal_alpha) * l


class Unit(str, Enum):
    """What a gate decides on: each unit (a sample, or a token of a sequence), or a whole row."""

    token = "token"  # each unit: a sample (bandit, MNIST) or a token (reversal)
    sequence = "sequence"  # a whole row of units: its tokens' scores reduced by unit_reduce


class Reduce(str, Enum):
    mean = "mean"
    sum = "sum"


class Ties(str, Enum):
    random = "random"  # exactly k kept, ties broken at random
    all = "all"  # every unit tied with the k-th passes (the official code)


class KeptWeight(str, Enum):
    one = "one"  # plain PG term with unit weight (the paper and the official code)
    dg = "dg"  # the DG weight sigma(chi / eta) on top of the gate


def delight(advantage: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """chi = U * (-log pi): large when a surprising action turned out well."""
    return advantage * -logp


def sigmoid_weight(x: torch.Tensor, eta: float) -> torch.Tensor:
    """sigma(x / eta), with eta = 0 the hard step 1{x > 0} (its limit)."""
    if eta == 0:
        return (x > 0).to(x.dtype)
    return torch.sigmoid(x / eta)


def screening_score(signal: Signal | str, advantage: torch.Tensor, logp: torch.Tensor, chi: torch.Tensor,
                    alpha: float = 0.5) -> torch.Tensor:
    """The score a gate compares with its price (or ranks, for top-k). Higher passes first."""
    signal = Signal(signal)
    if signal is Signal.delight:
        return chi
    if signal is Signal.random:
        return torch.rand_like(chi)
    if signal is Signal.advantage:
        return advantage
    if signal is Signal.abs_advantage:
        return advantage.abs()
    if signal is Signal.surprisal:
        return -logp
    return alpha * advantage + (1 - alpha) * -logp  # additive


def sequence_score(score: torch.Tensor, reduce: Reduce | str = Reduce.mean) -> torch.Tensor:
    """A row's score from its units' scores [B, ...] -> [B]: their mean or their sum. With a
    sequence-wide advantage U, the sum of token delights is U times the sequence's surprisal."""
    flat = score.reshape(score.shape[0], -1)
    return flat.sum(1) if Reduce(reduce) is Reduce.sum else flat.mean(1)
