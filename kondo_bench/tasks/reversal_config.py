"""task=reversal's keys (ranges and meanings) and its rules beyond one key (the task is tasks/reversal.py)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Optional

from ..schema import TaskConfig, check_ranges, need, num


VARIANTS = ("reverse", "copy", "flip")  # reversal targets
SCORINGS = ("fraction", "sequential")
NETWORK_KEYS = ("d_model", "layers", "heads", "ffn", "init", "final_ln")  # what task.model replaces


class Init(str, Enum):
    """The transformer's initial weights."""

    torch = "torch"  # PyTorch's defaults: embeddings N(0, 1), linear weights U(+-1 / sqrt(fan_in))
    flax = "flax"  # the official code's (Flax defaults): embeddings N(0, 1 / d_model), linear lecun_normal


@dataclass
class ReversalConfig(TaskConfig):
    name: str = "reversal"
    horizon: int = num(10, "[1, 1024]", "H, the prompt and answer length")
    vocab: int = num(2, "[2, 1000000]", "M, tokens drawn uniformly from 0 .. M-1")
    variant: str = "reverse"  # target: reverse | copy | flip ((x + 1) mod M)
    scoring: str = "fraction"  # fraction correct | sequential (correct up to the first error)
    kappa: float = num(1.0, "[0, 1]", "R = kappa * score + (1 - kappa) * 1{all correct}")
    batch_size: int = num(100, "[1, 1000000]", "episodes per step: batch_size / samples_per_prompt prompts")
    samples_per_prompt: int = num(10, "[1, 100000]", "answers per prompt; the baseline is their mean reward")
    d_model: int = num(64, "[1, 65536]", "transformer width")
    layers: int = num(3, "[1, 1000]", "transformer blocks")
    heads: int = num(4, "[1, 4096]", "attention heads (must divide d_model)")
    ffn: int = num(128, "[1, 1000000]", "feed-forward width")
    init: Init = Init.torch  # flax: the official code's initialisation (with final_ln=false, its network)
    final_ln: bool = True  # a LayerNorm before the output layer; the official code has none
    lr: float = num(3e-4, "> 0", "Adam learning rate")
    steps: int = num(1000, "[1, 1000000000]", "optimiser steps (screened batches)")
    eval_every: int = num(50, "[1, 1000000000]", "steps between evaluations (and metrics rows)")
    eval_prompts: int = num(200, "[1, 10000000]", "fresh prompts per evaluation")
    # the policy network by _target_ (e.g. kondo_bench.tasks.reversal.Transformer), called with vocab and
    # max_len (2H); null: the transformer of task.d_model, layers, heads, ffn, init, final_ln
    model: Optional[Any] = None


def validate_reversal(cfg) -> None:
    """The reversal task's rules (cfg is its task node): its ranges, and those beyond one key."""
    check_ranges(cfg, "task.")  # again here, for a task built without the full config

    need(cfg.variant in VARIANTS, f"unknown task.variant '{cfg.variant}': use one of {', '.join(VARIANTS)}")
    need(cfg.scoring in SCORINGS, f"unknown task.scoring '{cfg.scoring}': use one of {', '.join(SCORINGS)}")
    own = {k: cfg[k] for k in NETWORK_KEYS if cfg[k] != getattr(ReversalConfig, k)}
    need(cfg.model is None or not own, f"task.{next(iter(own), '')}={next(iter(own.values()), '')} is ignored with "
         "task.model set: give the network's sizes in task.model, or drop one")
    need(cfg.d_model % cfg.heads == 0, f"task.d_model ({cfg.d_model}) must be divisible by task.heads ({cfg.heads})")
    need(cfg.batch_size % cfg.samples_per_prompt == 0,
         f"task.batch_size ({cfg.batch_size}) must be a multiple of task.samples_per_prompt "
         f"({cfg.samples_per_prompt}): each step draws batch_size / samples_per_prompt prompts")


def register() -> None:
    """Register the schema so that conf/task/reversal.yaml can extend it (/schema/task/reversal)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="schema/task", name="reversal", node=ReversalConfig)
