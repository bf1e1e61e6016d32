"""A method is an estimator through a gate; `Method.select` screens a batch into a `Selection`.

A *unit* is what the gate decides on: a sample, or a token of a sequence ([B] or [B, T]).
With `unit="sequence"` the gate decides on whole rows (a row's score is the mean or sum of
its units' scores) and a kept row keeps all its units.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .estimators import Estimator, make_estimator
from .gates import Gate, make_gate, topk_count
from .signals import KeptWeight, Reduce, Signal, Unit, delight, screening_score, sequence_score

# The named pairs (the paper's methods): preset -> (estimator, gate). `dgk` is PG's terms on
# the units a delight-screening gate keeps (the paper's DG-K); `auto` is topk with keep_rate, else price.
PRESETS = {"pg": ("pg", "none"), "dg": ("dg", "none"), "dgk": ("pg", "auto"), "ppo": ("ppo", "none"),
           "pmpo": ("pmpo", "none"), "ce": ("ce", "none")}


@dataclass
class Selection:
    """What screening decided, per unit ([B] or [B, T])."""

    coef: torch.Tensor  # the estimator's coefficient (already includes U); zero where not kept
    keep: torch.Tensor  # bool: does this unit earn a backward pass?
    delight: torch.Tensor  # chi = U * -log pi (with delight noise, where asked)
    price: float | None  # the price the gate used (None when ungated or top-k)
    logp: torch.Tensor | None = None  # the acting policy's log pi, detached: PPO's pi_old

    @property
    def kept_units(self) -> int:
        return int(self.keep.sum())


class Method:
    """An estimator through a gate. `Method("dgk", keep_rate=0.03)` builds a preset by name;
    `estimator=` and `gate=` pick either part, e.g. `Method("ppo", gate="topk", keep_rate=0.1)`.

    `knobs` are handed to the estimator and the gate, each taking those it declares:
    eta, price, keep_rate, ties (gates); eta, epochs, minibatches, clip, kl, alpha (estimators).
    """

    def __init__(self, name: str = "pg", *, estimator: str | None = None, gate: str | None = None,
                 kept_weight: KeptWeight | str = KeptWeight.one, unit: Unit | str = Unit.token,
                 unit_reduce: Reduce | str = Reduce.mean, signal: Signal | str = Signal.delight,
                 signal_alpha: float = 0.5, delight_noise: float = 0.0, **knobs):
        preset_est, preset_gate = PRESETS.get(name, (name, "none"))
        est = estimator or preset_est
        if KeptWeight(kept_weight) is KeptWeight.dg and est == "pg":
            est = "dg"  # kept units carry DG's weight: that is the dg estimator
        self.name = name
        self.estimator: Estimator = make_estimator(est, **knobs)
        self.gate: Gate = make_gate(gate or preset_gate, **knobs)
        self.signal, self.signal_alpha, self.delight_noise = Signal(signal), signal_alpha, delight_noise
        self.unit, self.unit_reduce = Unit(unit), Reduce(unit_reduce)

    @property
    def gated(self) -> bool:
        """Screens without autograd, then re-runs the forward pass on the rows it keeps: any gate,
        and an estimator that passes over a batch more than once (its later epochs need fresh log pi)."""
        return self.gate.name != "none" or self.estimator.epochs > 1 or self.estimator.ratio_based

    @property
    def pathwise(self) -> bool:
        """Trained through its sample by a step of its own (a VAE's reparam, gumbel, silent)."""
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
        if not g.exact_k():
            return None
        k = topk_count(g.keep_rate, n_units)
        if abs(k / n_units - g.keep_rate) <= 0.1 * g.keep_rate:
            return None
        what = "sequences" if self.unit is Unit.sequence else "units"
        return (f"keep_rate={g.keep_rate:g} keeps k = max(1, round(ρ·n)) = {k} of the {n_units} {what} a step "
                f"screens: an effective keep rate of {k / n_units:.3g}; use a larger batch for a smaller rate")

    def select(self, advantage: torch.Tensor, logp: torch.Tensor, valid: torch.Tensor | None = None) -> Selection:
        """Screen a batch: delight, the estimator's coefficients, and the gate's keep mask.
        `advantage` and `logp` (the taken actions' log pi) have one entry per unit. `valid`
        (bool, the same shape; None: every unit exists) marks the units that exist: a language
        model's padding after its end-of-sequence token is no unit, so the gate neither ranks
        nor keeps it, and it carries no term."""
        # Coefficients and gates are constants for autograd, whatever the caller passes in.
        advantage, logp = advantage.detach(), logp.detach()
        chi = delight(advantage, logp)
        if self.delight_noise > 0:  # approximate delight: what the weight and the gate see
            chi = chi * (1 + self.delight_noise * torch.randn_like(chi))
        coef = self.estimator.coef(advantage, logp, chi)
        if valid is not None:
            coef = torch.where(valid, coef, torch.zeros_like(coef))
        if self.gate.name == "none":
            keep = torch.ones_like(chi, dtype=torch.bool) if valid is None else valid.clone()
            return Selection(coef, keep, chi, None, logp)
        score = screening_score(self.signal, advantage, logp, chi, self.signal_alpha)
        if self.unit is Unit.sequence and score.dim() > 1:  # one decision per row, for all its tokens
            if valid is None:
                row_score = sequence_score(score, self.unit_reduce)
            else:  # the row's existing units only
                total = torch.where(valid, score, torch.zeros_like(score)).reshape(score.shape[0], -1).sum(1)
                count = valid.reshape(score.shape[0], -1).sum(1).clamp(min=1)
                row_score = total if Reduce(self.unit_reduce) is Reduce.sum else total / count
            keep, price = self.gate.keep(row_score)
            keep = keep.reshape(-1, *[1] * (score.dim() - 1)).expand_as(score)
            if valid is not None:
                keep = keep & valid
        elif valid is not None:  # the gate sees the existing units only (top-k's k counts them)
            kept, price = self.gate.keep(score[valid])
            keep = torch.zeros_like(valid)
            keep[valid] = kept
        else:
            keep, price = self.gate.keep(score)
        coef = torch.where(keep, coef, 0.0)  # a scalar zero: no zeros tensor allocated
        return Selection(coef, keep, chi, None if price is None else float(price), logp)

    def loss(self, coef: torch.Tensor, logp: torch.Tensor, logp_old: torch.Tensor) -> torch.Tensor:
        return self.estimator.loss(coef, logp, logp_old)
