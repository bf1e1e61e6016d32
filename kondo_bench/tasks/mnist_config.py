"""task=mnist's keys: their ranges and meanings (the task is tasks/mnist.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

from ..schema import TaskConfig, need, num


@dataclass
class MnistConfig(TaskConfig):
    name: str = "mnist"
    hidden: List[int] = num(None, "[1, 100000]", "hidden layer sizes of the MLP", factory=lambda: [100, 100])
    lr: float = num(1e-3, "> 0", "Adam learning rate")
    steps: int = num(10_000, "[1, 1000000000]", "optimiser steps (screened batches)")
    eval_every: int = num(500, "[1, 1000000000]", "steps between evaluations (and metrics rows)")
    data_root: Optional[str] = None  # folder of IDX files; None searches (docs/data.md)
    eval_size: int = num(2000, "[1, 60000]", "images held out of the test split when the training files are absent")
    verify_data: bool = True  # check file checksums before use
    # the policy network by _target_ (kondo_bench/models.py), called with in_features=784, out_features=10;
    # null: the MLP of task.hidden
    model: Optional[Any] = None



def validate_mnist(cfg) -> None:
    """task.hidden sizes the task's own MLP: with task.model set it would be ignored."""
    t = cfg.task
    need(t.model is None or list(t.hidden) == [100, 100],
         f"task.hidden={list(t.hidden)} is ignored with task.model set: give the sizes in task.model, or drop one")

def register() -> None:
    """Register the schema so that conf/task/mnist.yaml can extend it (/schema/task/mnist)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="schema/task", name="mnist", node=MnistConfig)
