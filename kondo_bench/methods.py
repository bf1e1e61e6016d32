"""A method is an estimator through a gate: per-unit loss terms, and which units earn them.

A *unit* is what the gate decides on: a sample (bandit, MNIST) or a token (reversal); with
`method.unit=sequence` a gate decides on whole rows instead (a sequence's score is the mean
or sum of its tokens'), and a kept row keeps all its tokens.
Every function here is elementwise or batch-wide over any tensor shape, and knows
nothing of tasks.
- An **estimator** (pg, dg, ppo, pmpo, ce) turns the screen's tensors into a per-unit
  coefficient (a constant for autograd) and, given the re-computed log-probabilities,
  per-unit loss terms; the learning loss is their sum over kept units / all units.
- A **gate** (none, price, quantile, topk) turns a screening score into a keep mask and
  the price it used. Any estimator runs through any gate; the `method=` presets name the
  common pairs (`dgk` is PG's terms on the units a delight-screening gate keeps).

    surprisal  l   = -log pi(a|h)              (current policy, no gradient)
    delight    chi = U * l
    DG weight  w   = sigma(chi / eta)           (eta = 0: the hard step 1{chi > 0})
    Kondo gate G ~ Bernoulli(sigma((chi - price) / eta)), kept units carry U (or w U)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import (PRESETS, Estimator as EstimatorName, Gate as GateName, KeptWeight, Reduce, Signal, Ties, Unit,
                     resolve_estimator, resolve_gate)
from .config import PATHWISE


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


def sequence_score(score: torch.Tensor, reduce: Reduce = Reduce.mean) -> torch.Tensor:
    """A row's score from its units' scores [B, ...] -> [B]: their mean or their sum. With a
    sequence-wide advantage U, the sum of token delights is U times the sequence's surprisal."""
    flat = score.reshape(score.shape[0], -1)
    return flat.sum(1) if Reduce(reduce) is Reduce.sum else flat.mean(1)


# ---------------------------------------------------------------- estimators
class Estimator:
    """Per-unit terms: `coef` at screening time (no graph), `loss` on the re-computed log pi."""

    name = "pg"
    epochs, minibatches = 1, 1  # passes over the kept rows, and minibatches per pass
    ratio_based = False  # its loss divides by the acting policy's pi: needs that in full precision
    supervised = False  # acts with the true label (the oracle)
    pathwise = False  # differentiates through the sample: the task's own step, not act-screen-gate-learn

    def coef(self, advantage: torch.Tensor, logp: torch.Tensor, chi: torch.Tensor) -> torch.Tensor:
        return advantage

    def loss(self, coef: torch.Tensor, logp: torch.Tensor, logp_old: torch.Tensor) -> torch.Tensor:
        """Per-unit loss terms; their sum over kept units, divided by all units, is minimised."""
        return -coef * logp


class PG(Estimator):
    """REINFORCE with the task's baseline: U grad log pi."""


class DG(Estimator):
    """Delightful PG: sigma(chi / eta) U grad log pi, the weight detached."""

    name = "dg"

    def __init__(self, eta: float):
        self.eta = eta

    def coef(self, advantage, logp, chi):
        return sigmoid_weight(chi, self.eta) * advantage


class CE(Estimator):
    """Cross-entropy on the true label (the task acts with it): coefficient 1."""

    name, supervised = "ce", True

    def coef(self, advantage, logp, chi):
        return torch.ones_like(advantage)


class PMPO(Estimator):
    """alpha * mean over preferred - (1 - alpha) * mean over rejected, as per-unit coefficients
    of a loss later divided by all units; plus beta, pulling towards the acting policy."""

    name = "pmpo"

    def __init__(self, alpha: float, kl: float):
        self.alpha, self.kl = alpha, kl

    def coef(self, advantage, logp, chi):
        n = advantage.numel()
        pos, neg = (advantage > 0).to(advantage.dtype), (advantage < 0).to(advantage.dtype)
        return (self.alpha * n * pos / pos.sum().clamp(min=1)
                - (1 - self.alpha) * n * neg / neg.sum().clamp(min=1) + self.kl)


class PPO(Estimator):
    """Clipped surrogate min(r U, clip(r, 1 +- eps) U), r = pi / pi_old, plus beta KL(old || new)."""

    name, ratio_based = "ppo", True

    def __init__(self, epochs: int, minibatches: int, clip: float, kl: float):
        self.epochs, self.minibatches, self.clip, self.kl = epochs, minibatches, clip, kl

    def loss(self, coef, logp, logp_old):
        ratio = torch.exp(logp - logp_old)
        surrogate = torch.minimum(ratio * coef, ratio.clamp(1 - self.clip, 1 + self.clip) * coef)
        # k3 estimator of KL(old || new): zero with zero gradient at ratio 1, so one epoch is PG
        kl = ratio - 1 - (logp - logp_old)
        return -surrogate + self.kl * kl


class Pathwise(Estimator):
    """A VAE encoder estimator that differentiates through the sampled code (reparam, gumbel,
    silent). It has no per-sample score term, so nothing to screen or gate: the loop hands the
    whole step to the task's `pathwise_step` (kondo_bench/vae/pathwise.py)."""

    pathwise = True

    def __init__(self, name: str):
        self.name = name

    def coef(self, advantage, logp, chi):
        raise TypeError(f"the {self.name} estimator has no score-function terms: the task's pathwise_step trains it")

    loss = coef


def make_estimator(name: str, eta: float = 1.0, epochs: int = 1, minibatches: int = 1, clip: float = 0.2,
                   kl: float = 0.0, alpha: float = 0.5) -> Estimator:
    name = EstimatorName(name).value
    if name == "dg":
        return DG(eta)
    if name == "ppo":
        return PPO(epochs, minibatches, clip, kl)
    if name == "pmpo":
        return PMPO(alpha, kl)
    if name in PATHWISE:
        return Pathwise(name)
    return CE() if name == "ce" else PG()


# ---------------------------------------------------------------- gates
class Gate:
    """Every unit passes; subclasses keep a subset. `keep(score)` -> (mask, price or None)."""

    name = "none"

    def keep(self, score: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float | None]:
        return torch.ones_like(score, dtype=torch.bool), None


class PriceGate(Gate):
    """Keep each unit with probability sigma((score - price) / eta): the Kondo gate."""

    name = "price"

    def __init__(self, price: float, eta: float):
        self.price, self.eta = price, eta

    def keep(self, score):
        return price_gate(score, self.price, self.eta), self.price


class QuantileGate(Gate):
    """The price gate with the price solved per batch so that keep_rate passes in expectation;
    at eta = 0 its limit, the top-k cut."""

    name = "quantile"

    def __init__(self, keep_rate: float, eta: float, ties: Ties):
        self.keep_rate, self.eta, self.ties = keep_rate, eta, ties

    def keep(self, score):
        if self.eta == 0:
            return topk_gate(score, self.keep_rate, self.ties), None
        price = price_for_keep_rate(score, self.keep_rate, self.eta)
        return price_gate(score, price, self.eta), price


class TopKGate(Gate):
    """Exactly the k = max(1, round(rho n)) highest-scoring units of the batch."""

    name = "topk"

    def __init__(self, keep_rate: float, ties: Ties):
        self.keep_rate, self.ties = keep_rate, ties

    def keep(self, score):
        return topk_gate(score, self.keep_rate, self.ties), None


def make_gate(name: str, price: float = 0.0, keep_rate: float | None = None, eta: float = 1.0,
              ties: Ties = Ties.random) -> Gate:
    name = GateName(name).value
    if name == "auto":
        name = "topk" if keep_rate is not None else "price"
    if name == "price":
        return PriceGate(price, eta)
    if name == "quantile":
        return QuantileGate(keep_rate, eta, Ties(ties))
    return TopKGate(keep_rate, Ties(ties)) if name == "topk" else Gate()


# ---------------------------------------------------------------- the pair
class Method:
    """An estimator through a gate. `Method("dgk", keep_rate=0.03)` builds a preset by name;
    `estimator=` and `gate=` pick either part, e.g. Method("ppo", gate="topk", keep_rate=0.1)."""

    def __init__(self, name: str = "pg", *, estimator: str | None = None, gate: str | None = None,
                 eta: float = 1.0, price: float = 0.0, keep_rate: float | None = None,
                 kept_weight: KeptWeight = KeptWeight.one, ties: Ties = Ties.random,
                 unit: Unit = Unit.token, unit_reduce: Reduce = Reduce.mean,
                 signal: Signal = Signal.delight, signal_alpha: float = 0.5, delight_noise: float = 0.0,
                 epochs: int = 1, minibatches: int = 1, clip: float = 0.2, kl: float = 0.0, alpha: float = 0.5):
        est = estimator or PRESETS[name].value
        if KeptWeight(kept_weight) is KeptWeight.dg and est == "pg":
            est = "dg"
        self.name = name
        self.estimator = make_estimator(est, eta, epochs, minibatches, clip, kl, alpha)
        self.gate = make_gate(gate or ("auto" if name == "dgk" else "none"), price, keep_rate, eta, ties)
        self.signal, self.signal_alpha, self.delight_noise = Signal(signal), signal_alpha, delight_noise
        self.unit, self.unit_reduce = Unit(unit), Reduce(unit_reduce)

    @classmethod
    def from_config(cls, cfg) -> "Method":
        m = cfg.method
        return cls(m.name, estimator=resolve_estimator(cfg), gate=resolve_gate(cfg), eta=m.eta, price=cfg.price,
                   keep_rate=cfg.keep_rate, ties=m.ties, unit=m.unit, unit_reduce=m.unit_reduce, signal=m.signal, signal_alpha=m.signal_alpha,
                   delight_noise=m.delight_noise, epochs=m.epochs, minibatches=m.minibatches, clip=m.clip,
                   kl=m.kl, alpha=m.alpha)

    @property
    def gated(self) -> bool:
        """Screens without autograd, then re-runs the forward pass on the rows it keeps: any gate,
        and an estimator that passes over a batch more than once (its later epochs need fresh log pi)."""
        return self.gate.name != "none" or isinstance(self.estimator, PPO)

    @property
    def pathwise(self) -> bool:
        """Trained through its sample by the task's own step (a VAE's reparam, gumbel, silent)."""
        return self.estimator.pathwise

    @property
    def supervised(self) -> bool:
        return self.estimator.supervised

    def gated_units(self, keep: torch.Tensor) -> int:
        """How many things the gate decides on in a batch: its units, or its rows (unit=sequence)."""
        return keep.shape[0] if self.unit is Unit.sequence else keep.numel()

    def keep_rate_note(self, n_units: int) -> str | None:
        """A warning when the top-rho gate cannot keep rho of n units per step (k is rounded,
        and at least 1), e.g. rho = 0.003 of 100 images keeps 1, an effective rate of 0.01."""
        g = self.gate
        if not (isinstance(g, TopKGate) or isinstance(g, QuantileGate) and g.eta == 0):
            return None
        k = topk_count(g.keep_rate, n_units)
        if abs(k / n_units - g.keep_rate) <= 0.1 * g.keep_rate:
            return None
        what = "sequences" if self.unit is Unit.sequence else "units"
        return (f"keep_rate={g.keep_rate:g} keeps k = max(1, round(ρ·n)) = {k} of the {n_units} {what} a step "
                f"screens: an effective keep rate of {k / n_units:.3g}; use a larger batch for a smaller rate")

    def select(self, advantage: torch.Tensor, logp: torch.Tensor) -> Selection:
        # Coefficients and gates are constants for autograd, whatever the caller passes in.
        advantage, logp = advantage.detach(), logp.detach()
        chi = delight(advantage, logp)
        if self.delight_noise > 0:  # approximate delight: what the weight and the gate see
            chi = chi * (1 + self.delight_noise * torch.randn_like(chi))
        coef = self.estimator.coef(advantage, logp, chi)
        if self.gate.name == "none":
            return Selection(coef, torch.ones_like(chi, dtype=torch.bool), chi, None)
        score = screening_score(self.signal, advantage, logp, chi, self.signal_alpha)
        if self.unit is Unit.sequence and score.dim() > 1:  # one decision per row, for all its tokens
            keep, price = self.gate.keep(sequence_score(score, self.unit_reduce))
            keep = keep.reshape(-1, *[1] * (score.dim() - 1)).expand_as(score)
        else:
            keep, price = self.gate.keep(score)
        coef = torch.where(keep, coef, torch.zeros_like(coef))
        return Selection(coef, keep, chi, None if price is None else float(price))

    def loss(self, coef: torch.Tensor, logp: torch.Tensor, logp_old: torch.Tensor) -> torch.Tensor:
        return self.estimator.loss(coef, logp, logp_old)
