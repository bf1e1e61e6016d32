"""The schema of task=lm (a Hugging Face causal LM on verifiable-reward text problems), and its checks.

Nested `task.model` says which network: a family built from a config (random init, sized
for a CPU by default) or a local pretrained directory. Nothing here imports transformers:
the schema must load, and `kondo-bench --help` work, where the `lm` extra is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ...schema import TaskConfig, check_ranges, need, num
from .problems import MAX_ADDITION_DIGITS, answer_length

FAMILIES = ("qwen2", "llama", "gpt2")  # built from a config with AutoModelForCausalLM.from_config
PROBLEMS = ("reversal", "addition", "sorting")
PRECISIONS = ("fp32", "bf16")


@dataclass
class LmModelConfig:
    family: str = "qwen2"  # qwen2 | llama | gpt2: built from a config, random init (ignored with path)
    path: Optional[str] = None  # a local folder holding a pretrained model (config.json + weights); never downloaded
    tokenizer: Optional[str] = None  # a local tokenizer folder; null: path's own, else the built-in character tokenizer
    hidden_size: int = num(64, "[1, 65536]", "model width (built from a config)")
    layers: int = num(2, "[1, 1000]", "transformer blocks (built from a config)")
    heads: int = num(4, "[1, 4096]", "attention heads; must divide hidden_size (built from a config)")
    intermediate_size: int = num(128, "[1, 1000000]", "feed-forward width (built from a config)")
    max_positions: int = num(512, "[2, 1000000]", "positions the model can read: prompt + completion (built from a config)")


@dataclass
class LmConfig(TaskConfig):
    name: str = "lm"
    problem: str = "reversal"  # reversal | addition | sorting: the prompts and the built-in reward
    length: int = num(10, "[1, 100000]", "H: prompt digits (reversal, sorting), or digits of each addend (addition)")
    vocab: int = num(2, "[2, 10]", "M: prompt digits drawn from 0 .. M-1 (reversal, sorting)")
    # a user's reward function {_target_: pkg.module.fn, ...keyword arguments}, called as TRL calls
    # one: fn(prompts, completions, answer=...) -> list of floats; null: the problem's own
    reward: Any = None
    max_completion: Optional[int] = num(None, "[1, 100000]", "completion tokens at most; null: the problem's answer "
                                        "length (+1 for the end-of-sequence token where answers vary)")
    batch_size: int = num(100, "[1, 1000000]", "completions per step: batch_size / samples_per_prompt prompts")
    samples_per_prompt: int = num(10, "[2, 100000]", "G, completions per prompt; the baseline is their mean reward")
    scale_rewards: bool = False  # GRPO: divide the advantage by the group's reward std (+1e-4)
    precision: str = "fp32"  # fp32 | bf16: every forward (sampling and learning) under bf16 autocast
    lr: float = num(1e-3, "> 0", "Adam learning rate")
    steps: int = num(300, "[1, 1000000000]", "optimiser steps (screened batches)")
    eval_every: int = num(25, "[1, 1000000000]", "steps between evaluations (and metrics rows)")
    eval_prompts: int = num(100, "[1, 10000000]", "fresh prompts per evaluation, one sampled and one greedy answer each")
    model: LmModelConfig = field(default_factory=LmModelConfig)


def validate_lm(cfg) -> None:
    """task=lm's rules (cfg is its task node): ranges, then the rules that tie keys together."""
    check_ranges(cfg, "task.")  # again here, for a task built without the full config
    need(cfg.problem in PROBLEMS, f"unknown task.problem '{cfg.problem}': use one of {', '.join(PROBLEMS)}")
    need(cfg.precision in PRECISIONS, f"task.precision must be fp32 or bf16 (got '{cfg.precision}')")
    need(cfg.batch_size % cfg.samples_per_prompt == 0,
         f"task.batch_size ({cfg.batch_size}) must be a multiple of task.samples_per_prompt "
         f"({cfg.samples_per_prompt}): each step draws batch_size / samples_per_prompt prompts")
    need(cfg.problem != "addition" or cfg.length <= MAX_ADDITION_DIGITS,
         f"task.length={cfg.length}: addition's addends have at most {MAX_ADDITION_DIGITS} digits (int64 sums)")
    m = cfg.model
    prompt = 2 * cfg.length + 2 if cfg.problem == "addition" else cfg.length + 1
    completion = cfg.max_completion or answer_length(cfg.problem, cfg.length)
    need(m.path is not None or prompt + completion <= m.max_positions,
         f"task.model.max_positions={m.max_positions} is shorter than a prompt ({prompt} tokens) and its completion "
         f"({completion}); raise task.model.max_positions or shorten task.length / task.max_completion")
    need(m.family in FAMILIES, f"unknown task.model.family '{m.family}': use one of {', '.join(FAMILIES)}")
    need(m.path is not None or m.hidden_size % m.heads == 0,
         f"task.model.hidden_size ({m.hidden_size}) must be divisible by task.model.heads ({m.heads})")
    reward = cfg.reward
    need(reward is None or (hasattr(reward, "get") and isinstance(reward.get("_target_"), str)),
         "task.reward must be null or a mapping with _target_ naming a function, e.g. "
         "task.reward={_target_:mypkg.rewards.exact}")


def register() -> None:
    """Register the schema so that conf/task/lm*.yaml can extend it (/schema/task/lm)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="schema/task", name="lm", node=LmConfig)
