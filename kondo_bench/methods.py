"""The runner's side of a method: build the core's estimator-through-gate pair from a config.

Everything that screens, gates and learns lives in `kondo_bench.core` (torch only), which a
researcher can import into their own loop; this module only reads the Hydra config into it,
so the CLI and a user's own loop run one implementation.
"""

from __future__ import annotations

import torch

from .config import resolve_estimator, resolve_gate
from .config import PATHWISE
from .core import (Estimator, Method as CoreMethod, Selection, delight, price_for_keep_rate, register_estimator,
                   screening_score, sigmoid_weight, topk_gate)

__all__ = ["Method", "Selection", "delight", "price_for_keep_rate", "screening_score", "sigmoid_weight",
           "topk_gate"]


class Pathwise(Estimator):
    """A VAE encoder estimator that differentiates through the sampled code (reparam, gumbel,
    silent). It has no per-sample score term, so nothing to screen or gate: the loop hands the
    whole step to the task's `pathwise_step` (kondo_bench/vae/pathwise.py)."""

    pathwise = True

    def coef(self, advantage, logp, chi):
        raise TypeError(f"the {self.name} estimator has no score-function terms: the task's pathwise_step trains it")

    def loss(self, coef: torch.Tensor, logp: torch.Tensor, logp_old: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"the {self.name} estimator has no score-function terms: the task's pathwise_step trains it")


class Silent(Pathwise):
    """method=silent: what it anneals into (method.into=dg) reads DG's eta and delight noise."""

    @classmethod
    def reads(cls, knob, method):
        into = method.get("into")
        return knob in ("eta", "delight_noise") and getattr(into, "value", into) == "dg"


for _name in PATHWISE:
    register_estimator(_name)(Silent if _name == "silent" else type(f"Pathwise_{_name}", (Pathwise,), {}))


class Method(CoreMethod):
    """The core's `Method`, built from a run's config by `Method.from_config(cfg)`."""

    @classmethod
    def from_config(cls, cfg) -> "Method":
        m = cfg.method
        return cls(m.name, estimator=resolve_estimator(cfg), gate=resolve_gate(cfg), eta=m.eta, price=cfg.price,
                   keep_rate=cfg.keep_rate, ties=m.ties, unit=m.unit, unit_reduce=m.unit_reduce, signal=m.signal,
                   signal_alpha=m.signal_alpha, delight_noise=m.delight_noise, epochs=m.epochs,
                   minibatches=m.minibatches, clip=m.clip, kl=m.kl, alpha=m.alpha)
