"""task=vae's keys (ranges and meanings) and which encoder estimator runs on which latent (the task is vae/task.py)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import List, Optional

from ..core.signals import Unit
from ..config import PATHWISE, MethodConfig
from ..schema import TaskConfig, need, num



class Latent(str, Enum):
    gaussian = "gaussian"  # D dimensions, q = N(mu, diag(s^2)), prior N(0, I)
    categorical = "categorical"  # D variables of K classes, prior uniform


class Decoder(str, Enum):
    mlp = "mlp"  # nonlinear MLP, Bernoulli likelihood on binarised pixels
    linear = "linear"  # x ~ N(W z + b, sigma^2 I), sigma^2 learned: the closed-form setting


class CodeUnit(str, Enum):
    """What a VAE score-function estimator's log q, delight and gate are per (task.unit)."""

    sample = "sample"  # one unit per sampled code: log q(z|x) summed over the latent variables
    latent = "latent"  # one unit per latent variable: the row's advantage broadcast, like reversal's tokens


class Binarize(str, Enum):
    dynamic = "dynamic"  # a fresh Bernoulli(pixel / 255) draw every time an image is used
    fixed = "fixed"  # one draw per training image, the same for every run (seed 0)


class Schedule(str, Enum):
    linear = "linear"  # w = 1 - t / T
    cosine = "cosine"  # w = (1 + cos(pi t / T)) / 2
    constant = "constant"  # w = 1: the pure silent gradient, never annealed


class Into(str, Enum):
    """The stochastic estimator the silent gradient anneals into."""

    reparam = "reparam"
    gumbel = "gumbel"
    pg = "pg"  # REINFORCE with the leave-one-out baseline
    dg = "dg"  # DG's weight sigma(chi / eta) on REINFORCE's terms


@dataclass
class VaeConfig(TaskConfig):
    """A VAE on binarised MNIST (kondo_bench/vae): the encoder is trained by the method's estimator."""

    name: str = "vae"
    latent: Latent = Latent.categorical
    latent_dim: int = num(20, "[1, 100000]", "D: Gaussian dimensions, or categorical variables")
    classes: int = num(10, "[2, 100000]", "K: classes of each categorical variable")
    decoder: Decoder = Decoder.mlp
    hidden: List[int] = num(None, "[1, 100000]", "hidden sizes of the encoder MLP (the decoder's, reversed)",
                            factory=lambda: [200])
    lr: float = num(1e-3, "> 0", "Adam learning rate")
    batch_size: int = num(100, "[1, 1000000]", "images per step (each with task.samples codes)")
    samples: int = num(2, "[1, 10000]", "S: codes sampled per image; the leave-one-out baseline needs S >= 2")
    unit: CodeUnit = CodeUnit.sample  # what a score-function estimator's log q, delight and gate are per
    binarize: Binarize = Binarize.dynamic  # training pixels; the test images are binarised once (seed 0)
    steps: int = num(2000, "[1, 1000000000]", "optimiser steps")
    eval_every: int = num(200, "[1, 1000000000]", "steps between evaluations (and metrics rows)")
    eval_samples: int = num(1, "[1, 10000]", "codes per test image for the Monte Carlo reconstruction term")
    var_images: int = num(100, "[1, 60000]", "images of the fixed minibatch the encoder's gradient variance is measured on")
    var_draws: int = num(10, "[2, 100000]", "gradient draws on that minibatch per evaluation")
    data_root: Optional[str] = None  # folder of IDX files; None searches (docs/data.md)
    eval_size: int = num(2000, "[1, 60000]", "images held out of the test split when the training files are absent")
    verify_data: bool = True  # check file checksums before use


@dataclass
class GumbelMethodConfig(MethodConfig):
    """method=gumbel: the Gumbel-Softmax relaxation of a categorical code."""

    tau: float = num(1.0, "> 0", "gumbel: temperature of the relaxed sample softmax((logits + g) / tau)")
    straight_through: bool = False  # forward the hard one-hot, backward through the relaxed sample


@dataclass
class SilentMethodConfig(GumbelMethodConfig):
    """method=silent: the encoder's gradient is w * (a linear decoder's closed-form gradient)
    + (1 - w) * (the `into` estimator's), w annealed from 1 to 0 over anneal_steps."""

    anneal_steps: int = num(1000, "[1, 1000000000]", "silent: T, the steps over which the silent weight w falls from 1 to 0")
    schedule: Schedule = Schedule.linear
    into: Optional[Into] = None  # None: the latent's pathwise estimator (reparam or gumbel)



def resolve_into(cfg) -> str:
    """The stochastic estimator method=silent anneals into: method.into, else the latent's pathwise one."""
    into = cfg.method.get("into")
    if into is not None:
        return Into(into).value
    return "reparam" if Latent(cfg.task.latent) is Latent.gaussian else "gumbel"


def validate_vae(cfg, estimator: str, gate: str) -> None:
    """Which encoder estimator runs on which latent, and the keys each one reads (cfg: the full config)."""
    t, m = cfg.task, cfg.method
    method = f"method={m.name}"
    gaussian = Latent(t.latent) is Latent.gaussian
    need(estimator != "ce", "task=vae has no correct action, so method=ce (the supervised oracle) cannot run on it; "
         "use method=pg, dg, dgk, reparam, gumbel or silent")
    need(estimator not in PATHWISE or m.name == estimator,
         f"method.estimator={estimator} has its own preset and keys: use method={estimator}")
    need(m.name not in PATHWISE or estimator == m.name,
         f"{method} always runs estimator {m.name}" + (": to anneal into another one, set method.into" if m.name ==
                                                       "silent" else ""))
    need(estimator not in PATHWISE or gate == "none",
         f"{method} differentiates through the sampled code: there is no per-sample score term for a gate to keep; "
         "drop method.gate (gated estimators: method=dgk, or any score-function estimator through method.gate)")
    into = resolve_into(cfg) if estimator == "silent" else None
    sampled = into or estimator  # the estimator whose samples train the encoder (silent: after annealing)
    named = f"{method} method.into={into}" if into else method
    need(sampled != "reparam" or gaussian, f"{named} needs task.latent=gaussian: a categorical code has no "
         "reparameterisation (use method=gumbel, or method.into=gumbel)")
    need(sampled != "gumbel" or not gaussian, f"{named} needs task.latent=categorical (for a Gaussian code use "
         "method=reparam, or method.into=reparam)")
    need(not gaussian or (sampled != "dg" and gate == "none"),
         f"{method} (estimator {sampled}, gate {gate}) on task.latent=gaussian: a Gaussian code's -log q is a "
         "negative log density, not a surprisal, so DG and the Kondo gate run on task.latent=categorical only")
    scores = sampled not in ("reparam", "gumbel")  # a score-function term: REINFORCE, DG, PPO, PMPO
    need(not scores or t.samples >= 2,
         f"task.samples={t.samples} leaves no other sample for the leave-one-out baseline of {method} "
         f"(estimator {sampled}); use task.samples=2 or more")
    need(scores or CodeUnit(t.unit) is CodeUnit.sample,
         f"task.unit={CodeUnit(t.unit).value} is read by score-function estimators only (pg, dg, dgk, silent with "
         f"method.into=pg or dg); drop it for {method}")
    need(not gaussian or t.classes == 10, "task.classes is read by task.latent=categorical only; drop it")
    need(cfg.method.unit != Unit.sequence or CodeUnit(t.unit) is CodeUnit.latent,
         "method.unit=sequence gates a row's units together, and with task.unit=sample a row is one unit: "
         "add task.unit=latent, or drop method.unit")
    need(cfg.staleness == 0, "staleness is not supported on task=vae: its decoder learns from the acting forward "
         "pass; drop staleness")
    need(cfg.screen_precision == "fp32", "screen_precision=bf16 is not supported on task=vae; drop it")
    if m.name in ("gumbel", "silent") and sampled != "gumbel":
        need(m.tau == 1.0 and not m.straight_through, f"method.tau and method.straight_through are read by the "
             f"gumbel estimator only; {method} anneals into {sampled}: drop them")
    if m.name == "silent":
        need(Schedule(m.schedule) is not Schedule.constant or m.anneal_steps == 1000,
             "method.anneal_steps is ignored by method.schedule=constant (w stays 1); drop one of them")


def register() -> None:
    """Register the schema so that conf/task/vae.yaml can extend it (/schema/task/vae)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(group="schema/task", name="vae", node=VaeConfig)
    cs.store(group="schema/method", name="gumbel", node=GumbelMethodConfig)  # its own keys: only where it runs
    cs.store(group="schema/method", name="silent", node=SilentMethodConfig)
