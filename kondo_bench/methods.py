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

from .config import KeptWeight, Signal, Ties, resolve_gate


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


def topk_count(keep_rate: float, n: int) -> int:
    """k = max(1, round(rho * n)): how many of n units the top-rho gate keeps."""
    return max(1, round(keep_rate * n))


def topk_gate(score: torch.Tensor, keep_rate: float, ties: Ties = Ties.random) -> torch.Tensor:
    """Keep the k = max(1, round(rho * n)) highest-scoring units of the whole batch.

    `ties=random` keeps exactly k, breaking ties at random; `ties=all` keeps every unit tied
    with the k-th, as the official code does (its kept fraction can then exceed rho).
    """
    flat = score.reshape(-1)
    k = topk_count(keep_rate, flat.numel())
    if Ties(ties) is Ties.all:
        kth = torch.topk(flat, k).values[-1]
        return (score >= kth)
    perm = torch.randperm(flat.numel(), device=flat.device)  # random order among equal scores
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep[perm[torch.topk(flat[perm], k).indices]] = True
    return keep.reshape(score.shape)


def screening_score(signal: Signal, advantage: torch.Tensor, logp: torch.Tensor, chi: torch.Tensor,
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


@dataclass
class Selection:
    coef: torch.Tensor  # per-unit loss coefficient (already includes U); zero where not kept
    keep: torch.Tensor  # bool, per unit: does this unit earn a backward pass?
    delight: torch.Tensor
    price: float | None  # the price the gate used (None when ungated)


class Method:
    """One training method: `select` maps the screen's tensors to coefficients and a keep mask,
    `loss` turns the re-computed log-probabilities of kept units into per-unit loss terms."""

    def __init__(self, name: str, eta: float = 1.0, gate: str = "none", price: float = 0.0,
                 keep_rate: float | None = None, kept_weight: KeptWeight = KeptWeight.one,
                 ties: Ties = Ties.random, signal: Signal = Signal.delight, signal_alpha: float = 0.5,
                 delight_noise: float = 0.0, epochs: int = 1, minibatches: int = 1, clip: float = 0.2,
                 kl: float = 0.0, alpha: float = 0.5):
        self.name, self.eta, self.gate = name, eta, gate
        self.price, self.keep_rate = price, keep_rate
        self.kept_weight, self.ties = KeptWeight(kept_weight), Ties(ties)
        self.signal, self.signal_alpha, self.delight_noise = Signal(signal), signal_alpha, delight_noise
        self.epochs, self.minibatches, self.clip, self.kl, self.alpha = epochs, minibatches, clip, kl, alpha

    @classmethod
    def from_config(cls, cfg) -> "Method":
        m = cfg.method
        return cls(m.name, m.eta, resolve_gate(cfg), cfg.price, cfg.keep_rate, m.kept_weight, m.ties,
                   m.signal, m.signal_alpha, m.delight_noise, m.epochs, m.minibatches, m.clip, m.kl, m.alpha)

    @property
    def gated(self) -> bool:
        """Methods that screen without autograd and re-run the forward pass on the rows they keep
        (the gate, and PPO, whose later epochs need fresh log-probabilities anyway)."""
        return self.gate != "none" or self.name == "ppo"

    def keep_rate_note(self, n_units: int) -> str | None:
        """A warning when the top-rho gate cannot keep rho of n units per step (k is rounded,
        and at least 1), e.g. rho = 0.003 of 100 images keeps 1, an effective rate of 0.01."""
        if self.gate != "topk" and not (self.gate == "quantile" and self.eta == 0):
            return None
        k = topk_count(self.keep_rate, n_units)
        if abs(k / n_units - self.keep_rate) <= 0.1 * self.keep_rate:
            return None
        return (f"keep_rate={self.keep_rate:g} keeps k = max(1, round(ρ·n)) = {k} of the {n_units} units a step "
                f"screens: an effective keep rate of {k / n_units:.3g}; use a larger batch for a smaller rate")

    @property
    def supervised(self) -> bool:
        """`ce` is the supervised oracle: the task acts with the true label as the action."""
        return self.name == "ce"

    def select(self, advantage: torch.Tensor, logp: torch.Tensor) -> Selection:
        # Weights and gates are constants for autograd, whatever the caller passes in.
        advantage, logp = advantage.detach(), logp.detach()
        chi = delight(advantage, logp)
        if self.delight_noise > 0:  # approximate delight: what the weight and the gate see
            chi = chi * (1 + self.delight_noise * torch.randn_like(chi))
        everything = torch.ones_like(chi, dtype=torch.bool)
        if self.name == "ce":
            return Selection(torch.ones_like(advantage), everything, chi, None)
        if self.name in ("pg", "ppo"):
            return Selection(advantage, everything, chi, None)
        if self.name == "pmpo":
            return Selection(self._pmpo_coef(advantage), everything, chi, None)
        weight = sigmoid_weight(chi, self.eta)
        if self.name == "dg":
            return Selection(weight * advantage, everything, chi, None)
        score = screening_score(self.signal, advantage, logp, chi, self.signal_alpha)
        price = self.price
        if self.gate == "price":
            keep = price_gate(score, price, self.eta)
        elif self.gate == "quantile" and self.eta > 0:
            price = price_for_keep_rate(score, self.keep_rate, self.eta)
            keep = price_gate(score, price, self.eta)
        else:  # topk, and the quantile gate's hard (eta = 0) limit
            keep = topk_gate(score, self.keep_rate, self.ties)
            price = None
        kept_coef = weight * advantage if self.kept_weight is KeptWeight.dg else advantage
        coef = torch.where(keep, kept_coef, torch.zeros_like(kept_coef))
        return Selection(coef, keep, chi, None if price is None else float(price))

    def _pmpo_coef(self, advantage: torch.Tensor) -> torch.Tensor:
        """alpha * mean over preferred - (1 - alpha) * mean over rejected, as per-unit coefficients
        of a loss that is later divided by all units; plus beta, pulling towards the acting policy."""
        n = advantage.numel()
        pos, neg = (advantage > 0).to(advantage.dtype), (advantage < 0).to(advantage.dtype)
        return (self.alpha * n * pos / pos.sum().clamp(min=1)
                - (1 - self.alpha) * n * neg / neg.sum().clamp(min=1) + self.kl)

    def loss(self, coef: torch.Tensor, logp: torch.Tensor, logp_old: torch.Tensor) -> torch.Tensor:
        """Per-unit loss terms; their sum over all units, divided by the unit count, is minimised."""
        if self.name != "ppo":
            return -coef * logp
        ratio = torch.exp(logp - logp_old)
        surrogate = torch.minimum(ratio * coef, ratio.clamp(1 - self.clip, 1 + self.clip) * coef)
        # k3 estimator of KL(old || new): zero with zero gradient at ratio 1, so one epoch is PG
        kl = ratio - 1 - (logp - logp_old)
        return -surrogate + self.kl * kl
