"""Guess the paying arm: K arms, one pays 1, a softmax policy over K free logits.

Everything kondo-bench needs is here, outside its package: the schema (keys, ranges,
meanings), a validation hook, and the Task contract (act, logp, evaluate). Its YAML,
conf/task/guess.yaml, names this class with `_target_`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kondo_bench.schema import TaskConfig, need, num
from kondo_bench.tasks import Batch, Task, sample_categorical


@dataclass
class GuessConfig(TaskConfig):
    name: str = "guess"
    arms: int = num(10, ">= 2", "K, the number of arms; the last one pays 1")
    lr: float = num(0.5, "> 0", "SGD learning rate on the logits")
    steps: int = num(200, ">= 1", "optimiser steps (screened batches)")
    batch_size: int = num(64, ">= 1", "guesses per step")
    eval_every: int = num(20, ">= 1", "steps between evaluations (and metrics rows)")


class GuessTask(Task):
    schema = GuessConfig
    quality = "miss_rate"  # lower is better: 1 - pi(paying arm)
    quality_labels = {"miss_rate": "miss rate 1 − π(y*)"}

    @classmethod
    def validate(cls, cfg) -> None:
        need(cfg.task.batch_size >= 2, f"task.batch_size={cfg.task.batch_size}: the baseline is the batch's mean "
             "reward, so a batch needs 2 guesses or more")

    def __init__(self, cfg, device: torch.device):
        self.cfg, self.target = cfg, cfg.arms - 1
        self.batch_size = cfg.batch_size  # read once: a config key read costs ~100 µs inside a step
        self.logits = torch.zeros(cfg.arms, device=device, requires_grad=True)
        self.optimizer = torch.optim.SGD([self.logits], lr=cfg.lr)

    def act(self) -> Batch:
        with torch.no_grad():
            probs = self.logits.softmax(0).expand(self.batch_size, -1)
            action = sample_categorical(probs)
            logp = probs.log().gather(1, action[:, None])[:, 0]
            reward = (action == self.target).float()
        return Batch(logp, reward - reward.mean(), reward, data={"action": action})

    def logp(self, batch: Batch, rows: torch.Tensor) -> torch.Tensor:
        return self.logits.log_softmax(0)[batch.data["action"][rows]]

    def evaluate(self) -> dict:
        return {"miss_rate": 1 - self.logits.softmax(0)[self.target].item()}
