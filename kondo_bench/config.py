"""The common configuration: the run's top level, the method, the device and the logger.

Each dataclass below is registered in Hydra's ConfigStore; the YAML files in `conf/`
extend these schemas, so a misspelt key or a value of the wrong type is an error at
start-up rather than a silently ignored setting. A task's own keys live beside the task
(tasks/<name>_config.py, vae/config.py); the range framework in schema.py; the rules that
tie several keys together in validation.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from .core import PRESETS as CORE_PRESETS
from .core.signals import KeptWeight, Reduce, Signal, Ties, Unit
from .schema import num


PATHWISE = ("reparam", "gumbel", "silent")  # VAE encoder estimators with no score-function term to screen or gate


@dataclass
class MethodConfig:
    name: str = MISSING  # the preset: pg | dg | dgk | ppo | pmpo | ce; the results' `method` column
    # per-unit loss terms: a registered estimator (pg, dg, ppo, pmpo, ce; kondo_bench/core/estimators.py) or
    # one's own by import path (package.module.Class); None: the preset's (dgk: pg)
    estimator: Optional[str] = None
    eta: float = num(1.0, ">= 0", "temperature of sigma(chi / eta); 0 is the hard step 1{chi > 0}")
    # which units earn a backward pass: none | price | quantile | topk (kondo_bench/core/gates.py), auto (topk
    # with keep_rate, else price; dgk's), or one's own by import path
    gate: str = "none"
    kept_weight: KeptWeight = KeptWeight.one  # dg: kept units carry DG's weight (= estimator=dg)
    ties: Ties = Ties.random
    unit: Unit = Unit.token  # sequence: whole rows ranked or priced, kept or skipped together
    unit_reduce: Reduce = Reduce.mean  # a sequence's score: the mean or the sum of its tokens' scores
    signal: Signal = Signal.delight  # what a gate screens on
    signal_alpha: float = num(0.5, "[0, 1]", "alpha of the additive signal alpha U + (1 - alpha) l")
    delight_noise: float = num(0.0, ">= 0", "relative noise chi * (1 + delight_noise * N(0, 1)) on the delight")
    epochs: int = num(1, "[1, 10000]", "ppo: passes over each batch")
    minibatches: int = num(1, "[1, 1000000]", "ppo: minibatches per pass")
    clip: float = num(0.2, ">= 0", "ppo: epsilon of the clipped ratio")
    kl: float = num(0.0, ">= 0", "ppo: beta of the KL(old || new) penalty; pmpo: beta, the pull to the acting policy")
    alpha: float = num(0.5, "[0, 1]", "pmpo: weight of preferred (U > 0) against rejected (U < 0) samples")


@dataclass
class DeviceConfig:
    name: str = "auto"  # auto | cpu | cuda
    threads: Optional[int] = num(None, "[1, 1024]", "torch CPU threads; null keeps torch's default (all cores)")
    deterministic: bool = True  # torch.use_deterministic_algorithms (warn-only); see docs/concepts.md
    force_bf16: bool = False  # run screen_precision=bf16 on a CPU without bf16 instructions (1.7-3.6x slower there)


@dataclass
class LoggerConfig:
    """Live views of a run's metrics rows, written at evaluations (kondo_bench/loggers.py)."""

    tensorboard: Optional[bool] = None  # event files in the run folder; null: on where tensorboard is installed
    wandb: bool = False  # one Weights & Biases run per job, grouped by sweep folder (pip install 'kondo-bench[wandb]')
    wandb_project: str = "kondo-bench"
    wandb_mode: Optional[str] = None  # online | offline; null: WANDB_MODE, else online only with an API key and network


@dataclass
class Config:
    task: Any = MISSING
    method: Any = MISSING
    device: DeviceConfig = field(default_factory=DeviceConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = num(0, f"[0, {2**32 - 1}]", "drives Python, NumPy and torch")
    price: float = num(0.0, ">= 0", "lambda, the compute price of a backward pass (gate price)")
    keep_rate: Optional[float] = num(None, "(0, 1]", "rho: a fixed fraction of units passes (gates quantile, topk); e.g. 0.03")
    cost_ratio: float = num(2.0, "[0, 1000000]", "c, the cost of a backward pass in forward passes (modelled cost)")
    staleness: int = num(0, "[0, 100000]", "D: act with the policy's parameters of D steps ago (distributed actors)")
    screen_precision: str = "fp32"  # fp32 | bf16: a cheaper screening forward for gated methods
    progress: bool = True  # tqdm bar (shown only on a terminal)
    resume: bool = True  # skip a folder's complete run of the same config; continue from its checkpoint
    checkpoint_every: int = num(0, "[0, 1000000000]", "steps between checkpoints (a multiple of task.eval_every); 0: none")
    solved_below: Optional[float] = num(None, "> 0", "stop at the first evaluation whose quality (lower is better) "
                                        "is below this: status solved; e.g. 0.25 for reward > 0.75 on reversal")


# Each `method=` preset names an estimator (and dgk a gate, kondo_bench/core/select.py); the
# results' `method` column is the preset's name, so `dgk` stays `dgk`.
PRESETS = {**{name: est for name, (est, _) in CORE_PRESETS.items()}, **{name: name for name in PATHWISE}}
METHODS = tuple(PRESETS)


def register() -> None:
    """Register the schemas so that conf/*.yaml can extend them."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    # Under schema/ so that they are not offered as choices of task=, method=, device=.
    cs.store(group="schema/method", name="method", node=MethodConfig)
    cs.store(group="schema/device", name="device", node=DeviceConfig)
    cs.store(group="schema/logger", name="logger", node=LoggerConfig)
    from .tasks import register_builtin_schemas  # each task's schema, registered beside the task

    register_builtin_schemas()


def resolve_estimator(cfg) -> str:
    """The estimator a run uses: method.estimator, else the preset's; kept_weight=dg is DG's."""
    m = cfg.method
    est = m.estimator if m.estimator is not None else PRESETS.get(m.name, "pg")
    return "dg" if KeptWeight(m.kept_weight) is KeptWeight.dg and est == "pg" else est


def resolve_gate(cfg) -> str:
    """The gate a run uses: method.gate (`auto`: topk with keep_rate, else price)."""
    gate = cfg.method.gate
    if gate == "auto":
        return "topk" if cfg.keep_rate is not None else "price"
    return gate
