"""task=mnist's keys: their ranges and meanings (the task is tasks/mnist.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from ..schema import TaskConfig, num


@dataclass
class MnistConfig(TaskConfig):
    name: str = "mnist"
    hidden: List[int] = num(None, ">= 1", "hidden layer sizes of the MLP", factory=lambda: [100, 100])
    lr: float = num(1e-3, "> 0", "Adam learning rate")
    steps: int = num(10_000, ">= 1", "optimiser steps (screened batches)")
    eval_every: int = num(500, ">= 1", "steps between evaluations (and metrics rows)")
    data_root: Optional[str] = None  # folder of IDX files; None searches (docs/data.md)
    eval_size: int = num(2000, ">= 1", "images held out of the test split when the training files are absent")
    verify_data: bool = True  # check file checksums before use


def register() -> None:
    """Register the schema so that conf/task/mnist.yaml can extend it (/schema/task/mnist)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="schema/task", name="mnist", node=MnistConfig)
