"""One place per task: tasks.TASKS names the class and its schema; figures and plots ask the task."""

import pytest
import torch

from conftest import make_cfg
from kondo_bench.errors import UserError
from kondo_bench.figures import Budget, Scale, default_budget
from kondo_bench.plots import quality_label
from kondo_bench.tasks import TASKS, make_task, task_class


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


def test_tasks_do_not_import_the_common_config():
    """The tasks and their schemas stand alone: config imports tasks (to register their schemas), never
    the other way round."""
    import subprocess
    import sys

    code = ("import sys, kondo_bench.tasks, kondo_bench.tasks.reversal, kondo_bench.tasks.reversal_config; "
            "print('kondo_bench.config' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
