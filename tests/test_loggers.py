"""Live views of a run's metrics rows (TensorBoard event files, Weights & Biases)."""

import json
import sys
import types

import pytest

from conftest import make_cfg, sigterm_at_evaluation
from kondo_bench import loggers
from kondo_bench.errors import UserError
from kondo_bench.train import run_experiment

ARGS = ("task=bandit", "task.steps=20", "task.eval_every=5", "method=dgk", "keep_rate=0.1", "progress=false")


def rows(path):
    return [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]


def events(path):
    pytest.importorskip("tensorboard", reason="tensorboard not installed: pip install 'kondo-bench[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path))
    acc.Reload()
    return acc


def series(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_event_files_hold_every_row_against_step_and_samples(tmp_path):
    run_experiment(make_cfg(*ARGS), tmp_path)
    r, acc = rows(tmp_path), events(tmp_path)
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1
    tags = set(acc.Tags()["scalars"])
    for tag in ("quality/error", "quality/train_reward", "gate/keep_rate", "counts/forward_samples",
                "counts/backward_samples", "counts/reforward_samples", "cost/cost", "cost/cost_with_reforward",
                "time/act", "time/screen", "time/learn", "time/eval", "time/train",
                "by_forward_samples/error", "by_backward_samples/error"):
        assert tag in tags, tag
    assert series(acc, "quality/error") == [(x["step"], pytest.approx(x["error"])) for x in r]
    assert series(acc, "counts/backward_samples") == [(x["step"], x["backward_samples"]) for x in r]
    assert series(acc, "cost/cost") == [(x["step"], x["cost"]) for x in r]
    assert series(acc, "by_forward_samples/error") == [(x["forward_samples"], pytest.approx(x["error"])) for x in r]
    assert series(acc, "by_backward_samples/error") == [(x["backward_samples"], pytest.approx(x["error"])) for x in r]
    assert [s for s, _ in series(acc, "by_backward_samples/error")] == [50, 100, 150, 200]  # 10 of 100 kept, 5 steps a row
    config = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "keep_rate: 0.1" in config and "name: bandit" in config


def test_resumed_run_leaves_one_event_file_with_every_row_once(tmp_path):
    from kondo_bench.tasks.bandit import BanditTask

    args = (*ARGS, "checkpoint_every=10")
    with sigterm_at_evaluation(BanditTask, 3):  # stopped at step 15, checkpoint at step 10
        assert run_experiment(make_cfg(*args), tmp_path)["status"] == "interrupted"
    assert run_experiment(make_cfg(*args), tmp_path)["resumed_from_step"] == 10
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1
    assert [s for s, _ in series(events(tmp_path), "quality/error")] == [5, 10, 15, 20]


@pytest.mark.parametrize("off", ["logger.tensorboard=false", "logger=none"])
def test_off_switch_writes_no_event_files(tmp_path, off):
    run_experiment(make_cfg(*ARGS, off), tmp_path)
    assert rows(tmp_path) and not list(tmp_path.glob("events.out.tfevents.*"))


def test_missing_tensorboard_is_skipped_by_default_and_named_when_asked_for(tmp_path, monkeypatch):
    monkeypatch.setattr(loggers, "_tensorboard_available", lambda: False)
    run_experiment(make_cfg(*ARGS), tmp_path / "auto")
    assert not list((tmp_path / "auto").glob("events.out.tfevents.*"))
    with pytest.raises(UserError, match=r"pip install 'kondo-bench\[tensorboard\]'"):
        run_experiment(make_cfg(*ARGS, "logger.tensorboard=true"), tmp_path / "asked")
    assert not (tmp_path / "asked").exists()  # refused before the run folder is made


def test_missing_wandb_names_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    with pytest.raises(UserError, match=r"^logger=wandb needs the wandb package: pip install 'kondo-bench\[wandb\]'$"):
        run_experiment(make_cfg(*ARGS, "logger=wandb"), tmp_path)


def test_wandb_mode():
    never = lambda: pytest.fail("no network probe when the mode is decided without it")  # noqa: E731
    assert loggers.wandb_mode("online", {"WANDB_MODE": "offline"}, False, never) == "online"
    assert loggers.wandb_mode(None, {"WANDB_MODE": "offline"}, True, never) == "offline"
    assert loggers.wandb_mode(None, {}, False, never) == "offline"
    assert loggers.wandb_mode(None, {}, True, lambda: False) == "offline"
    assert loggers.wandb_mode(None, {}, True, lambda: True) == "online"


class FakeRun:
    def __init__(self, **kwargs):
        self.init, self.logged, self.metrics, self.exit_code = kwargs, [], {}, None

    def define_metric(self, name, step_metric):
        self.metrics[name] = step_metric

    def log(self, data, step):
        self.logged.append((step, data))

    def finish(self, exit_code):
        self.exit_code = exit_code


def test_wandb_view_logs_every_row_once_per_job(tmp_path, monkeypatch):
    runs = []
    fake = types.SimpleNamespace(init=lambda **kw: runs.append(FakeRun(**kw)) or runs[-1])
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_experiment(make_cfg(*ARGS, "logger=wandb", "logger.tensorboard=false"), tmp_path / "job")
    (run,) = runs
    assert run.init["mode"] == "offline" and run.init["project"] == "kondo-bench" and run.init["name"] == "job"
    assert run.init["config"]["keep_rate"] == 0.1 and run.init["dir"] == str(tmp_path / "job")
    assert run.metrics["by_forward_samples/*"] == "counts/forward_samples"
    assert [(s, d["quality/error"]) for s, d in run.logged] == [(x["step"], x["error"]) for x in rows(tmp_path / "job")]
    assert run.exit_code == 0


def test_wandb_offline_run_is_written(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb not installed: pip install 'kondo-bench[wandb]'")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_experiment(make_cfg(*ARGS, "logger=wandb", "logger.tensorboard=false"), tmp_path)
    (data,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")  # what `wandb sync` uploads
    raw = data.read_bytes()
    assert b"quality/error" in raw and b"by_forward_samples/error" in raw and b"kondo-bench" in raw
