"""A bad value in one job of a sweep costs that job only: the real command line on the bandit.

The job's folder holds a failed summary naming the value; the other jobs run; `summarize`
lists every job; the sweep exits 1. A fault of the whole sweep (a misspelt key, every job
bad) is still one line, exit 2, with nothing written.
"""

import importlib.util
import json
import re

import pytest

from conftest import kb
from kondo_bench.preflight import check_run

TINY = ("task=bandit", "task.eval_every=5")


def status(job):
    return json.loads((job / "summary.json").read_text())


def test_the_check_lists_the_jobs_that_cannot_run(tmp_path):
    plan = check_run(["-m", *TINY, "task.steps=5,abc", "price=0,-1", f"hydra.sweep.dir={tmp_path}/sw"], lock=False)
    assert plan.jobs == 4 and sorted(plan.failed) == [1, 2, 3]  # jobs: (5,0) (5,-1) (abc,0) (abc,-1)
    assert plan.failed[1].startswith("price=-1.0 is out of range")
    assert plan.failed[2].startswith("cannot set task.steps=abc: Value 'abc' of type 'str' could not be converted")
    assert not (tmp_path / "sw").exists()


def test_a_bad_value_in_one_job_is_recorded_in_its_folder_and_the_rest_run(tmp_path):
    sweep = tmp_path / "sw"
    args = ("run", "-m", *TINY, "task.steps=5,abc", "price=0,-1", f"hydra.sweep.dir={sweep}")
    res = kb(*args, cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert "kondo-bench: warning: 3 of 4 jobs cannot run (the first: job 1: price=-1.0 is out of range" in res.stderr
    jobs = [status(sweep / str(n)) for n in range(4)]
    assert [j["status"] for j in jobs] == ["complete", "failed", "failed", "failed"]
    assert jobs[1]["error"].startswith("price=-1.0 is out of range")  # refused by the job itself
    assert jobs[2]["error"] == "cannot set task.steps=abc: Value 'abc' of type 'str' could not be converted to Integer"
    assert jobs[2]["config"]["task"]["steps"] == "abc" and jobs[2]["config"]["price"] == 0.0  # as asked
    assert "- task.steps=abc" in (sweep / "2" / ".hydra" / "overrides.yaml").read_text()
    assert re.search(r"sweep .*: 1/4 done, 3 failed, .* all ended", res.stderr)  # the progress line
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("kondo-bench: error: 3 of 4 jobs failed: 1 (task=bandit task.eval_every=5 task.steps=5 "
                           "price=-1), 2 (task=bandit task.eval_every=5 task.steps=abc price=0)"), last

    table = kb("summarize", str(sweep), cwd=tmp_path)  # every job the sweep meant to run, one complete
    assert table.returncode == 0, table.stderr
    assert "1 complete, 3 incomplete" in table.stdout and "never started" not in table.stdout
    assert re.search(r"^  2: status failed after 0 of abc steps: cannot set task.steps=abc", table.stdout, re.M)

    # the same command again: the complete job is skipped, the bad ones are recorded failed again
    before = (sweep / "2" / "summary.json").stat().st_mtime_ns
    res = kb(*args, cwd=tmp_path)
    assert res.returncode == 1 and res.stdout.count("skipped:") == 1, res.stderr
    assert (sweep / "2" / "summary.json").stat().st_mtime_ns != before and status(sweep / "2")["status"] == "failed"
    assert re.search(r"1/4 done \(1 skipped\), 3 failed, .* all ended", res.stderr)

    # a sweep whose bad job would record its failure over a complete run: refused, nothing written
    res = kb("run", "-m", *TINY, "task.steps=abc,5", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert f"{sweep}/0 already holds a complete run, and the job of this sweep that would write there cannot run" \
        in res.stderr and status(sweep / "0")["status"] == "complete"


def has_joblib() -> bool:
    try:
        return importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.skipif(not has_joblib(), reason="pip install kondo-bench[joblib]")
def test_a_bad_value_in_one_job_of_a_joblib_sweep(tmp_path):
    """joblib composes each job in its worker: the job is recorded there the same way."""
    sweep = tmp_path / "sw"
    res = kb("run", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY, "task.steps=abc,5",
             f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    bad, good = status(sweep / "0"), status(sweep / "1")
    assert bad["status"] == "failed" and bad["error"].startswith("cannot set task.steps=abc")
    assert good["status"] == "complete"


@pytest.mark.parametrize("values, message", [
    (["task.stepz=5,6"], "cannot set task.stepz=5: Key 'stepz' not in 'BanditConfig'"),  # a misspelt key
    (["task=bandit,reversal", "task.arms=5"], "Key 'arms' not in 'ReversalConfig'"),  # a key one task lacks
    (["task.steps=x,abc"], "cannot set task.steps=x"),  # every job bad: nothing to run
])
def test_a_fault_of_the_whole_sweep_is_one_line_and_writes_nothing(tmp_path, values, message):
    res = kb("run", "-m", *TINY, *values, "hydra.sweep.dir=sw", cwd=tmp_path, timeout=120)
    assert res.returncode == 2 and res.stderr == f"kondo-bench: error: {res.stderr.split('error: ', 1)[1]}"
    assert message in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert not list(tmp_path.iterdir())
