"""Interruption, resume, checkpoints, numerics, unwritable folders."""

import contextlib
import io
import json
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import kb, make_cfg, needs_mnist, sigterm_at_evaluation
from kondo_bench.errors import UserError
from kondo_bench.sweeps import summarize_main
from kondo_bench.train import run_experiment


def rows(path):
    return [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]


def summary(path):
    return json.loads((path / "summary.json").read_text())


def test_sigterm_stops_at_a_step_boundary_and_keeps_metrics(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "kondo_bench.cli", "run", "task=bandit", "task.steps=10000000",
           "task.eval_every=20", f"hydra.run.dir={run}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not ((run / "metrics.jsonl").exists() and len(rows(run)) >= 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    s = summary(run)
    assert s["status"] == "interrupted" and "SIGTERM" in out + err
    r = rows(run)
    assert len(r) >= 2 and r[-1]["step"] == s["steps"] < 10_000_000


def test_failed_run_numerics(tmp_path):
    res = kb("run", "task=bandit", "task.step_size=1e38", "task.steps=50", f"hydra.run.dir={tmp_path}/run",
             cwd=tmp_path)
    # the first non-finite quantity is named with its step (the weights overflow; delight sees it first)
    assert res.returncode == 1 and re.search(r"non-finite (delight|loss|weights) \(first seen at step \d+\)",
                                             res.stderr) and "Traceback" not in res.stderr
    s = summary(tmp_path / "run")
    assert s["status"] == "failed" and "step" in s["error"]


def test_sweep_goes_on_after_a_failed_job_and_resume_skips_finished_ones(tmp_path):
    sweep = tmp_path / "sweep"
    args = ("run", "-m", "task=bandit", "task.steps=30", "task.step_size=1e38,0.1", f"hydra.sweep.dir={sweep}")
    res = kb(*args, cwd=tmp_path)
    # the sweep goes on, then says at its end how many jobs failed, which, and the first error
    assert res.returncode == 1, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert re.match(r"kondo-bench: error: 1 of 2 jobs failed: 0 \(.*task.step_size=1e\+38\); the first error: "
                    r"non-finite", last), last
    assert summary(sweep / "0")["status"] == "failed" and summary(sweep / "1")["status"] == "complete"
    assert "0: status failed after" in (table := _summarize(sweep)) and "non-finite" in table  # with its error
    (sweep / "1" / "summary.json").rename(sweep / "1" / "old.json")  # as if job 1 had been killed
    mtime_failed = (sweep / "0" / "summary.json").stat().st_mtime
    res = kb(*args, cwd=tmp_path)
    assert res.returncode == 1
    assert summary(sweep / "1")["status"] == "complete"  # rerun
    assert (sweep / "0" / "summary.json").stat().st_mtime != mtime_failed  # failed jobs are rerun too
    res = kb(*args, cwd=tmp_path)
    assert res.stdout.count("skipped:") == 1  # the complete job is skipped; the failed one reruns


def _summarize(sweep) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert summarize_main([str(sweep), "--out", str(sweep / "table")]) == 0
    return out.getvalue()


def test_complete_folder_of_another_config_is_refused(tmp_path):
    run_experiment(make_cfg("task=bandit", "task.steps=10", "progress=false"), tmp_path)
    again = run_experiment(make_cfg("task=bandit", "task.steps=10", "progress=true"), tmp_path)
    assert again.get("skipped")  # progress does not change results
    with pytest.raises(UserError, match="different config"):
        run_experiment(make_cfg("task=bandit", "task.steps=20", "progress=false"), tmp_path)
    assert run_experiment(make_cfg("task=bandit", "task.steps=20", "progress=false", "resume=false"),
                          tmp_path)["steps"] == 20




@pytest.mark.parametrize("task", ["bandit_multi", pytest.param("mnist", marks=needs_mnist)])
def test_checkpoint_resume_reproduces_the_uninterrupted_run(tmp_path, task):
    from kondo_bench.tasks.bandit import BanditTask
    from kondo_bench.tasks.mnist import MnistTask
    cls = {"bandit_multi": BanditTask, "mnist": MnistTask}[task]
    args = (f"task={task}", "task.steps=60", "task.eval_every=10", "checkpoint_every=20", "progress=false",
            "method=dgk", "keep_rate=0.2", "seed=5")
    full = run_experiment(make_cfg(*args), tmp_path / "full")
    with sigterm_at_evaluation(cls, 5):  # a SIGTERM arrives while step 50 is evaluated
        cut = run_experiment(make_cfg(*args), tmp_path / "cut")
    assert cut["status"] == "interrupted" and cut["steps"] in (50, 51)
    resumed = run_experiment(make_cfg(*args), tmp_path / "cut")
    assert resumed["status"] == "complete" and resumed["resumed_from_step"] == 40
    strip = lambda rs: [{k: v for k, v in r.items() if not k.startswith("time_")} for r in rs]  # noqa: E731
    assert strip(rows(tmp_path / "cut")) == strip(rows(tmp_path / "full"))
    assert resumed["backward_samples"] == full["backward_samples"]


def test_unwritable_result_folder_is_refused_at_start(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot write results"):
        run_experiment(make_cfg("task=bandit", "task.steps=5"), blocker / "run")
    res = kb("run", "task=bandit", "task.steps=5", f"hydra.run.dir={blocker}/run", cwd=tmp_path)
    assert res.returncode == 2 and "is not a folder" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("sweep", ["mnist-ungated", "mnist-dgk-keep3", "mnist-dgk-prices"])
def test_committed_results_still_count_as_the_same_computation(sweep):
    """A key added to the schema must not turn committed finished runs into unfinished ones: a
    stored config lacking it is read with the value that reproduces it (reliability.ADDED_KEYS)."""
    from conftest import REPO
    from kondo_bench.figures.store import read_store
    from kondo_bench.reliability import result_config, upgraded

    record = min(read_store(REPO / "results/figures/paper/finished" / f"{sweep}.jsonl").items())[1]  # a committed job
    stored, overrides = record["summary"]["result_config"], record["overrides"]
    today = result_config(make_cfg(*overrides))
    today["task"]["data_root"] = stored["task"]["data_root"]  # where the data was is not the computation
    assert upgraded(stored) == today
