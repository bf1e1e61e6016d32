"""Baselines b in U = R - b, shared by every task (and, later, by gated baselines).

Each takes what the task has at acting time and returns a tensor shaped like the reward;
none carries a gradient.
"""

from __future__ import annotations

import torch


def constant(reward: torch.Tensor, b: float) -> torch.Tensor:
    """A fixed b (the bandits' 0.5)."""
    return torch.full_like(reward, b)


def expected_reward(probs: torch.Tensor) -> torch.Tensor:
    """sum_a pi(a)^2: the policy's expected reward when exactly one action of K pays 1 (MNIST)."""
    return (probs * probs).sum(-1)


def group_mean(reward: torch.Tensor, group: int) -> torch.Tensor:
    """The mean reward of the same prompt's samples; rows are prompt-major: [P * group] -> same."""
    return reward.reshape(-1, group).mean(-1, keepdim=True).expand(-1, group).reshape(-1)


def grouped_advantage(reward: torch.Tensor, group: int) -> torch.Tensor:
    """U = R - mean R of the same prompt's samples (the reversal task's, as in GRPO)."""
    return reward - group_mean(reward, group)


def leave_one_out(reward: torch.Tensor, group: int) -> torch.Tensor:
    """U = R - mean R of the *other* samples of the same context (rows context-major; the VAE's
    codes of one image). The baseline never sees the sample it judges, so U stays unbiased:
    U = group / (group - 1) * (R - group mean). Needs group >= 2."""
    return group / (group - 1) * grouped_advantage(reward, group)
