"""Methods turn the screen's tensors into per-unit loss coefficients and a keep mask.

A *unit* is what the gate decides on: a sample (bandit, MNIST) or a token (reversal).
Every function here is elementwise or batch-wide over any tensor shape, and knows
nothing of tasks. The learning loss is  -sum(coef * log pi(a|h)) / n_units,  so the
coefficient carries the advantage and any weight; it is always a constant for autograd.

    surprisal  l   = -log pi(a|h)              (current policy, no gradient)
    delight    chi = U * l
    DG weight  w   = sigma(chi / eta)           (eta = 0: the hard step 1{chi > 0})
    Kondo gate G ~ Bernoulli(sigma((chi - price) / eta)), kept units carry U (or w U)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import KeptWeight, Ties, resolve_gate


def delight(advantage: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """chi = U * (-log pi): large when a surprising action turned out well."""
    return advantage * -logp


def sigmoid_weight(x: torch.Tensor, eta: float) -> torch.Tensor:
    """sigma(x / eta), with eta = 0 the hard step 1{x > 0} (its limit)."""
    if eta == 0:
        return (x > 0).to(x.dtype)
    return torch.sigmoid(x / eta)


def price_gate(chi: torch.Tensor, price: float | torch.Tensor, eta: float) -> torch.Tensor:
    """Keep each unit with probability sigma((chi - price) / eta): the Kondo gate."""
    p = sigmoid_weight(chi - price, eta)
    if eta == 0:
        return p > 0
    return torch.rand_like(p) < p


def price_for_keep_rate(chi: torch.Tensor, keep_rate: float, eta: float, iters: int = 60) -> torch.Tensor:
    """The price lambda at which the gate's expected keep rate mean(sigma((chi - lambda)/eta)) is keep_rate.

    Bisection on the device (no host sync): the expected keep rate falls monotonically in lambda.
    """
    x = chi.reshape(-1)
    lo = x.min() - 40 * eta  # every unit kept with probability ~1
    hi = x.max() + 40 * eta  # every unit kept with probability ~0
    for _ in range(iters):
        mid = (lo + hi) / 2
        too_many = torch.sigmoid((x - mid) / eta).mean() > keep_rate
        lo = torch.where(too_many, mid, lo)
        hi = torch.where(too_many, hi, mid)
    return (lo + hi) / 2


def topk_gate(score: torch.Tensor, keep_rate: float, ties: Ties = Ties.random) -> torch.Tensor:
    """Keep the k = max(1, round(rho * n)) highest-scoring units of the whole batch.

    `ties=random` keeps exactly k, breaking ties at random; `ties=all` keeps every unit tied
    with the k-th, as the official code does (its kept fraction can then exceed rho).
    """
    flat = score.reshape(-1)
    k = max(1, round(keep_rate * flat.numel()))
    if Ties(ties) is Ties.all:
        kth = torch.topk(flat, k).values[-1]
        return (score >= kth)
    perm = torch.randperm(flat.numel(), device=flat.device)  # random order among equal scores
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep[perm[torch.topk(flat[perm], k).indices]] = True
    return keep.reshape(score.shape)


@dataclass
class Selection:
    coef: torch.Tensor  # per-unit loss coefficient (already includes U); zero where not kept
    keep: torch.Tensor  # bool, per unit: does this unit earn a backward pass?
    delight: torch.Tensor
    price: float | None  # the price the gate used (None when ungated)


class Method:
    """One training method: `select` maps the screen's tensors to coefficients and a keep mask."""

    def __init__(self, name: str, eta: float = 1.0, gate: str = "none", price: float = 0.0,
                 keep_rate: float | None = None, kept_weight: KeptWeight = KeptWeight.one,
                 ties: Ties = Ties.random):
        self.name, self.eta, self.gate = name, eta, gate
        self.price, self.keep_rate = price, keep_rate
        self.kept_weight, self.ties = KeptWeight(kept_weight), Ties(ties)

    @classmethod
    def from_config(cls, cfg) -> "Method":
        m = cfg.method
        return cls(m.name, m.eta, resolve_gate(cfg), cfg.price, cfg.keep_rate, m.kept_weight, m.ties)

    @property
    def gated(self) -> bool:
        """Gated methods screen without autograd and re-run the forward pass on kept rows."""
        return self.gate != "none"

    @property
    def supervised(self) -> bool:
        """`ce` is the supervised oracle: the task acts with the true label as the action."""
        return self.name == "ce"

    def select(self, advantage: torch.Tensor, logp: torch.Tensor) -> Selection:
        # Weights and gates are constants for autograd, whatever the caller passes in.
        advantage, logp = advantage.detach(), logp.detach()
        chi = delight(advantage, logp)
        if self.name in ("pg", "ce"):
            coef = torch.ones_like(advantage) if self.name == "ce" else advantage
            return Selection(coef, torch.ones_like(chi, dtype=torch.bool), chi, None)
        weight = sigmoid_weight(chi, self.eta)
        if self.name == "dg":
            return Selection(weight * advantage, torch.ones_like(chi, dtype=torch.bool), chi, None)
        price = self.price
        if self.gate == "price":
            keep = price_gate(chi, price, self.eta)
        elif self.gate == "quantile" and self.eta > 0:
            price = price_for_keep_rate(chi, self.keep_rate, self.eta)
            keep = price_gate(chi, price, self.eta)
        else:  # topk, and the quantile gate's hard (eta = 0) limit
            keep = topk_gate(chi, self.keep_rate, self.ties)
            price = None
        kept_coef = weight * advantage if self.kept_weight is KeptWeight.dg else advantage
        coef = torch.where(keep, kept_coef, torch.zeros_like(kept_coef))
        return Selection(coef, keep, chi, None if price is None else float(price))
