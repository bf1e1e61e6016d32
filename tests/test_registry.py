"""One place per task: config.TASKS gives the schema and the class; figures and plots ask the task."""

import pytest
import torch

from conftest import make_cfg
from kondo_bench.config import TASKS
from kondo_bench.errors import UserError
from kondo_bench.figures import Budget, Scale, default_budget
from kondo_bench.plots import quality_label
from kondo_bench.tasks import make_task, task_class


def test_every_registered_task_has_a_yaml_and_a_class():
    for name in TASKS:
        cls = task_class(name)
        assert make_cfg(f"task={name}").task.name == name and cls.quality in cls.quality_labels


def test_an_unregistered_task_is_a_user_error():
    cfg = make_cfg("task=bandit", "task.name=nope")
    with pytest.raises(UserError, match="unknown task 'nope'"):
        make_task(cfg, torch.device("cpu"))


def test_a_scale_without_a_task_budget_uses_the_task_config():
    s = Scale("tiny", {"mnist": Budget(40, 20, 2)})
    assert s.task("reversal") == ("task=reversal", "task.steps=1000", "task.eval_every=50", "seed=0")
    assert default_budget("bandit_multi") == Budget(1000, 10, 1)
    with pytest.raises(UserError, match="no task 'nope'"):
        s.task("nope")


def test_quality_labels_come_from_the_tasks():
    assert quality_label("expected_error") == "sequence error 1 − E[R]" and quality_label("greedy_error") == "greedy error"
    assert quality_label("seq_error") == "sequence error (sampled)"
