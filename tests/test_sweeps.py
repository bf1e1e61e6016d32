"""Sweeps end to end: multirun -> tidy table -> plots -> paper figures, and Hydra's launchers."""

import importlib.util
import itertools
import json
import random
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, SHARED_MNIST, alive, descendants, kb, needs_mnist, needs_mnist_full, wait_for
from kondo_bench import figures
from kondo_bench.cli import main
from kondo_bench.figures.store import read_store, store_path
from kondo_bench.sweeps import load_sweep, pareto_front


def has_plugin(name: str) -> bool:
    try:
        return importlib.util.find_spec(f"hydra_plugins.{name}") is not None
    except ModuleNotFoundError:
        return False


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Two prices x two seeds on the bandit: a real multirun through the command line."""
    root = tmp_path_factory.mktemp("sweep")
    res = kb("run", "-m", "task=bandit", "task.steps=20", "task.eval_every=5", "method=dgk", "price=0,1",
             "seed=0,1", f"hydra.sweep.dir={root}/sweep", cwd=root)
    assert res.returncode == 0, res.stderr
    return root / "sweep"


def test_summarize_table_and_incomplete_jobs(sweep, tmp_path, capsys):
    folder = tmp_path / "sweep"
    shutil.copytree(sweep, folder)
    assert main(["summarize", str(folder), "--out", str(tmp_path / "table")]) == 0
    runs = pd.read_csv(tmp_path / "table.csv")
    assert len(runs) == 4
    assert sorted(zip(runs["price"], runs["seed"])) == [(0.0, 0), (0.0, 1), (1.0, 0), (1.0, 1)]
    assert set(runs["method"]) == {"dgk"} and set(runs["gate"]) == {"price"}
    assert (runs["task.steps"] == 20).all()  # swept/overridden keys become typed columns
    assert (runs["forward_samples"] == 2000).all() and (runs["backward_samples"] < 2000).all()
    parquet = pd.read_parquet(tmp_path / "table.parquet")
    assert list(parquet.columns) == list(runs.columns) and len(parquet) == 4
    assert "final_quality" in capsys.readouterr().out

    # one job killed before its summary, one interrupted: listed apart, never in the results
    jobs = sorted(p.parent for p in folder.rglob("summary.json"))
    (jobs[0] / "summary.json").unlink()
    summary = json.loads((jobs[1] / "summary.json").read_text())
    (jobs[1] / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    assert main(["summarize", str(folder)]) == 0
    out = capsys.readouterr().out
    tables = load_sweep(folder)
    assert len(tables.runs) == 2 and len(tables.incomplete) == 2
    reasons = dict(zip(tables.incomplete["run"], tables.incomplete["reason"]))
    assert "no summary.json" in reasons[jobs[0].name] and "interrupted" in reasons[jobs[1].name]
    assert set(tables.incomplete["price"]).issubset({0.0, 1.0})  # its config, from .hydra/config.yaml
    assert "2 incomplete job(s)" in out
    assert (folder / "sweep.csv").exists() and (folder / "sweep_incomplete.csv").exists()


def test_pareto_front_exact_set():
    df = pd.DataFrame({
        "name": ["a", "b", "c", "d", "e", "f", "g", "h", "nan"],
        "cost": [1.0, 2.0, 3.0, 4.0, 2.0, 5.0, 0.5, 1.0, None],
        "error": [5.0, 3.0, 3.0, 1.0, 4.0, 1.0, 6.0, 5.0, 0.1],
    })
    front = pareto_front(df, "cost", "error")
    # c ties b on error at a higher cost, e is beaten by b, f ties d at a higher cost;
    # h duplicates a (both kept); the row without a cost is left out
    assert sorted(front["name"]) == ["a", "b", "d", "g", "h"]
    assert list(front["cost"]) == sorted(front["cost"])


def test_missing_jobs_are_launched_as_few_grids_covering_exactly_them():
    from kondo_bench.figures.jobs import expand, grids

    def jobs_of(batches):
        return [tuple(j) for b in batches for j in expand(b)[0]]

    full = expand(["task=reversal", "seed=0,1,2,3,4", "method=pg,dg,ppo", "keep_rate=0.1,0.3"])[0]
    # what a capped run leaves: seeds 3 and 4 of everything, a product, is one multirun
    # (one per seed kept a parallel launcher's workers idle while the last job of each ran)
    missing = [j for j in full if j[1] in ("seed=3", "seed=4")]
    assert grids(missing) == [["task=reversal", "seed=3,4", "method=pg,dg,ppo", "keep_rate=0.1,0.3"]]
    # any subset: the grids expand to exactly the missing jobs, each once, and no two of
    # them differ in one key only (they would have been one)
    rng = random.Random(0)
    for _ in range(200):
        subset = rng.sample(full, rng.randint(2, len(full)))
        batches = grids(subset)
        assert sorted(jobs_of(batches)) == sorted(map(tuple, subset))
        for a, b in itertools.combinations(batches, 2):
            assert sum(x != y for x, y in zip(a, b)) >= 2
    assert sorted(map(sorted, grids([["s=3", "m=a"], ["s=4", "m=a"], ["s=3", "m=b"]]))) == \
        [["m=a", "s=3,4"], ["m=b", "s=3"]]


def test_plot_writes_png_and_pdf(sweep, tmp_path):
    assert main(["plot", str(sweep), "--out", str(tmp_path / "plots")]) == 0
    for name in ("tradeoff", "curves"):
        png, pdf = tmp_path / "plots" / f"{name}.png", tmp_path / "plots" / f"{name}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1_000


@needs_mnist_full
def test_demo_ends_with_the_side_by_side_table(tmp_path, capsys):
    """`make demo`'s two commands on a tiny budget: PG, DG and DG-K in one table, with the counts,
    the modelled cost, the wall-clock, the data used and the learning-curve figure's path."""
    tiny = ("task=mnist", "task.steps=20", "task.eval_every=10")
    res = kb("run", "-m", *tiny, "method=pg,dg", f"hydra.sweep.dir={tmp_path}/demo", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    res = kb("run", *tiny, "method=dgk", "keep_rate=0.03", f"hydra.run.dir={tmp_path}/demo/2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert main(["plot", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    table = out[out.index("configuration"):out.index("data:")]
    header, *rows = [line.split() for line in table.strip().splitlines()]
    assert header[:3] == ["configuration", "seeds", "final"] and "cost" in " ".join(header) and "train_s" in header
    assert [r[0] for r in rows] == ["PG", "DG", "DG-K"]
    backward = {r[0]: int(r[-4]) for r in rows}  # columns: ... backward forward cost train_s
    assert backward == {"PG": 2000, "DG": 2000, "DG-K": 60}  # 20 steps x 100 images; DG-K keeps 3 of 100
    assert "data: full, 60,000 training / 10,000 evaluation images" in out
    curves = tmp_path / "demo" / "plots" / "curves.png"
    assert f"learning curves: {curves}" in out and curves.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(not has_plugin("hydra_joblib_launcher"), reason="pip install kondo-bench[joblib]")
def test_joblib_launcher_runs_jobs_in_parallel(tmp_path):
    res = kb("run", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "task=bandit", "task.steps=5",
             "seed=0,1", f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Joblib.Parallel(n_jobs=2" in res.stdout + res.stderr
    tables = load_sweep(tmp_path / "sweep")
    assert sorted(tables.runs["seed"]) == [0, 1] and tables.incomplete.empty


@pytest.mark.skipif(not has_plugin("hydra_submitit_launcher"), reason="pip install kondo-bench[slurm]")
def test_submitit_local_launcher(tmp_path):
    res = kb("run", "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5", "task=bandit",
             "task.steps=5", "seed=0,1", f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    tables = load_sweep(tmp_path / "sweep")  # .submitit/ (the launcher's own files) is not a job
    assert sorted(tables.runs["seed"]) == [0, 1] and tables.incomplete.empty


def test_figures_built_over_two_sessions_from_committed_records(tmp_path, capsys, monkeypatch):
    """A figure built in two halves: the first session finishes one sweep and ends; the next
    starts from a copy of what would be committed (everything but runs/, which .gitignore
    leaves out), counts the first sweep's jobs as done from their records, launches only the
    other sweep and draws all ten. Then: a lost record is rerun alone, and a changed config
    counts nothing as done."""
    real_launch = figures.jobs.launch
    launched = []

    def first_sweep_only(root, overrides, exclude, verbose, progress, finished):  # the session ends after it
        launched.append((root.name, overrides, exclude))
        if root.name != "bandit-ungated":
            return 1
        status = real_launch(root, overrides, exclude, verbose, progress, finished)
        # each job was recorded as it completed, before the launch returned
        assert len(read_store(store_path(first / "test", "bandit-ungated"))) == 4
        return status

    monkeypatch.setattr(figures.jobs, "launch", first_sweep_only)
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["figures", "--scale", "test", "--only", "bandit", "--out", str(first)]) == 1
    out = capsys.readouterr().out
    assert "bandit-ungated: 4 jobs, 0 done, 4 to run" in out and "bandit-dgk-hard-gate: 6 jobs, 0 done, 6 to run" in out
    assert "[figures] jobs: 0/10 done, 0 failed, 0 s elapsed, about ? left" in out  # progress, not a terminal
    records = (first / "test" / "finished" / "bandit-ungated.jsonl").read_text().splitlines()
    assert len(records) == 4 and not (first / "test" / "finished" / "bandit-dgk-hard-gate.jsonl").exists()
    assert [json.loads(r)["job"] for r in records] == ["method=dg,seed=0", "method=dg,seed=1",
                                                       "method=pg,seed=0", "method=pg,seed=1"]

    shutil.copytree(first, second, ignore=shutil.ignore_patterns("runs"))  # what a commit carries
    launched.clear()
    monkeypatch.setattr(figures.jobs, "launch", lambda root, *a: launched.append(root.name) or real_launch(root, *a))
    assert main(["figures", "--scale", "test", "--only", "bandit", "--out", str(second)]) == 0
    out = capsys.readouterr().out
    assert "bandit-ungated: 4 jobs, 4 done, 0 to run" in out and "bandit-dgk-hard-gate: 6 jobs, 0 done, 6 to run" in out
    assert launched == ["bandit-dgk-hard-gate"] and not (second / "test" / "runs" / "bandit-ungated").exists()
    assert "[figures] jobs: 4/10 done (4 skipped), 0 failed" in out
    assert re.search(r"\[figures\] jobs: 10/10 done \(4 skipped\), 0 failed, .* elapsed, all ended", out)
    for name in ("bandit.png", "bandit.pdf", "bandit_runs.csv"):
        assert (second / "test" / name).stat().st_size > 0
    runs = pd.read_csv(second / "test" / "bandit_runs.csv")
    assert set(runs["method"]) == {"pg", "dg", "dgk"} and len(runs) == 10
    # the first sweep's rows and curves, read from its records, are the ones its folders gave
    before = pd.read_csv(first / "test" / "bandit_runs.csv")
    assert len(before) == 4
    pd.testing.assert_frame_equal(runs[runs["sweep"] == "bandit-ungated"].reset_index(drop=True), before,
                                  check_like=True)
    curves, before = (pd.read_csv(d / "test" / "bandit_curves.csv") for d in (second, first))
    pd.testing.assert_frame_equal(curves[curves["sweep"] == "bandit-ungated"].reset_index(drop=True), before,
                                  check_like=True)
    assert len((second / "test" / "finished" / "bandit-dgk-hard-gate.jsonl").read_text().splitlines()) == 6

    # a job with neither a record nor a finished folder is launched again, alone, into its folder
    store = second / "test" / "finished" / "bandit-dgk-hard-gate.jsonl"
    lines = store.read_text().splitlines()
    lost = json.loads(lines[1])["job"]
    store.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    job = second / "test" / "runs" / "bandit-dgk-hard-gate" / lost
    (job / "summary.json").unlink()
    launched = []
    monkeypatch.setattr(figures.jobs, "launch", lambda root, overrides, exclude, verbose, progress, finished:
                        launched.append((overrides, exclude)) or 0)
    assert main(["figures", "--scale", "test", "--only", "bandit", "--out", str(second)]) == 0
    out = capsys.readouterr().out
    assert "bandit-ungated: 4 jobs, 4 done, 0 to run" in out and "bandit-dgk-hard-gate: 6 jobs, 5 done, 1 to run" in out
    assert "[figures] jobs: 9/10 done (9 skipped), 1 failed" in out  # the launch left its job unfinished
    (overrides, exclude), = launched
    grid, _ = figures.expand(overrides)
    assert len(grid) == 1 and figures.job_folder(job.parent, grid[0], exclude) == job

    # a changed config (here a different step size for every job) is not the finished work
    assert main(["figures", "--scale", "test", "--only", "bandit", "--out", str(second), "--dry-run",
                 "task.step_size=0.2"]) == 0
    out = capsys.readouterr().out
    assert "bandit-ungated: 4 jobs, 0 done, 4 to run" in out and "bandit-dgk-hard-gate: 6 jobs, 0 done, 6 to run" in out
    assert "[figures] 10 jobs, 0 done, 10 to run (dry run: nothing launched)" in out
    assert len(launched) == 1  # a dry run launches nothing
    # ... and it says which setting the records ran with, so that a reader can pass it
    assert re.search(r"bandit-ungated: 4 of its committed records ran another config, e\.g\. "
                     r"task\.step_size=[0-9.e-]+ \(this command: 0\.2\): give the command the same settings", out), out
    assert "bandit-dgk-hard-gate: 5 of its committed records ran another config" in out  # its lost record is rerun


def test_seeds_n_runs_the_first_seeds_into_the_full_runs_folders_and_records(tmp_path, capsys, monkeypatch):
    """`--seeds 1` at a two-seed scale runs seed 0 only, into the folders (and records) the
    uncapped run would use, seed in their name though it does not vary in the capped run; the
    uncapped run then finds those jobs done and has only seed 1 to run; `--no-launch` draws
    the finished half without launching the other, and records the finished folders."""
    out = tmp_path / "figs"
    assert main(["figures", "--scale", "test", "--only", "bandit", "--seeds", "1", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "bandit-ungated: 2 jobs, 0 done, 2 to run" in said and "bandit-dgk-hard-gate: 3 jobs, 0 done" in said
    records = read_store(store_path(out / "test", "bandit-ungated"))
    assert sorted(records) == ["method=dg,seed=0", "method=pg,seed=0"]
    assert sorted(p.name for p in (out / "test" / "runs" / "bandit-ungated").iterdir() if p.is_dir()) == \
        ["method=dg,seed=0", "method=pg,seed=0"]
    assert set(pd.read_csv(out / "test" / "bandit_runs.csv")["seed"]) == {0}  # drawn from what ran

    assert main(["figures", "--scale", "test", "--only", "bandit", "--out", str(out), "--dry-run"]) == 0
    said = capsys.readouterr().out
    assert "bandit-ungated: 4 jobs, 2 done, 2 to run" in said and "bandit-dgk-hard-gate: 6 jobs, 3 done, 3 to run" in said

    # --no-launch draws the finished half, lists the other half as missing, and says so; the
    # jobs finished in folders are recorded (here: their records were lost), for the next session
    launched = []
    monkeypatch.setattr(figures.jobs, "launch", lambda *a, **k: launched.append(a) or 0)
    (out / "test" / "bandit.png").unlink()
    store_path(out / "test", "bandit-ungated").unlink()
    assert main(["figures", "--scale", "test", "--only", "bandit", "--out", str(out), "--no-launch"]) == 0
    said = capsys.readouterr().out
    assert not launched and (out / "test" / "bandit.png").stat().st_size > 0
    assert sorted(read_store(store_path(out / "test", "bandit-ungated"))) == ["method=dg,seed=0", "method=pg,seed=0"]
    assert len(pd.read_csv(out / "test" / "bandit_runs.csv")) == 5
    missing = pd.read_csv(out / "test" / "bandit_incomplete.csv")
    assert len(missing) == 5 and all(r.endswith("seed=1") for r in missing["run"])
    assert "figures drawn from 5 of 10 jobs (5 not finished" in said and "all figures done" not in said

    assert main(["figures", "--scale", "test", "--seeds", "0", "--dry-run"]) == 2
    assert "--seeds must be at least 1" in capsys.readouterr().err


def test_back_to_back_sweeps_get_different_folders(tmp_path):
    cmd = [sys.executable, "-m", "kondo_bench.cli", "run", "-m", "task=bandit", "task.steps=2", "seed=0"]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    for p in procs:
        p.communicate(timeout=120)
        assert p.returncode == 0
    folders = sorted((tmp_path / "multirun").glob("*/*"))
    assert len(folders) == 2, folders
    assert all(re.fullmatch(r"\d\d-\d\d-\d\d-\d{6}", f.name) for f in folders)  # microseconds in the name
    assert all((f / "0" / "summary.json").exists() for f in folders)


def test_columns_come_from_the_resolved_config_and_a_figure_draws_keys_no_run_set(tmp_path):
    """Runs that never typed task.reward_noise or method.signal still carry them (the config is
    flattened), a key that does not change results is no series key, and the gambling figure,
    which reads task.reward_noise, draws from them."""
    from conftest import make_cfg
    from kondo_bench.figures.gambling import draw as draw_gambling
    from kondo_bench.sweeps import series_keys
    from kondo_bench.train import run_experiment

    for i, (method, signal) in enumerate((("pg", None), ("dgk", "delight"), ("dgk", "random"))):
        extra = ("keep_rate=0.1", f"method.signal={signal}") if signal else ()
        run_experiment(make_cfg("task=bandit", "task.steps=4", "task.eval_every=2", "progress=false",
                                "resume=false", f"method={method}", *extra), tmp_path / "runs" / str(i))
    t = load_sweep(tmp_path / "runs")
    assert {"task.reward_noise", "method.signal", "method.estimator", "task.arms"} <= set(t.runs.columns)
    assert "resume" not in t.runs.columns and "progress" not in t.runs.columns
    keys = series_keys(t.runs)
    assert "method.signal" in keys and "task.reward_noise" not in keys and "method.estimator" not in keys
    data = figures.FigureData("gambling", figures.SCALES["test"], tmp_path, t.runs, t.curves, t.incomplete)
    assert [p.suffix for p in draw_gambling(data)] == [".png", ".pdf"]


def test_a_record_names_no_path_of_this_machine(tmp_path, monkeypatch):
    """Records are committed: an absolute path in a summary (the data folder) is written relative
    to the repository the command runs from, and every committed record already is."""
    from kondo_bench.figures.store import record_of, write_store

    repo, job = tmp_path / "repo", tmp_path / "repo" / "runs" / "seed=0"
    job.mkdir(parents=True)
    (job / "summary.json").write_text(json.dumps({"status": "complete", "data_root": str(tmp_path / "shared" / "mnist"),
                                                  "final": {"note": "kept"}, "config": {"x": 1}}))
    monkeypatch.chdir(repo)
    record = record_of(job)
    assert record["summary"]["data_root"] == "../shared/mnist" and "config" not in record["summary"]
    stale = {**record, "summary": {**record["summary"], "data_root": str(tmp_path / "elsewhere")}}
    write_store(repo / "finished" / "s.jsonl", {"seed=0": stale})  # an old record is made portable on write
    assert read_store(repo / "finished" / "s.jsonl")["seed=0"]["summary"]["data_root"] == "../elsewhere"
    committed = [f for f in (REPO / "results" / "figures").glob("*/finished/*.jsonl")]
    assert committed and not [f for f in committed if '":"/' in f.read_text()]


# ---- a sweep where one job's fault costs only that job ----

def _status(job):
    return json.loads((job / "summary.json").read_text())


@needs_mnist
def test_a_jobs_bad_data_costs_that_job_only(tmp_path):
    """GOOD, CORRUPT, GOOD: the second job is recorded failed with its one-line reason, the third
    still runs, the sweep exits 1, and summarize lists all three."""
    bad = tmp_path / "bad"
    shutil.copytree(SHARED_MNIST, bad)
    labels = bad / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(labels.read_bytes())
    data[100] ^= 0xFF
    labels.write_bytes(bytes(data))
    sweep = tmp_path / "sweep"
    res = kb("run", "-m", "task=mnist", "task.steps=2", "task.eval_every=1", "method=pg", "progress=false",
             f"task.data_root={SHARED_MNIST},{bad},{SHARED_MNIST}", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert [_status(sweep / j)["status"] for j in "012"] == ["complete", "failed", "complete"]
    error = _status(sweep / "1")["error"]
    assert "\n" not in error and f"cannot read {labels}" in error
    assert "2/3 done, 1 failed" in res.stderr and "1 of 3 jobs failed" in res.stderr.splitlines()[-1]
    out = subprocess.run([sys.executable, "-m", "kondo_bench.cli", "summarize", str(sweep)], capture_output=True,
                         text=True, cwd=tmp_path).stdout
    assert "1 complete" not in out and "2 complete, 1 incomplete" in out


@pytest.mark.parametrize("error", [MemoryError(), RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")])
def test_a_job_out_of_memory_costs_that_job_only(tmp_path, monkeypatch, capsys, error):
    """The first job runs out of memory in its first step: it is recorded failed with one line
    naming the key to lower, the progress line counts it, the next job runs, the sweep exits 1."""
    from kondo_bench.tasks.bandit import BanditTask

    act, calls = BanditTask.act, {"n": 0}

    def act_once_out_of_memory(self):
        calls["n"] += 1
        if calls["n"] == 1:
            raise error
        return act(self)

    monkeypatch.setattr(BanditTask, "act", act_once_out_of_memory)
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    assert main(["run", "-m", "task=bandit", "task.steps=5", "seed=0,1", "progress=false",
                 f"hydra.sweep.dir={sweep}"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    failed = _status(sweep / "0")
    assert failed["status"] == "failed" and failed["error"].startswith("out of memory: ") and \
        "lower task.batch_size" in failed["error"] and "\n" not in failed["error"], failed
    assert _status(sweep / "1")["status"] == "complete"
    assert "1/2 done, 1 failed" in err and "1 of 2 jobs failed" in err.strip().splitlines()[-1], err


def test_summarize_lists_the_jobs_a_sweep_never_started(tmp_path):
    sweep = tmp_path / "sweep"
    res = kb("run", "-m", "task=bandit", "task.steps=5", "seed=0,1,2", "progress=false", f"hydra.sweep.dir={sweep}",
             cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    shutil.rmtree(sweep / "2")  # as if the sweep had been stopped before its last job
    tables = load_sweep(sweep)
    assert len(tables.runs) == 2 and list(tables.incomplete["run"]) == ["(job 2)"]
    assert tables.incomplete["reason"][0].startswith("never started (") and "seed=2" in tables.incomplete["reason"][0]


# ---- refuse before writing ----

def test_a_sweep_into_another_configs_finished_sweep_is_refused_before_hydra_writes(tmp_path):
    sweep = tmp_path / "sweep"
    assert kb("run", "-m", "task=bandit", "task.steps=5", "seed=0,1", f"hydra.sweep.dir={sweep}",
              cwd=tmp_path).returncode == 0
    before = {p: p.read_bytes() for p in [sweep / "multirun.yaml", *sweep.glob("*/.hydra/*.yaml")]}
    res = kb("run", "-m", "task=bandit", "task.steps=6", "seed=0,1", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "a complete run of a different config" in res.stderr
    assert {p: p.read_bytes() for p in before} == before  # multirun.yaml and every job's .hydra/ untouched


def test_jobs_that_would_share_a_folder_are_refused_before_anything_is_written(tmp_path):
    sweep = tmp_path / "sweep"
    res = kb("run", "-m", "task=bandit", "task.steps=5", "seed=0,1,2", "resume=false", f"hydra.sweep.dir={sweep}",
             "hydra.sweep.subdir=${task.name}", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "jobs 0 and 1 of this sweep would write the same folder 'bandit'" in res.stderr
    assert not sweep.exists()


def test_a_second_run_into_a_folder_in_use_is_refused_before_it_writes(tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "kondo_bench.cli", "run", "task=bandit", "task.steps=10000000",
                              "task.eval_every=50", "progress=false", f"hydra.run.dir={run}"], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (run / "metrics.jsonl").exists())
        before = (run / ".hydra" / "config.yaml").read_bytes()
        res = kb("run", "task=bandit", "task.steps=5", f"hydra.run.dir={run}", cwd=tmp_path)
        assert res.returncode == 2 and f"being written by process {first.pid}" in res.stderr, res.stderr
        assert (run / ".hydra" / "config.yaml").read_bytes() == before
    finally:
        first.kill()
        first.wait()


# ---- clean stops under every launcher ----

LONG = ("task=bandit", "task.steps=10000000", "task.eval_every=100", "progress=false", "device.threads=1")


def _start_sweep(tmp_path, *args):
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-m", "kondo_bench.cli", "run", "-m", *LONG, *args,
                             f"hydra.sweep.dir={sweep}"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, sweep


@pytest.mark.skipif(not has_plugin("hydra_joblib_launcher"), reason="pip install kondo-bench[joblib]")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_a_joblib_sweeps_parent_stops_every_job_cleanly(tmp_path, sig):
    proc, sweep = _start_sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1,2,3")
    try:
        wait_for(lambda: len(list(sweep.glob("*/metrics.jsonl"))) >= 2 and all(
            (m.stat().st_size > 0) for m in sweep.glob("*/metrics.jsonl")))
        workers = descendants(proc.pid)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert f"sweep stopped by {sig.name}" in err.splitlines()[-1]
    wait_for(lambda: not any(alive(p) for p in workers), timeout=30)  # no orphan
    statuses = [(_status(j)["status"], _status(j).get("error")) for j in sorted(sweep.glob("[0-9]*"))]
    ran = [s for s in statuses if s[1] is None]
    assert len(ran) == 2 and all(s == "interrupted" for s, _ in ran), statuses
    assert all(s == "interrupted" and e.startswith("not started") for s, e in statuses if e is not None), statuses
    tables = load_sweep(sweep)
    assert len(tables.incomplete) == 4 and tables.runs.empty  # every planned job listed, none complete


@pytest.mark.skipif(not has_plugin("hydra_joblib_launcher"), reason="pip install kondo-bench[joblib]")
def test_a_killed_joblib_job_costs_that_job_only(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-m", "kondo_bench.cli", "run", "-m", "hydra/launcher=joblib",
                             "hydra.launcher.n_jobs=2", "task=bandit", "task.steps=3000", "task.eval_every=100",
                             "progress=false", "device.threads=1", "seed=0,1,2", f"hydra.sweep.dir={sweep}"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (sweep / "0" / "metrics.jsonl").exists())
        os.kill(int((sweep / "0" / ".kondo-bench.lock").read_text()), signal.SIGKILL)  # as the OOM killer would
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert "killed by SIGKILL" in _status(sweep / "0")["error"]
    assert [_status(sweep / j)["status"] for j in "12"] == ["complete", "complete"]
    assert "2/3 done, 1 failed" in err  # the progress line counts it
    assert "1 of 3 jobs failed" in err.splitlines()[-1]


@pytest.mark.skipif(not has_plugin("hydra_joblib_launcher"), reason="pip install kondo-bench[joblib]")
def test_a_killed_joblib_worker_is_one_line_and_leaves_no_orphan(tmp_path):
    """kill -9 of the worker itself (not of the job process it forks) breaks joblib's pool: one
    line says so, no traceback; the job's process, orphaned, ends 'interrupted' (not running on)."""
    proc, sweep = _start_sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1,2")
    try:
        wait_for(lambda: (sweep / "0" / "metrics.jsonl").exists() and (sweep / "0" / "metrics.jsonl").stat().st_size)
        job = int((sweep / "0" / ".kondo-bench.lock").read_text())
        worker = int(Path(f"/proc/{job}/stat").read_text().rsplit(")", 1)[1].split()[1])
        os.kill(worker, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode in (1, 130) and "Traceback" not in err, err
    assert "kondo-bench: error: a joblib worker process was killed (SIGKILL" in err, err
    wait_for(lambda: not alive(job), timeout=30)
    assert _status(sweep / "0")["status"] == "interrupted"


def test_a_signal_to_a_basic_sweep_stops_it_with_an_interrupted_summary(tmp_path):
    proc, sweep = _start_sweep(tmp_path, "seed=0,1")
    try:
        wait_for(lambda: (sweep / "0" / "metrics.jsonl").exists() and (sweep / "0" / "metrics.jsonl").stat().st_size)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert _status(sweep / "0")["status"] == "interrupted"
    assert list(load_sweep(sweep).incomplete["run"]) == ["0", "(job 1)"]  # the job never started is listed


def test_sweep_folders_are_named_as_hydra_names_them_so_a_shared_one_is_caught(tmp_path):
    # Hydra leaves an excluded key out of override_dirname however it is written (`++seed` is
    # `seed`): these two jobs would write one folder, and that is refused before anything is written
    sweep = tmp_path / "sweep"
    res = kb("run", "-m", "task=bandit", "task.steps=5", "++seed=0,1", "resume=false", f"hydra.sweep.dir={sweep}",
             "hydra.sweep.subdir=${hydra.job.override_dirname}",
             "hydra.job.config.override_dirname.exclude_keys=[seed,resume]", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "jobs 0 and 1 of this sweep would write the same folder 'task.steps=5,task=bandit'" in res.stderr
    assert not sweep.exists()


# The forks run in a fresh interpreter, as in a joblib worker (one thread, no torch thread pool),
# not in the pytest worker, whose threads a fork would copy half-held; its time limit bounds the
# whole test. It prints the killed job's signal and then how the next job ended.
_FORKS = """
import os, signal, time
from tqdm import tqdm
from kondo_bench.cli import _own_locks

tqdm.get_lock()  # the worker's lock, made before it forks, as tqdm's default would be shared

def fork(body):
    pid = os.fork()
    if pid == 0:
        try:
            _own_locks()
            body()
        finally:
            os._exit(0)
    return pid

killed = fork(lambda: (tqdm.get_lock().acquire(), os.kill(os.getpid(), signal.SIGKILL)))
print(os.WTERMSIG(os.waitpid(killed, 0)[1]), flush=True)
nxt = fork(lambda: tqdm(total=1, disable=True).close())  # made and closed: the lock taken twice
deadline = time.monotonic() + 30
while (done := os.waitpid(nxt, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
    time.sleep(0.05)
if done[0] == 0:
    os.kill(nxt, signal.SIGKILL)
    print("hung", flush=True)
else:
    print("exited" if os.WIFEXITED(done[1]) else "signalled", flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="jobs fork only where the OS can")
def test_a_job_killed_holding_its_progress_bar_lock_does_not_hang_the_next_job_of_its_worker():
    """Jobs forked from one joblib worker used to share tqdm's multiprocessing lock: one killed
    while holding it (tqdm takes it whenever a bar is made or closed) hung the worker's next job
    at its first bar. Each job's process now takes a lock of its own (`_own_locks`)."""
    res = subprocess.run([sys.executable, "-c", _FORKS], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [str(int(signal.SIGKILL)), "exited"], "the next job hung on the killed job's lock"
