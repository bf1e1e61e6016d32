"""Gates: a screening score in, a keep mask and the price it used out. They know nothing of
estimators or tasks, so any estimator runs through any gate.

    price     G ~ Bernoulli(sigma((score - lambda) / eta))        the Kondo gate
    quantile  the same, lambda solved per batch so that E[mean G] = rho
    topk      the k = max(1, round(rho n)) highest scores of the batch

A new gate is a subclass of `Gate` decorated with `@register_gate("name")`; `knobs` names
the keys of the run's config it reads (its constructor's keyword arguments).
"""

from __future__ import annotations

import torch

from .registry import lookup
from .signals import Ties, sigmoid_weight

GATES: dict[str, type["Gate"]] = {}


def register_gate(name: str):
    """Class decorator: make a gate available as `gate=name` (core and config alike)."""
    def add(cls):
        cls.name = name
        GATES[name] = cls
        return cls
    return add


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


def topk_gate(score: torch.Tensor, keep_rate: float, ties: Ties | str = Ties.random) -> torch.Tensor:
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
    # index_select and index_fill_, not x[idx] and x[idx] = True: the same mask, at a third less
    # of the gate's CPU time on a small batch (Python's indexing path is slower than the op)
    kept = torch.index_select(perm, 0, torch.topk(torch.index_select(flat, 0, perm), k).indices)
    return torch.zeros_like(flat, dtype=torch.bool).index_fill_(0, kept, True).reshape(score.shape)


@register_gate("none")
class Gate:
    """Every unit passes; subclasses keep a subset. `keep(score)` -> (mask, price or None)."""

    knobs: tuple[str, ...] = ()  # config keys read (constructor keywords): price, keep_rate, eta, ties
    fixed_rate: bool = False  # keeps a set fraction: needs keep_rate (and may round it, see `exact_k`)

    @classmethod
    def reads(cls, knob: str, method) -> bool:
        """Does this gate read `knob` under the method config `method` (a mapping)?"""
        return knob in cls.knobs

    def keep(self, score: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float | None]:
        return torch.ones_like(score, dtype=torch.bool), None

    def exact_k(self) -> bool:
        """Keeps exactly k = max(1, round(rho n)) units: rho is rounded on a small batch."""
        return False


@register_gate("price")
class PriceGate(Gate):
    """Keep each unit with probability sigma((score - price) / eta): the Kondo gate."""

    knobs = ("price", "eta")

    def __init__(self, price: float = 0.0, eta: float = 1.0):
        self.price, self.eta = price, eta

    def keep(self, score):
        return price_gate(score, self.price, self.eta), self.price


@register_gate("quantile")
class QuantileGate(Gate):
    """The price gate with the price solved per batch so that keep_rate passes in expectation;
    at eta = 0 its limit, the top-k cut."""

    knobs, fixed_rate = ("keep_rate", "eta", "ties"), True

    def __init__(self, keep_rate: float, eta: float = 1.0, ties: Ties | str = Ties.random):
        self.keep_rate, self.eta, self.ties = keep_rate, eta, Ties(ties)

    @classmethod
    def reads(cls, knob, method):
        return knob in ("keep_rate", "eta") or knob == "ties" and method["eta"] == 0  # ties: its eta = 0 limit

    def keep(self, score):
        if self.eta == 0:
            return topk_gate(score, self.keep_rate, self.ties), None
        price = price_for_keep_rate(score, self.keep_rate, self.eta)
        return price_gate(score, price, self.eta), price

    def exact_k(self) -> bool:
        return self.eta == 0


@register_gate("topk")
class TopKGate(Gate):
    """Exactly the k = max(1, round(rho n)) highest-scoring units of the batch."""

    knobs, fixed_rate = ("keep_rate", "ties"), True

    def __init__(self, keep_rate: float, ties: Ties | str = Ties.random):
        self.keep_rate, self.ties = keep_rate, Ties(ties)

    def keep(self, score):
        return topk_gate(score, self.keep_rate, self.ties), None

    def exact_k(self) -> bool:
        return True


def gate_class(name: str) -> type[Gate]:
    """A registered gate's class, or one named by its import path ("package.module.Class")."""
    return lookup(GATES, name, Gate, "gate")


def make_gate(name: str, **knobs) -> Gate:
    """The gate registered as `name`, given the knobs it declares (others are ignored);
    `auto` is topk when keep_rate is set, else price."""
    if name == "auto":
        name = "topk" if knobs.get("keep_rate") is not None else "price"
    cls = gate_class(name)
    return cls(**{k: v for k, v in knobs.items() if k in cls.knobs})
