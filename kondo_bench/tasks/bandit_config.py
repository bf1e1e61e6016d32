"""task=bandit's keys: their ranges and meanings (the task is tasks/bandit.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ..schema import TaskConfig, num


@dataclass
class BanditConfig(TaskConfig):
    name: str = "bandit"
    contexts: int = num(1, "[1, 1000000]", "N, the number of contexts: 1 is the single-context bandit")
    arms: int = num(100, "[2, 1000000]", "K, the number of arms (one is correct)")
    step_size: float = num(0.1, "> 0", "alpha of the normalised logit step z <- z + alpha g/|g|")
    baseline: float = num(0.5, "finite", "b in U = R - b")
    logit_std: float = num(0.0, ">= 0", "initial logits ~ N(0, std); 0 gives uniform logits")
    reward_noise: float = num(0.0, ">= 0", "sigma of Gaussian noise added to the reward of noisy arms")
    # 1: every arm is noisy (homoskedastic); < 1: that fraction of the wrong arms only (the "gambling" regime)
    noisy_arms: float = num(1.0, "[0, 1]", "the fraction of wrong arms whose reward is noisy")
    steps: int = num(1000, "[1, 1000000000]", "optimiser steps (screened batches)")
    eval_every: int = num(10, "[1, 1000000000]", "steps between evaluations (and metrics rows)")


def register() -> None:
    """Register the schema so that conf/task/bandit.yaml can extend it (/schema/task/bandit)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="schema/task", name="bandit", node=BanditConfig)
