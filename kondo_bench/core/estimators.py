"""Estimators: the screen's tensors in, per-unit loss terms out.

`coef(U, log pi, chi)` is computed once at screening time (a constant for autograd);
`loss(coef, log pi, log pi_old)` is evaluated on the re-computed log pi of the kept rows.
The learning loss is the sum of the terms over kept units divided by *all* screened units.

    pg    -U log pi                                   REINFORCE with the caller's baseline
    dg    -sigma(chi / eta) U log pi                   Delightful PG, the weight detached
    ppo   -min(r U, clip(r, 1 +- eps) U) + beta KL     r = pi / pi_old, several epochs
    pmpo  -(alpha n/n+ 1{U>0} - (1-alpha) n/n- 1{U<0} + beta) log pi
    ce    -log pi(y|x) on the true label               the supervised oracle

A new estimator is a subclass of `Estimator` decorated with `@register_estimator("name")`;
`knobs` names the config keys it reads (its constructor's keyword arguments).
"""

from __future__ import annotations

import torch

from .registry import lookup
from .signals import sigmoid_weight

ESTIMATORS: dict[str, type["Estimator"]] = {}


def register_estimator(name: str):
    """Class decorator: make an estimator available as `estimator=name` (core and config alike)."""
    def add(cls):
        cls.name = name
        ESTIMATORS[name] = cls
        return cls
    return add


class Estimator:
    """Per-unit terms: `coef` at screening time (no graph), `loss` on the re-computed log pi."""

    name = "pg"
    knobs: tuple[str, ...] = ()  # config keys read (constructor keywords)
    epochs, minibatches = 1, 1  # passes over the kept rows, and minibatches per pass
    ratio_based = False  # its loss divides by the acting policy's pi: needs that in full precision
    supervised = False  # acts with the true label (the oracle)
    pathwise = False  # differentiates through the sample: a step kind of its own, not screen-gate-learn
    uses_delight = False  # its coefficient reads chi (so delight noise reaches it)

    @classmethod
    def reads(cls, knob: str, method) -> bool:
        """Does this estimator read `knob` under the method config `method` (a mapping)? The
        "a knob this pair ignores is an error" rule is derived from this."""
        return knob in cls.knobs

    def coef(self, advantage: torch.Tensor, logp: torch.Tensor, chi: torch.Tensor) -> torch.Tensor:
        return advantage

    def loss(self, coef: torch.Tensor, logp: torch.Tensor, logp_old: torch.Tensor) -> torch.Tensor:
        """Per-unit loss terms; their sum over kept units, divided by all units, is minimised."""
        return -coef * logp


@register_estimator("pg")
class PG(Estimator):
    """REINFORCE with the caller's baseline: U grad log pi."""


@register_estimator("dg")
class DG(Estimator):
    """Delightful PG: sigma(chi / eta) U grad log pi, the weight detached."""

    knobs, uses_delight = ("eta",), True

    def __init__(self, eta: float = 1.0):
        self.eta = eta

    def coef(self, advantage, logp, chi):
        return sigmoid_weight(chi, self.eta) * advantage


@register_estimator("ce")
class CE(Estimator):
    """Cross-entropy on the true label (the caller acts with it): coefficient 1."""

    supervised = True

    def coef(self, advantage, logp, chi):
        return torch.ones_like(advantage)


@register_estimator("pmpo")
class PMPO(Estimator):
    """alpha * mean over preferred - (1 - alpha) * mean over rejected, as per-unit coefficients
    of a loss later divided by all units; plus beta, pulling towards the acting policy."""

    knobs = ("alpha", "kl")

    def __init__(self, alpha: float = 0.5, kl: float = 0.0):
        self.alpha, self.kl = alpha, kl

    def coef(self, advantage, logp, chi):
        n = advantage.numel()
        pos, neg = (advantage > 0).to(advantage.dtype), (advantage < 0).to(advantage.dtype)
        return (self.alpha * n * pos / pos.sum().clamp(min=1)
                - (1 - self.alpha) * n * neg / neg.sum().clamp(min=1) + self.kl)


@register_estimator("ppo")
class PPO(Estimator):
    """Clipped surrogate min(r U, clip(r, 1 +- eps) U), r = pi / pi_old, plus beta KL(old || new)."""

    knobs, ratio_based = ("epochs", "minibatches", "clip", "kl"), True

    def __init__(self, epochs: int = 1, minibatches: int = 1, clip: float = 0.2, kl: float = 0.0):
        self.epochs, self.minibatches, self.clip, self.kl = epochs, minibatches, clip, kl

    def loss(self, coef, logp, logp_old):
        ratio = torch.exp(logp - logp_old)
        surrogate = torch.minimum(ratio * coef, ratio.clamp(1 - self.clip, 1 + self.clip) * coef)
        # k3 estimator of KL(old || new): zero with zero gradient at ratio 1, so one epoch is PG
        kl = ratio - 1 - (logp - logp_old)
        return -surrogate + self.kl * kl


def estimator_class(name: str) -> type[Estimator]:
    """A registered estimator's class, or one named by its import path ("package.module.Class")."""
    return lookup(ESTIMATORS, name, Estimator, "estimator")


def make_estimator(name: str, **knobs) -> Estimator:
    """The estimator registered as `name` (or at that import path), given the knobs it declares
    (others are ignored)."""
    cls = estimator_class(name)
    return cls(**{k: v for k, v in knobs.items() if k in cls.knobs})
