"""Typed configuration: the schema every Hydra YAML file is checked against.

Each dataclass below is registered in Hydra's ConfigStore; the YAML files in `conf/`
extend these schemas, so a misspelt key or a value of the wrong type is an error at
start-up rather than a silently ignored setting. Defaults live here, once.
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from .core.signals import KeptWeight, Reduce, Signal, Ties, Unit  # noqa: F401 (the schema's types)
from .errors import UserError
from .knobs import refuse_ignored_knobs


class Estimator(str, Enum):
    """What turns the screen's tensors into per-unit loss terms (kondo_bench/methods.py)."""

    pg = "pg"  # U grad log pi: REINFORCE with the task's baseline
    dg = "dg"  # sigma(chi / eta) U grad log pi, the weight detached
    ppo = "ppo"  # clipped ratio surrogate, several epochs and minibatches per batch
    pmpo = "pmpo"  # preferred up (alpha), rejected down (1 - alpha), each group averaged
    ce = "ce"  # -log pi(y|x) on the true label: the supervised oracle
    # pathwise VAE encoder estimators: differentiate through the sample (kondo_bench/vae/pathwise.py)
    reparam = "reparam"  # Gaussian latents: z = mu + sigma * eps
    gumbel = "gumbel"  # categorical latents: Gumbel-Softmax, relaxed or straight-through
    silent = "silent"  # a linear decoder's closed-form gradient, annealed into a stochastic estimator


PATHWISE = ("reparam", "gumbel", "silent")  # estimators with no score-function term to screen or gate


class Gate(str, Enum):
    """Which units earn a backward pass; any estimator can run through any gate."""

    none = "none"  # every unit (pg, dg, ppo, pmpo, ce presets)
    auto = "auto"  # `topk` when keep_rate is set, else `price`
    price = "price"  # Bernoulli on sigma((chi - price) / eta)
    quantile = "quantile"  # the same, with the price set per batch so that keep_rate passes
    topk = "topk"  # deterministic top-rho cut of the official code


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric key: `lo`/`hi` bounds (None: unbounded), each open or closed."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, x) -> bool:
        if isinstance(x, float) and not math.isfinite(x):
            return False
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        return self.hi is None or (x < self.hi if self.hi_open else x <= self.hi)

    def __str__(self) -> str:
        def g(x: float) -> str:
            return str(int(x)) if float(x).is_integer() else f"{x:g}"

        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{g(self.lo)}, {g(self.hi)}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {g(self.lo)}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {g(self.hi)}"
        return "finite"


def _parse_range(spec: str) -> Range:
    """'>= 1', '> 0', '[0, 1]', '(0, 1]', 'finite' (any finite number)."""
    spec = spec.strip()
    if spec == "finite":
        return Range()
    m = re.fullmatch(r"(>=|>|<=|<)\s*(\S+)", spec)
    if m:
        op, x = m.group(1), float(m.group(2))
        return Range(lo=x, lo_open=op == ">") if op.startswith(">") else Range(hi=x, hi_open=op == "<")
    m = re.fullmatch(r"([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])])", spec)
    if not m:
        raise ValueError(f"bad range spec {spec!r}")
    return Range(float(m.group(2)), float(m.group(3)), m.group(1) == "(", m.group(4) == ")")


def num(default, valid: str, means: str, *, factory=None):
    """A numeric key: its default, its valid range (see _parse_range) and what it means, once.

    For a list (task.hidden) the range applies to each element. `check_ranges` enforces it.
    """
    meta = {"range": _parse_range(valid), "means": means}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TaskConfig:
    name: str = MISSING
    steps: int = num(1000, ">= 1", "optimiser steps (screened batches)")
    batch_size: int = num(100, ">= 1", "samples acted and screened per step")
    eval_every: int = num(100, ">= 1", "steps between evaluations (and metrics rows)")


@dataclass
class BanditConfig(TaskConfig):
    name: str = "bandit"
    contexts: int = num(1, ">= 1", "N, the number of contexts: 1 is the single-context bandit")
    arms: int = num(100, ">= 2", "K, the number of arms (one is correct)")
    step_size: float = num(0.1, "> 0", "alpha of the normalised logit step z <- z + alpha g/|g|")
    baseline: float = num(0.5, "finite", "b in U = R - b")
    logit_std: float = num(0.0, ">= 0", "initial logits ~ N(0, std); 0 gives uniform logits")
    reward_noise: float = num(0.0, ">= 0", "sigma of Gaussian noise added to the reward of noisy arms")
    # 1: every arm is noisy (homoskedastic); < 1: that fraction of the wrong arms only (the "gambling" regime)
    noisy_arms: float = num(1.0, "[0, 1]", "the fraction of wrong arms whose reward is noisy")
    steps: int = num(1000, ">= 1", "optimiser steps (screened batches)")
    eval_every: int = num(10, ">= 1", "steps between evaluations (and metrics rows)")


@dataclass
class MnistConfig(TaskConfig):
    name: str = "mnist"
    hidden: List[int] = num(None, ">= 1", "hidden layer sizes of the MLP", factory=lambda: [100, 100])
    lr: float = num(1e-3, "> 0", "Adam learning rate")
    steps: int = num(10_000, ">= 1", "optimiser steps (screened batches)")
    eval_every: int = num(500, ">= 1", "steps between evaluations (and metrics rows)")
    data_root: Optional[str] = None  # folder of IDX files; None searches (see README)
    eval_size: int = num(2000, ">= 1", "images held out of the test split when the training files are absent")
    verify_data: bool = True  # check file checksums before use


@dataclass
class ReversalConfig(TaskConfig):
    name: str = "reversal"
    horizon: int = num(10, ">= 1", "H, the prompt and answer length")
    vocab: int = num(2, ">= 2", "M, tokens drawn uniformly from 0 .. M-1")
    variant: str = "reverse"  # target: reverse | copy | flip ((x + 1) mod M)
    scoring: str = "fraction"  # fraction correct | sequential (correct up to the first error)
    kappa: float = num(1.0, "[0, 1]", "R = kappa * score + (1 - kappa) * 1{all correct}")
    batch_size: int = num(100, ">= 1", "episodes per step: batch_size / samples_per_prompt prompts")
    samples_per_prompt: int = num(10, ">= 1", "answers per prompt; the baseline is their mean reward")
    d_model: int = num(64, ">= 1", "transformer width")
    layers: int = num(3, ">= 1", "transformer blocks")
    heads: int = num(4, ">= 1", "attention heads (must divide d_model)")
    ffn: int = num(128, ">= 1", "feed-forward width")
    lr: float = num(3e-4, "> 0", "Adam learning rate")
    steps: int = num(1000, ">= 1", "optimiser steps (screened batches)")
    eval_every: int = num(50, ">= 1", "steps between evaluations (and metrics rows)")
    eval_prompts: int = num(200, ">= 1", "fresh prompts per evaluation")


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
    latent_dim: int = num(20, ">= 1", "D: Gaussian dimensions, or categorical variables")
    classes: int = num(10, ">= 2", "K: classes of each categorical variable")
    decoder: Decoder = Decoder.mlp
    hidden: List[int] = num(None, ">= 1", "hidden sizes of the encoder MLP (the decoder's, reversed)",
                            factory=lambda: [200])
    lr: float = num(1e-3, "> 0", "Adam learning rate")
    batch_size: int = num(100, ">= 1", "images per step (each with task.samples codes)")
    samples: int = num(2, ">= 1", "S: codes sampled per image; the leave-one-out baseline needs S >= 2")
    unit: CodeUnit = CodeUnit.sample  # what a score-function estimator's log q, delight and gate are per
    binarize: Binarize = Binarize.dynamic  # training pixels; the test images are binarised once (seed 0)
    steps: int = num(2000, ">= 1", "optimiser steps")
    eval_every: int = num(200, ">= 1", "steps between evaluations (and metrics rows)")
    eval_samples: int = num(1, ">= 1", "codes per test image for the Monte Carlo reconstruction term")
    var_images: int = num(100, ">= 1", "images of the fixed minibatch the encoder's gradient variance is measured on")
    var_draws: int = num(10, ">= 2", "gradient draws on that minibatch per evaluation")
    data_root: Optional[str] = None  # folder of IDX files; None searches (see README)
    eval_size: int = num(2000, ">= 1", "images held out of the test split when the training files are absent")
    verify_data: bool = True  # check file checksums before use


@dataclass
class MethodConfig:
    name: str = MISSING  # the preset: pg | dg | dgk | ppo | pmpo | ce; the results' `method` column
    estimator: Optional[Estimator] = None  # per-unit loss terms; None: the preset's (dgk: pg)
    eta: float = num(1.0, ">= 0", "temperature of sigma(chi / eta); 0 is the hard step 1{chi > 0}")
    gate: Gate = Gate.none  # dgk: auto
    kept_weight: KeptWeight = KeptWeight.one  # dg: kept units carry DG's weight (= estimator=dg)
    ties: Ties = Ties.random
    unit: Unit = Unit.token  # sequence: whole rows ranked or priced, kept or skipped together
    unit_reduce: Reduce = Reduce.mean  # a sequence's score: the mean or the sum of its tokens' scores
    signal: Signal = Signal.delight  # what a gate screens on
    signal_alpha: float = num(0.5, "[0, 1]", "alpha of the additive signal alpha U + (1 - alpha) l")
    delight_noise: float = num(0.0, ">= 0", "relative noise chi * (1 + delight_noise * N(0, 1)) on the delight")
    epochs: int = num(1, ">= 1", "ppo: passes over each batch")
    minibatches: int = num(1, ">= 1", "ppo: minibatches per pass")
    clip: float = num(0.2, ">= 0", "ppo: epsilon of the clipped ratio")
    kl: float = num(0.0, ">= 0", "ppo: beta of the KL(old || new) penalty; pmpo: beta, the pull to the acting policy")
    alpha: float = num(0.5, "[0, 1]", "pmpo: weight of preferred (U > 0) against rejected (U < 0) samples")


@dataclass
class GumbelMethodConfig(MethodConfig):
    """method=gumbel: the Gumbel-Softmax relaxation of a categorical code."""

    tau: float = num(1.0, "> 0", "gumbel: temperature of the relaxed sample softmax((logits + g) / tau)")
    straight_through: bool = False  # forward the hard one-hot, backward through the relaxed sample


@dataclass
class SilentMethodConfig(GumbelMethodConfig):
    """method=silent: the encoder's gradient is w * (a linear decoder's closed-form gradient)
    + (1 - w) * (the `into` estimator's), w annealed from 1 to 0 over anneal_steps."""

    anneal_steps: int = num(1000, ">= 1", "silent: T, the steps over which the silent weight w falls from 1 to 0")
    schedule: Schedule = Schedule.linear
    into: Optional[Into] = None  # None: the latent's pathwise estimator (reparam or gumbel)


@dataclass
class DeviceConfig:
    name: str = "auto"  # auto | cpu | cuda
    threads: Optional[int] = num(None, ">= 1", "torch CPU threads; null keeps torch's default (all cores)")
    deterministic: bool = True  # torch.use_deterministic_algorithms (warn-only); see README


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
    cost_ratio: float = num(2.0, ">= 0", "c, the cost of a backward pass in forward passes (modelled cost)")
    staleness: int = num(0, ">= 0", "D: act with the policy's parameters of D steps ago (distributed actors)")
    screen_precision: str = "fp32"  # fp32 | bf16: a cheaper screening forward for gated methods
    progress: bool = True  # tqdm bar (shown only on a terminal)
    resume: bool = True  # skip a folder's complete run of the same config; continue from its checkpoint
    checkpoint_every: int = num(0, ">= 0", "steps between checkpoints (a multiple of task.eval_every); 0: none")
    solved_below: Optional[float] = num(None, "> 0", "stop at the first evaluation whose quality (lower is better) "
                                        "is below this: status solved; e.g. 0.25 for reward > 0.75 on reversal")


# Each `method=` preset is an estimator through a gate; `dgk` is PG's terms on the units a
# delight-screening gate keeps (the paper's DG-K), so the results' `method` column stays `dgk`.
PRESETS = {"pg": Estimator.pg, "dg": Estimator.dg, "dgk": Estimator.pg, "ppo": Estimator.ppo,
           "pmpo": Estimator.pmpo, "ce": Estimator.ce,
           "reparam": Estimator.reparam, "gumbel": Estimator.gumbel, "silent": Estimator.silent}
METHODS = tuple(PRESETS)
VARIANTS = ("reverse", "copy", "flip")  # reversal targets
SCORINGS = ("fraction", "sequential")


# One place to add a task: its schema here, its class ("module:Class", imported only when a run
# builds it), and conf/task/<name>.yaml extending /schema/task/<name>. Test: tests/test_registry.py.
TASKS = {
    "bandit": (BanditConfig, "kondo_bench.tasks.bandit:BanditTask"),
    "mnist": (MnistConfig, "kondo_bench.tasks.mnist:MnistTask"),
    "reversal": (ReversalConfig, "kondo_bench.tasks.reversal:ReversalTask"),
    "vae": (VaeConfig, "kondo_bench.vae.task:VaeTask"),
}


def register() -> None:
    """Register the schemas so that conf/*.yaml can extend them."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    # Under schema/ so that they are not offered as choices of task=, method=, device=.
    for name, (schema, _) in TASKS.items():
        cs.store(group="schema/task", name=name, node=schema)
    cs.store(group="schema/method", name="method", node=MethodConfig)
    cs.store(group="schema/method", name="gumbel", node=GumbelMethodConfig)  # its own keys: only where it runs
    cs.store(group="schema/method", name="silent", node=SilentMethodConfig)
    cs.store(group="schema/device", name="device", node=DeviceConfig)
    cs.store(group="schema/logger", name="logger", node=LoggerConfig)


def resolve_estimator(cfg) -> str:
    """The estimator a run uses: method.estimator, else the preset's; kept_weight=dg is DG's."""
    m = cfg.method
    est = Estimator(m.estimator) if m.estimator is not None else PRESETS.get(m.name, Estimator.pg)
    if KeptWeight(m.kept_weight) is KeptWeight.dg and est is Estimator.pg:
        return Estimator.dg.value
    return est.value


def resolve_gate(cfg) -> str:
    """The gate a run uses: none | price | quantile | topk (`auto`: topk with keep_rate, else price)."""
    gate = Gate(cfg.method.gate)
    if gate is Gate.auto:
        return "topk" if cfg.keep_rate is not None else "price"
    return gate.value


NUMERIC = (int, float)


def numeric_type(hint) -> type | None:
    """int or float for a numeric field (also Optional[...] and List[...] of one), else None."""
    if hint in NUMERIC:
        return hint
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, list, List) and len(args) == 1 and args[0] in NUMERIC:
        return args[0]
    return None


def numeric_fields(schema: type) -> dict[str, tuple[type, Range | None, str]]:
    """Every numeric field of a schema dataclass: name -> (int | float, its Range or None, meaning)."""
    hints = typing.get_type_hints(schema)
    out = {}
    for f in fields(schema):
        kind = numeric_type(hints[f.name])
        if kind is not None:
            out[f.name] = (kind, f.metadata.get("range"), f.metadata.get("means", ""))
    return out


def check_ranges(node, prefix: str = "") -> None:
    """The one generic check: every numeric key of every config group inside its declared range.

    Walks the composed config; each typed node (a schema dataclass) says which of its keys are
    numeric and what their range is. A numeric key without a range is a bug in the schema.
    """
    schema = OmegaConf.get_type(node)
    declared = numeric_fields(schema) if schema is not None and is_dataclass(schema) else {}
    for key in node:
        value = node[key]
        name = f"{prefix}{key}"
        if isinstance(value, DictConfig):
            check_ranges(value, f"{name}.")
            continue
        if key not in declared:
            continue
        kind, valid, means = declared[key]
        if valid is None:
            raise TypeError(f"schema bug: numeric key {name} declares no range; use num(...) in config.py")
        for v in (value if isinstance(value, ListConfig) else [value]):
            if v is None:
                continue
            if v not in valid:
                finite = "a finite number " if kind is float else ""
                raise UserError(f"{name}={_show(value)} is out of range: it must be {finite}{valid} "
                                f"({name}: {means})")


def _show(value) -> str:
    return str(list(value)) if isinstance(value, ListConfig) else str(value)


def validate(cfg) -> None:
    """Refuse bad values with one message that names the fix: the schema's ranges, then the
    rules that tie several keys together."""
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise UserError(msg)

    need(cfg.method.name in METHODS, f"unknown method '{cfg.method.name}': use one of {', '.join(METHODS)}")
    check_ranges(cfg)
    need(cfg.checkpoint_every % cfg.task.eval_every == 0,
         f"checkpoint_every must be a multiple of task.eval_every ({cfg.task.eval_every}), or 0 for none "
         f"(got {cfg.checkpoint_every})")
    need(cfg.screen_precision in ("fp32", "bf16"),
         f"screen_precision must be fp32 or bf16 (got '{cfg.screen_precision}')")
    need(cfg.logger.wandb_mode in (None, "online", "offline"),
         f"logger.wandb_mode must be online, offline or null (got '{cfg.logger.wandb_mode}')")
    gate = resolve_gate(cfg)
    if gate in ("quantile", "topk"):
        need(cfg.keep_rate is not None, f"method.gate={gate} needs keep_rate, e.g. keep_rate=0.03")
    estimator = resolve_estimator(cfg)
    need(estimator not in PATHWISE or (gate == "none" and cfg.keep_rate is None and cfg.price == 0),
         f"method={cfg.method.name} differentiates through the sampled code: there is no per-sample score term "
         "for a gate to keep; drop keep_rate, price and method.gate (gated VAE encoders: method=dgk, or "
         "method=pg with method.gate)")
    refuse_ignored_knobs(cfg, estimator, gate)
    if estimator in PATHWISE and cfg.task.name != "vae":
        raise UserError(f"method={cfg.method.name} (estimator {estimator}) trains a VAE's encoder through its "
                        f"sampled code: it runs on task=vae only (kondo-bench run task=vae method={estimator})")
    if cfg.method.unit == Unit.sequence:
        from .tasks import task_class

        need(task_class(cfg.task.name).units_per_row == "many",
             f"method.unit=sequence is the same gate as method.unit=token on task={cfg.task.name}, whose rows are "
             "one unit each; drop method.unit (it matters where a row has many units: task=reversal's tokens)")
    if cfg.task.name == "reversal":
        validate_reversal(cfg.task)
    if cfg.task.name == "vae":
        validate_vae(cfg, estimator, gate)


def validate_reversal(cfg) -> None:
    """The reversal task's rules (cfg is its task node): its ranges, and those beyond one key."""
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise UserError(msg)

    check_ranges(cfg, "task.")  # again here, for a task built without the full config

    need(cfg.variant in VARIANTS, f"unknown task.variant '{cfg.variant}': use one of {', '.join(VARIANTS)}")
    need(cfg.scoring in SCORINGS, f"unknown task.scoring '{cfg.scoring}': use one of {', '.join(SCORINGS)}")
    need(cfg.d_model % cfg.heads == 0, f"task.d_model ({cfg.d_model}) must be divisible by task.heads ({cfg.heads})")
    need(cfg.batch_size % cfg.samples_per_prompt == 0,
         f"task.batch_size ({cfg.batch_size}) must be a multiple of task.samples_per_prompt "
         f"({cfg.samples_per_prompt}): each step draws batch_size / samples_per_prompt prompts")


def resolve_into(cfg) -> str:
    """The stochastic estimator method=silent anneals into: method.into, else the latent's pathwise one."""
    into = cfg.method.get("into")
    if into is not None:
        return Into(into).value
    return "reparam" if Latent(cfg.task.latent) is Latent.gaussian else "gumbel"


def validate_vae(cfg, estimator: str, gate: str) -> None:
    """Which encoder estimator runs on which latent, and the keys each one reads (cfg: the full config)."""
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise UserError(msg)

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
