"""The real command line, in a subprocess, on tiny budgets."""

import json
import re
from pathlib import Path

import pytest

from conftest import kb, needs_mnist_full


def summaries(root: Path):
    return sorted(root.rglob("summary.json"))


@needs_mnist_full
def test_mnist_run_end_to_end(tmp_path):
    """With ../shared beside the clone and no flag, MNIST learns from the full 60k set."""
    res = kb("run", "task=mnist", "method=dgk", "keep_rate=0.03", "task.steps=60", "task.eval_every=20",
             f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    run = tmp_path / "run"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [20, 40, 60]
    assert rows[-1]["backward_samples"] == 60 * 3 and rows[-1]["forward_samples"] == 6000
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["data_source"] == "full"
    assert summary["train_images"] == 60000 and summary["eval_images"] == 10000
    assert (run / ".hydra" / "config.yaml").exists()
    assert "test split" not in res.stderr + res.stdout  # no fallback notice
    assert "complete: test_error=" in res.stdout


def test_multirun_price_sweep(tmp_path):
    res = kb("run", "-m", "task=bandit", "task.steps=20", "price=0,1", "seed=0,1",
             f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    found = [json.loads(p.read_text()) for p in summaries(tmp_path / "sweep")]
    assert sorted((s["price"], s["seed"]) for s in found) == [(0.0, 0), (0.0, 1), (1.0, 0), (1.0, 1)]
    assert all(s["status"] == "complete" for s in found)
    sweep = tmp_path / "sweep"
    assert f"sweep {sweep}: 0/4 done, 0 failed, 0 s elapsed, about ? left" in res.stderr  # SweepProgress
    assert re.search(rf"sweep {re.escape(str(sweep))}: 4/4 done, 0 failed, .* elapsed, all ended", res.stderr)
    # what `tensorboard --logdir SWEEP` loads: one run per job folder, each with the metrics rows
    event_multiplexer = pytest.importorskip("tensorboard.backend.event_processing.event_multiplexer")
    mux = event_multiplexer.EventMultiplexer().AddRunsFromDirectory(str(sweep))
    mux.Reload()
    assert sorted(mux.Runs()) == ["0", "1", "2", "3"]
    assert [e.step for e in mux.Scalars("3", "quality/error")] == [10, 20]


@pytest.mark.parametrize("args, message", [
    (["task=nope"], "unknown task 'nope'"),
    (["method=nope"], "unknown method 'nope'"),
    (["-m", "method=pg,nope"], "unknown method 'nope'"),
    (["price=-1"], "price=-1.0 is out of range: it must be a finite number >= 0"),
    (["keep_rate=0"], "keep_rate=0.0 is out of range: it must be a finite number in (0, 1]"),
    (["method.eta=-1"], "method.eta=-1.0 is out of range"),
    (["cost_ratio=-1"], "cost_ratio=-1.0 is out of range"),
    (["task.eval_every=0"], "task.eval_every=0 is out of range: it must be in [1, 1000000000]"),
    (["device=cuda"], "no CUDA GPU"),
    # README's several-GPUs recipe: each job's ${hydra:job.num} resolves as in the job
    (["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=1", "device.name=cuda:${hydra:job.num}"],
     "device=cuda:0 but PyTorch sees no CUDA GPU"),
    (["seed=${hydra:job.num}"], "cannot resolve the config"),  # a single run has no job number
    (["task=mnist", "task.data_root=/no/such/folder"], "does not exist"),
])
def test_bad_input_one_line_nonzero_no_results(tmp_path, args, message):
    import torch
    if any("cuda" in a for a in args) and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    res = kb("run", "task=bandit", *args, "task.steps=2", cwd=tmp_path, timeout=120)
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    assert len([line for line in res.stderr.splitlines() if "error" in line]) == 1
    # nothing left behind that summarize could take for a job: no .hydra/, no log, no metrics
    assert not summaries(tmp_path) and not list(tmp_path.rglob(".hydra")) and not list(tmp_path.rglob("*.log"))


def test_a_sweep_can_use_each_jobs_number(tmp_path):
    res = kb("run", "-m", "task=bandit", "task.steps=2", "task.eval_every=1", "method=pg,dg",
             "seed=${hydra:job.num}", "hydra.sweep.dir=sw", cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr
    assert [json.loads((tmp_path / "sw" / str(n) / "summary.json").read_text())["config"]["seed"]
            for n in (0, 1)] == [0, 1]


def test_typo_and_wrong_type_are_errors(tmp_path):
    for args, message in ((["task=bandit", "task.stepz=3"], "stepz"), (["price=abc"], "price")):
        res = kb("run", *args, cwd=tmp_path, timeout=120)
        assert res.returncode != 0 and message in res.stderr and "Traceback" not in res.stderr
    assert not summaries(tmp_path)


def test_usage_and_unknown_command(tmp_path):
    assert kb("--help", cwd=tmp_path).returncode == 0
    res = kb("frobnicate", cwd=tmp_path)
    assert res.returncode == 2 and "unknown command" in res.stderr


def test_help_lists_every_scale_and_version_matches_the_package(capsys):
    import re

    from kondo_bench import cli, figures

    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert f"figures [--scale {'|'.join(figures.SCALES)}]" in out and "--version" in out
    assert cli.main(["--version"]) == 0
    version = re.search(r'^version = "(.+)"', (Path(__file__).parents[1] / "pyproject.toml").read_text(), re.M)[1]
    assert capsys.readouterr().out.strip() == f"kondo-bench {version}"


def test_a_cuda_index_past_the_gpus_is_refused(monkeypatch):
    import torch

    from kondo_bench.errors import UserError
    from kondo_bench.train import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(UserError, match=r"device=cuda:2 but this machine has 2 CUDA GPUs \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")
