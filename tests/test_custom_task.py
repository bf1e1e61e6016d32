"""A task of one's own, from a package outside kondo_bench (examples/custom_task), copied to a
folder outside the repository: a run by --config-dir, a two-job sweep by hydra.searchpath,
summarize and plot; and its schema's refusals."""

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "mine"
    shutil.copytree(REPO / "examples" / "custom_task", root)
    return root


def kb(root, *args):
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "kondo_bench.cli", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_own_task_runs_sweeps_summarizes_and_plots_from_outside_the_repository(project):
    assert REPO not in project.parents
    run = kb(project, "run", "--config-dir", "conf", "task=guess", "method=dgk", "keep_rate=0.25",
             "task.steps=40", "hydra.run.dir=out/run")
    assert run.returncode == 0, run.stderr
    summary = json.loads((project / "out/run/summary.json").read_text())
    assert summary["status"] == "complete" and summary["task"] == "guess" and summary["gate"] == "topk"
    assert summary["backward_samples"] == summary["forward_samples"] // 4

    sweep = kb(project, "run", "-m", f"hydra.searchpath=[file://{project / 'conf'}]", "task=guess", "method=pg",
               "seed=0,1", "task.steps=40", "hydra.sweep.dir=out/sweep")
    assert sweep.returncode == 0, sweep.stderr
    assert kb(project, "summarize", "out/sweep").returncode == 0
    with open(project / "out/sweep/sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["seed"] for r in rows) == ["0", "1"] and {r["task"] for r in rows} == {"guess"}
    # the learner learns: PG's miss rate falls below the uniform policy's 0.9
    assert all(float(r["final_quality"]) < 0.9 for r in rows)
    plot = kb(project, "plot", "out/sweep")
    assert plot.returncode == 0, plot.stderr
    assert (project / "out/sweep/plots/curves.png").is_file()


@pytest.mark.parametrize("bad, says", [("task.arms=1", "task.arms=1 is out of range"),
                                       ("task.batch_size=1", "a batch needs 2 guesses"),
                                       ("task.armz=3", "armz")])
def test_own_task_schema_and_hook_refuse_in_one_line_before_any_folder(project, bad, says):
    res = kb(project, "run", "--config-dir", "conf", "task=guess", bad, "hydra.run.dir=out/bad")
    assert res.returncode == 2 and says in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (project / "out").exists()


def test_unknown_task_lists_the_choices_on_the_search_path(project):
    res = kb(project, "run", "--config-dir", "conf", "task=gues")
    assert res.returncode == 2 and "guess" in res.stderr and "bandit" in res.stderr
