"""Typed configuration: the schema every Hydra YAML file is checked against.

Each dataclass below is registered in Hydra's ConfigStore; the YAML files in `conf/`
extend these schemas, so a misspelt key or a value of the wrong type is an error at
start-up rather than a silently ignored setting. Defaults live here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from .errors import UserError


class Gate(str, Enum):
    """Which samples earn a backward pass (only `dgk` is gated)."""

    auto = "auto"  # `topk` when keep_rate is set, else `price`
    price = "price"  # Bernoulli on sigma((chi - price) / eta)
    quantile = "quantile"  # the same, with the price set per batch so that keep_rate passes
    topk = "topk"  # deterministic top-rho cut of the official code


class KeptWeight(str, Enum):
    one = "one"  # plain PG term with unit weight (the paper and the official code)
    dg = "dg"  # the DG weight sigma(chi / eta) on top of the gate


class Signal(str, Enum):
    """What the gate screens on (the score compared with the price, or ranked for top-k)."""

    delight = "delight"  # chi = U * l
    random = "random"  # uniform noise: the control at equal keep rate
    advantage = "advantage"  # U
    abs_advantage = "abs_advantage"  # |U|
    surprisal = "surprisal"  # l = -log pi(a|h)
    additive = "additive"  # signal_alpha * U + (1 - signal_alpha) * l


class Ties(str, Enum):
    random = "random"  # exactly k kept, ties broken at random
    all = "all"  # every sample tied with the k-th passes (the official code)


@dataclass
class TaskConfig:
    name: str = MISSING
    steps: int = 1000  # optimiser steps (screened batches)
    batch_size: int = 100  # samples acted and screened per step
    eval_every: int = 100  # steps between evaluations (and metrics rows)


@dataclass
class BanditConfig(TaskConfig):
    name: str = "bandit"
    contexts: int = 1  # N: 1 is the single-context bandit, >1 the multi-context one
    arms: int = 100  # K
    step_size: float = 0.1  # alpha of the normalised logit step z <- z + alpha g/|g|
    baseline: float = 0.5  # b in U = R - b
    logit_std: float = 0.0  # initial logits ~ N(0, std); 0 gives uniform logits
    reward_noise: float = 0.0  # sigma of Gaussian noise added to the reward of noisy arms
    noisy_arms: float = 1.0  # 1: every arm is noisy (homoskedastic); < 1: that fraction of the
    #                          wrong arms only (action-specific noise: the "gambling" regime)
    steps: int = 1000
    eval_every: int = 10


@dataclass
class MnistConfig(TaskConfig):
    name: str = "mnist"
    hidden: List[int] = field(default_factory=lambda: [100, 100])
    lr: float = 1e-3
    steps: int = 10_000
    eval_every: int = 500
    data_root: Optional[str] = None  # folder of IDX files; None searches (see README)
    eval_size: int = 2000  # held out of the test split when the training files are absent
    verify_data: bool = True  # check file checksums before use


@dataclass
class ReversalConfig(TaskConfig):
    name: str = "reversal"
    horizon: int = 10  # H: prompt and answer length
    vocab: int = 2  # M: tokens drawn uniformly from 0 .. M-1
    variant: str = "reverse"  # target: reverse | copy | flip ((x + 1) mod M)
    scoring: str = "fraction"  # fraction correct | sequential (correct up to the first error)
    kappa: float = 1.0  # R = kappa * score + (1 - kappa) * 1{all correct}
    batch_size: int = 100  # episodes per step: batch_size / samples_per_prompt prompts
    samples_per_prompt: int = 10  # answers per prompt; baseline = their mean reward
    d_model: int = 64
    layers: int = 3
    heads: int = 4
    ffn: int = 128
    lr: float = 3e-4
    steps: int = 1000
    eval_every: int = 50
    eval_prompts: int = 200  # fresh prompts per evaluation


@dataclass
class MethodConfig:
    name: str = MISSING  # pg | dg | dgk | ppo | pmpo | ce
    eta: float = 1.0  # temperature of sigma(chi / eta); 0 is the hard step 1{chi > 0}
    gate: Gate = Gate.auto
    kept_weight: KeptWeight = KeptWeight.one
    ties: Ties = Ties.random
    signal: Signal = Signal.delight  # what the dgk gate screens on
    signal_alpha: float = 0.5  # alpha of the additive signal
    delight_noise: float = 0.0  # relative noise: chi * (1 + delight_noise * N(0, 1)) for weight and gate
    epochs: int = 1  # ppo: passes over each batch
    minibatches: int = 1  # ppo: minibatches per pass
    clip: float = 0.2  # ppo: epsilon of the clipped ratio
    kl: float = 0.0  # ppo: beta of the KL(old || new) penalty; pmpo: beta, pull towards the acting policy
    alpha: float = 0.5  # pmpo: weight of preferred (U > 0) against rejected (U < 0) samples


@dataclass
class DeviceConfig:
    name: str = "auto"  # auto | cpu | cuda
    threads: Optional[int] = None  # torch CPU threads; None keeps torch's default (all cores)


@dataclass
class Config:
    task: Any = MISSING
    method: Any = MISSING
    device: DeviceConfig = field(default_factory=DeviceConfig)
    seed: int = 0  # drives Python, NumPy and torch
    price: float = 0.0  # lambda, the compute price of a backward pass (dgk, gate=price)
    keep_rate: Optional[float] = None  # rho in (0, 1]: a fixed fraction passes (dgk)
    cost_ratio: float = 2.0  # c: backward cost in forward passes, for the modelled cost
    staleness: int = 0  # D: act with the policy's parameters of D steps ago (distributed actors)
    screen_precision: str = "fp32"  # fp32 | bf16: a cheaper screening forward for gated methods
    progress: bool = True  # tqdm bar (shown only on a terminal)
    resume: bool = True  # skip a folder's complete run of the same config; continue from its checkpoint
    checkpoint_every: int = 0  # steps between checkpoints (a multiple of task.eval_every); 0: none


METHODS = ("pg", "dg", "dgk", "ppo", "pmpo", "ce")


def register() -> None:
    """Register the schemas so that conf/*.yaml can extend them."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    # Under schema/ so that they are not offered as choices of task=, method=, device=.
    cs.store(group="schema/task", name="bandit", node=BanditConfig)
    cs.store(group="schema/task", name="mnist", node=MnistConfig)
    cs.store(group="schema/task", name="reversal", node=ReversalConfig)
    cs.store(group="schema/method", name="method", node=MethodConfig)
    cs.store(group="schema/device", name="device", node=DeviceConfig)


def resolve_gate(cfg) -> str:
    """The gate form a run uses: `none` for ungated methods, else price | quantile | topk."""
    if cfg.method.name != "dgk":
        return "none"
    gate = Gate(cfg.method.gate)
    if gate is Gate.auto:
        return "topk" if cfg.keep_rate is not None else "price"
    return gate.value


def validate(cfg) -> None:
    """Refuse bad values with one message that names the fix."""
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise UserError(msg)

    need(cfg.method.name in METHODS, f"unknown method '{cfg.method.name}': use one of {', '.join(METHODS)}")
    need(cfg.price >= 0, f"price must be >= 0 (got {cfg.price}); it is the compute price lambda of a backward pass")
    need(cfg.keep_rate is None or 0 < cfg.keep_rate <= 1,
         f"keep_rate must be in (0, 1] (got {cfg.keep_rate}); e.g. keep_rate=0.03 keeps 3% of samples")
    need(cfg.method.eta >= 0, f"method.eta must be >= 0 (got {cfg.method.eta}); 0 is the hard gate")
    m = cfg.method
    need(cfg.checkpoint_every >= 0 and cfg.checkpoint_every % cfg.task.eval_every == 0,
         f"checkpoint_every must be a multiple of task.eval_every ({cfg.task.eval_every}), or 0 for none")
    need(cfg.device.threads is None or cfg.device.threads >= 1, "device.threads must be >= 1 (or null)")
    need(cfg.screen_precision in ("fp32", "bf16"),
         f"screen_precision must be fp32 or bf16 (got '{cfg.screen_precision}')")
    need(cfg.staleness >= 0, f"staleness must be >= 0 (got {cfg.staleness})")
    need(m.epochs >= 1 and m.minibatches >= 1, "method.epochs and method.minibatches must be >= 1")
    need(m.clip >= 0 and m.kl >= 0 and m.delight_noise >= 0, "method.clip, method.kl and method.delight_noise must be >= 0")
    need(0 <= m.alpha <= 1 and 0 <= m.signal_alpha <= 1, "method.alpha and method.signal_alpha must be in [0, 1]")
    need(cfg.cost_ratio >= 0, f"cost_ratio must be >= 0 (got {cfg.cost_ratio}); it is c, backward cost / forward cost")
    for key in ("steps", "batch_size", "eval_every"):
        need(cfg.task[key] >= 1, f"task.{key} must be >= 1 (got {cfg.task[key]})")
    gate = resolve_gate(cfg)
    if gate in ("quantile", "topk"):
        need(cfg.keep_rate is not None, f"method.gate={gate} needs keep_rate, e.g. keep_rate=0.03")
        need(cfg.price == 0, f"method.gate={gate} sets the price per batch from keep_rate; drop price={cfg.price}")
    if gate == "price":
        need(cfg.keep_rate is None,
             "keep_rate is set but method.gate=price uses a fixed price; use method.gate=quantile or topk, or drop keep_rate")
