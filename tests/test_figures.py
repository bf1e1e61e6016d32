"""The figures package: its registry, and the screening (run at test scale), noise and gambling specs (their grids)."""

import itertools
import json
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

from conftest import alive, descendants, needs_mnist, wait_for
from kondo_bench import figures
from kondo_bench.figures import common
from kondo_bench.cli import main

SIGNALS = ["delight", "random", "advantage", "abs_advantage", "surprisal", "additive"]


def grid(fig: str, scale: str) -> dict[str, list[dict]]:
    """Each sweep's jobs as {key: value} dicts, without running anything."""
    out = {}
    for sweep in figures.FIGURES[fig].sweeps(figures.SCALES[scale]):
        jobs, _ = figures.expand(sweep.overrides)
        out[sweep.name] = [dict(o.split("=", 1) for o in job) for job in jobs]
    return out


def config(job: dict) -> dict:
    """The config the job would run, as `figures` resolves it (fails on a misspelt key)."""
    resolved = figures.resolved_config([f"{k}={v}" for k, v in job.items()])
    assert resolved is not None, job
    return json.loads(resolved)


def test_registry_lists_every_figure_module_and_nothing_imports_in_a_circle():
    """One module per figure under kondo_bench/figures/, each in the registry once, in the
    order `figures` makes them. Read from the source: the machinery imports no figure and
    no module imports, through others, itself (a package's __init__ runs first and would
    hide such a cycle from an import test)."""
    import ast
    from pathlib import Path

    folder = Path(figures.__file__).parent
    machinery = {"core", "jobs", "done", "store", "parked", "command", "common", "hsearch", "hstar_tables", "stop"}
    modules = {p.stem for p in folder.glob("*.py")} - machinery - {"__init__"}
    assert {m.__name__.rsplit(".", 1)[1] for m in figures.MODULES} == modules
    assert list(figures.FIGURES)[:4] == ["bandit", "mnist", "speedup", "reversal"]
    assert len(figures.FIGURES) == len(figures.MODULES) and all(m.FIGURE.name in figures.FIGURES for m in figures.MODULES)
    imports = {}
    for name in modules | machinery:
        found = set()
        for node in ast.walk(ast.parse((folder / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:  # from .x import ... / from . import x
                found |= {node.module} if node.module else {a.name for a in node.names}
        imports[name] = found
        assert found <= modules | machinery, (name, found)  # never the package (__init__) itself
    for name in machinery:
        assert not imports[name] & modules, f"{name}.py imports a figure: {imports[name] & modules}"

    def reach(name, seen=()):
        for dep in imports[name]:
            assert dep not in (*seen, name), f"import cycle: {' -> '.join((*seen, name, dep))}"
            reach(dep, (*seen, name))

    for name in imports:
        reach(name)


@needs_mnist
def test_screening_figure_at_test_scale(tmp_path, capsys):
    assert main(["figures", "--scale", "test", "--only", "screening", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    png = tmp_path / "test" / "screening.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert (tmp_path / "test" / "screening.pdf").stat().st_size > 1_000
    runs = pd.read_csv(tmp_path / "test" / "screening_runs.csv")
    assert set(runs["task"]) == {"mnist", "bandit"}
    for task, r in runs.groupby("task"):  # one row per signal x seed, the signal in `method.signal`
        assert sorted(zip(r["method.signal"], r["seed"])) == sorted(itertools.product(SIGNALS, [0, 1])), task
    assert (runs["method"] == "dgk").all() and (runs["gate"] == "topk").all() and (runs["keep_rate"] == 0.1).all()
    assert (runs["backward_samples"] == runs["forward_samples"] // 10).all()  # equal keep rate: 10 of 100
    assert (runs["method.signal_alpha"] == 0.5).all()
    curves = pd.read_csv(tmp_path / "test" / "screening_curves.csv")
    assert set(curves["method.signal"]) == set(SIGNALS)
    assert "MNIST ρ=0.1, delight: final test error" in out and "bandit ρ=0.1, additive: final error" in out


def test_noise_grid():
    for scale, steps, seeds in (("test", 40, 2), ("quick", 1500, 2)):
        sweeps = grid("noise", scale)
        assert set(sweeps) == {"noise-pg", "noise-dg", "noise-dgk"}
        for name, jobs in sweeps.items():
            assert all(j["task"] == "mnist" and j["task.steps"] == str(steps) for j in jobs)
            noise = [float(j.get("method.delight_noise", "nan")) for j in jobs]
            if name == "noise-pg":
                assert [j["method"] for j in jobs] == ["pg"] * seeds and "method.delight_noise" not in jobs[0]
                continue
            assert sorted(zip(noise, (int(j["seed"]) for j in jobs))) == sorted(
                itertools.product([0, 0.25, 0.5, 1, 2], range(seeds)))
        assert {j["method"] for j in sweeps["noise-dg"]} == {"dg"} and "keep_rate" not in sweeps["noise-dg"][0]
        assert {(j["method"], j["keep_rate"]) for j in sweeps["noise-dgk"]} == {("dgk", "0.1")}
    cfg = config(grid("noise", "quick")["noise-dgk"][-1])
    assert cfg["method"]["delight_noise"] == 2 and cfg["keep_rate"] == 0.1 and cfg["method"]["gate"] == "auto"


def test_screening_and_gambling_grids():
    quick = grid("screening", "quick")
    assert {j["method.signal"] for j in quick["screening-mnist"]} == set(SIGNALS)
    assert len(quick["screening-mnist"]) == 6 * 3 and {j["keep_rate"] for j in quick["screening-mnist"]} == {"0.1"}
    assert {j["keep_rate"] for j in grid("screening", "paper")["screening-bandit"]} == {"0.03", "0.1"}

    jobs = [j for js in grid("gambling", "quick").values() for j in js]
    regimes = {(j["method"], j["task.reward_noise"], j.get("task.noisy_arms", "1")) for j in jobs}
    assert regimes == set(itertools.product(["pg", "dg", "dgk"], ["0", "2"], ["1"])) | \
        set(itertools.product(["pg", "dg", "dgk"], ["2"], ["0.1"]))
    assert len(jobs) == 9 * 3
    for j in (jobs[0], next(j for j in jobs if j["method"] == "dg"), next(j for j in jobs if j["method"] == "dgk")):
        cfg = config(j)  # DG keeps its temperature; only DG-K gets the hard gate at price 0
        assert cfg["method"]["eta"] == (0 if j["method"] == "dgk" else 1)
        assert j["method"] != "dgk" or cfg["price"] == 0


def test_mnist_source_note(tmp_path):
    run = tmp_path / "runs" / "sweep" / "seed=0"
    run.mkdir(parents=True)
    summary = {"status": "complete", "data_source": "test-split", "train_images": 8000, "eval_images": 2000}
    (run / "summary.json").write_text(json.dumps(summary))
    runs = pd.DataFrame({"run": ["sweep/seed=0"]})
    data = figures.FigureData("x", figures.SCALES["test"], tmp_path, runs, pd.DataFrame(), pd.DataFrame())
    note = common.mnist_source_note(data, runs)
    assert "test-split fallback" in note and "8k train / 2k eval" in note
    (run / "summary.json").write_text(json.dumps({**summary, "data_source": "full"}))
    assert common.mnist_source_note(data, runs) is None


def test_finished_records_round_trip_and_a_bad_line_costs_only_itself(tmp_path, caplog):
    """A job folder's record gives back its summary (less the run options) and metrics rows;
    a line that is not a record (a torn write, a merge marker) is skipped, the others count."""
    from kondo_bench.figures.store import metrics_rows, read_store, record_of, write_store

    job = tmp_path / "runs" / "sweep" / "seed=0"
    (job / ".hydra").mkdir(parents=True)
    summary = {"status": "complete", "final_quality": 0.25, "config": {"seed": 0, "progress": True},
               "result_config": {"seed": 0}}
    (job / "summary.json").write_text(json.dumps(summary))
    (job / "metrics.jsonl").write_text('{"step": 1, "error": 0.5}\n{"step": 2, "error": 0.25, "price": null}\n')
    (job / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
    rec = record_of(job)
    assert rec["job"] == "seed=0" and rec["overrides"] == ["seed=0"] and "config" not in rec["summary"]
    assert metrics_rows(rec) == [{"step": 1, "error": 0.5, "price": None}, {"step": 2, "error": 0.25, "price": None}]
    path = tmp_path / "finished" / "sweep.jsonl"
    assert write_store(path, {"seed=0": rec}) and not write_store(path, {"seed=0": rec})  # unchanged: not rewritten
    path.write_text("<<<<<<< HEAD\n" + path.read_text() + '{"job": "seed=1", "summ')
    assert list(read_store(path)) == ["seed=0"] and read_store(path)["seed=0"] == rec
    assert "line 1 is not a finished-job record" in caplog.text and "line 3" in caplog.text


def test_reversal_redraws_from_committed_tables_with_zeros_clipped_at_the_resolution(tmp_path, monkeypatch):
    """`--redraw` draws the committed report-scale tables again, launching nothing; their
    sampled error (quality seq_error, 200 prompts x H = 10) is clipped at its resolution 5e-4,
    drawn as a line: no curve, band or bar plunges toward the 1e-17 of float rounding."""
    import shutil
    from pathlib import Path

    import matplotlib.pyplot as plt

    from kondo_bench import plots
    from kondo_bench.figures.reversal import resolution

    committed = Path(__file__).parents[1] / "results" / "figures" / "report"
    (tmp_path / "report").mkdir()
    for name in ("reversal_runs.csv", "reversal_curves.csv"):
        shutil.copy(committed / name, tmp_path / "report" / name)
    runs = pd.read_csv(tmp_path / "report" / "reversal_runs.csv")
    floor, note, footer = resolution(runs)
    assert floor == 1 / (200 * 10) and "5e-4" in note and "200 fresh prompts × H = 10" in footer
    assert resolution(runs.assign(quality_metric="expected_error"))[0] is None  # no grain to clip at

    monkeypatch.setattr(figures.jobs, "launch", lambda *a: pytest.fail("--redraw launched a job"))
    lows, floors = [], []
    real_save = plots.save

    def inspect(fig, stem):
        for ax in fig.axes:
            if ax.get_yscale() == "log":
                lows.append(ax.get_ylim()[0])
                lows.extend(min(line.get_ydata()) for line in ax.get_lines() if len(line.get_ydata()))
                floors.extend(t.get_text() for t in ax.texts if t.get_text().startswith("resolution 5e-4"))
        return real_save(fig, stem)

    monkeypatch.setattr(plots, "save", inspect)
    assert main(["figures", "--scale", "report", "--only", "reversal", "--redraw", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report" / "reversal.png").stat().st_size > 20_000
    assert (tmp_path / "report" / "reversal_pareto.png").exists()
    assert len(floors) == 6 and min(lows) >= floor / 2 - 1e-12, min(lows)  # 3 curve panels + 3 trade-off panels
    plt.close("all")


def test_a_reversal_run_from_before_expected_error_is_not_finished_work(tmp_path):
    """Its summary names seq_error as the quality: drawn beside new runs it would put two
    metrics on one axis, so it is run again."""
    overrides = ["task=reversal", "task.steps=2", "seed=0"]
    config = figures.resolved_config(overrides)
    job = figures.jobs.Job(overrides, tmp_path / "seed=0", config)
    job.folder.mkdir()
    summary = {"status": "complete", "result_config": json.loads(config), "quality_metric": "expected_error"}
    (job.folder / "summary.json").write_text(json.dumps(summary))
    assert figures.is_done(job, [])
    (job.folder / "summary.json").write_text(json.dumps({**summary, "quality_metric": "seq_error"}))
    assert not figures.is_done(job, [])
    job.metric = "seq_error"  # a figure that draws seq_error by name (gateform) keeps it
    assert figures.is_done(job, [])


def hstar_curves() -> tuple[pd.DataFrame, pd.DataFrame]:
    """DG at H = 2, 4, 6, two seeds, evaluated at 100, 200 and 300 forward samples, reward 1 - quality:
    seed 0 solves H = 2 at 200 and H = 4 at 300; seed 1 solves H = 2 at 100 (a later dip does not
    unsolve it), never H = 4 (0.75 is not above the threshold), and H = 6 at 200."""
    rewards = {(0, 2): [0.5, 0.8, 0.9], (0, 4): [0.2, 0.6, 0.8], (0, 6): [0.1, 0.1, 0.1],
               (1, 2): [0.8, 0.7, 0.9], (1, 4): [0.75, 0.75, 0.75], (1, 6): [0.3, 0.76, 0.5]}
    conf = {"task": "reversal", "method": "dg", "gate": "none", "price": float("nan"), "keep_rate": float("nan"),
            "eta": 1.0, "task.vocab": 2, "quality_metric": "expected_error"}
    curves = pd.DataFrame([{**conf, "seed": seed, "task.horizon": h, "step": i + 1, "forward_samples": 100 * (i + 1),
                            "backward_units": 100 * (i + 1) * h // 10, "quality": 1 - r}
                           for (seed, h), rs in rewards.items() for i, r in enumerate(rs)])
    last = curves[curves["step"] == 3].reset_index(drop=True)
    runs = last.drop(columns=["quality", "step"]).assign(final_quality=last["quality"], steps=3,
                                                          run=[f"hstar/{i}" for i in range(6)])
    return runs, curves


def test_hstar_is_the_largest_h_solved_by_each_budget_below_the_first_failure_averaged_over_seeds(tmp_path):
    from kondo_bench.figures import hstar

    runs, curves = hstar_curves()
    keys = hstar.keys_without_horizon(runs)
    assert "task.horizon" not in keys and "method" in keys
    table = hstar.hstar_table(curves, keys)
    by_seed = {(r.seed, r.budget): r.hstar for r in table.itertuples()}
    # seed 1 solves H = 6 at 200 but never H = 4: its H* stays 2, as in the seeds table (hstar_of)
    assert by_seed == {(0, 100): 0, (0, 200): 2, (0, 300): 4, (1, 100): 2, (1, 200): 2, (1, 300): 2}
    mean = hstar.hstar_mean(table, keys)
    assert mean["mean"].tolist() == [1, 2, 3] and mean["size"].tolist() == [2, 2, 2]
    # against backward passes (kept tokens / H): here a tenth of the forward samples
    back = hstar.hstar_table(curves, keys, "backward_passes")
    assert sorted(back["budget"].unique()) == [10, 20, 30] and back["hstar"].tolist() == table["hstar"].tolist()

    data = figures.FigureData("hstar", figures.SCALES["test"], tmp_path, runs, curves, pd.DataFrame())
    # the figure, and beside it H* per seed with its bracket (no PG here: no gains table)
    assert [p.suffix for p in hstar.draw(data)] == [".png", ".pdf", ".csv", ".md"]
    assert "| per_seed |" in (tmp_path / "hstar_seeds.md").read_text()
    assert data.notes == ["DG: H* = 3 ± 1 (n = 2) at 300 forward samples; the paper: 26.5 at 1 M",
                          # seed 1 never solved H = 4 but solved H = 6: what the search's bisection assumes away
                          "DG, seed 1: failed H = 4 but solved H = 6 (monotonicity does not hold here; 1 such pair(s))"]


def test_hstar_grid_runs_the_papers_methods():
    sweeps = grid("hstar", "paper")
    jobs = [j for js in sweeps.values() for j in js]
    methods = {(j["method"], j.get("keep_rate"), j.get("price"), j.get("method.eta")) for j in jobs}
    assert methods == {("pg", None, None, None), ("ppo", None, None, None), ("pmpo", None, None, None),
                       ("dg", None, None, None), ("dgk", None, "0", "0"), ("dgk", "0.03", None, None),
                       ("dgk", "0.03", None, "0.3")}  # rho = 3 %: the official top-k and the quantile gate
    assert any(j.get("method.signal") == "random" for j in sweeps["hstar-random3"])  # the random gate at 3 %
    assert {j["solved_below"] for j in jobs} == {"0.25"}  # each run stops once its reward passes 0.75
    quantile = config(next(j for j in sweeps["hstar-dgk-quantile"]))
    assert quantile["method"]["gate"] == "quantile" and quantile["keep_rate"] == 0.03
    assert {j["task.steps"] for j in jobs} == {"10000"}  # x 100 episodes: the paper's 1 M forward samples
    assert max(int(j["task.horizon"]) for j in jobs) >= 30 and {j["seed"] for j in jobs} == {"0", "1", "2"}
    lam0 = config(next(j for j in sweeps["hstar-dgk-price0"]))
    assert lam0["method"]["eta"] == 0 and lam0["price"] == 0 and lam0["task"]["vocab"] == 2
    assert len(grid("hstar", "test")["hstar-ungated"]) == 4 * 2  # four methods x H = 2, 4, one seed


# ---- stopping `figures` while a sweep runs ----

def _stopped_figures(tmp_path, sig, wait: bool = False, extra: tuple = (), ready=None):
    """`figures` on the bandit's two-job sweep, `sig` sent to its process alone (`kill PID`, not to
    its process group) while the sweep's first job steps. Returns the command, the result of
    `figures`, the sweep's two job folders and the processes under `figures` still alive as it
    ended; with `wait`, waits for those to end too. Any still alive then is killed, so that a
    failing run leaves nothing running."""
    cmd = [sys.executable, "-m", "kondo_bench", "figures", "--scale", "test", "--only", "bandit", "--sweep",
           "bandit-ungated", "--seeds", "1", "--out", str(tmp_path), "task.steps=5000", "task.eval_every=100",
           "device.threads=1", *extra]
    runs = tmp_path / "test" / "runs" / "bandit-ungated"
    first, second = runs / "method=pg,seed=0", runs / "method=dg,seed=0"  # the sweep's jobs, in its order
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children = set()
    try:
        wait_for(ready or (lambda: (first / "metrics.jsonl").exists() and (first / "metrics.jsonl").stat().st_size))
        children = descendants(proc.pid)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        left = [p for p in children if alive(p)]
        if wait:
            wait_for(lambda: not any(alive(p) for p in children))
    finally:
        proc.kill()
        for p in children:
            if alive(p):
                os.kill(p, signal.SIGKILL)
    assert children, "no sweep process was seen"
    return cmd, subprocess.CompletedProcess(cmd, proc.returncode, out, err), (first, second), left


def test_a_stop_signal_to_figures_stops_its_sweep_and_the_same_command_continues(tmp_path):
    """SIGTERM to `figures` while a sweep's job runs: the signal is passed on to the sweep, whose
    running job ends "interrupted" and whose later jobs do not start; `figures` waits for it (no
    process outlives it) and exits 130 in one line. The same command then runs what is missing
    and draws the figure."""
    cmd, res, (first, second), left = _stopped_figures(tmp_path, signal.SIGTERM)
    assert not left, f"processes outlived figures: {left}"
    assert res.returncode == 130, res.stderr
    assert res.stderr.splitlines()[-1] == (
        "kondo-bench figures: stopped by SIGTERM: the running jobs ended 'interrupted' and the rest did not start; "
        "run the same command again to continue (finished jobs are skipped)"), res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    assert json.loads((first / "summary.json").read_text())["status"] == "interrupted"
    assert not second.exists(), "the sweep's next job started"
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert [json.loads((j / "summary.json").read_text())["status"] for j in (first, second)] == ["complete"] * 2
    # drawn, from all the figure's sweeps: the other sweep's 3 jobs (never launched here) are missing
    assert (tmp_path / "test" / "bandit.png").exists() and "figures drawn from 2 of 5 jobs" in again.stdout


def test_a_figure_job_stopped_part_way_continues_from_its_checkpoint(tmp_path):
    """With checkpoint_every (as the paper-scale H* runs have), a job of `figures` stopped
    part-way continues from its last checkpoint when the same command runs again, instead of
    starting over; a finished run of another config in a job's folder is still replaced."""
    from kondo_bench.checkpoint import CHECKPOINT

    first = tmp_path / "test" / "runs" / "bandit-ungated" / "method=pg,seed=0"
    cmd, res, _, _ = _stopped_figures(tmp_path, signal.SIGTERM, wait=True, extra=("checkpoint_every=500",),
                                      ready=lambda: (first / CHECKPOINT).exists())
    assert res.returncode == 130 and json.loads((first / "summary.json").read_text())["status"] == "interrupted"
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    summary = json.loads((first / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["resumed_from_step"] >= 500
    # another config (here more steps) replaces the finished runs, from step 0
    bigger = [("task.steps=6000" if c == "task.steps=5000" else c) for c in cmd]
    again = subprocess.run(bigger, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    summary = json.loads((first / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["steps"] == 6000 and summary["resumed_from_step"] is None


def test_a_command_over_some_sweeps_draws_the_figure_from_all_of_them(tmp_path):
    """`--sweep` limits what is launched, not what is drawn: a command over one sweep of a
    figure writes its tables with every sweep's finished jobs and lists the others' missing jobs
    in _incomplete.csv, so it never leaves a figure that looks complete without them."""
    import pandas as pd

    def figures(sweep):
        cmd = [sys.executable, "-m", "kondo_bench", "figures", "--scale", "test", "--only", "bandit", "--seeds", "1",
               "--sweep", sweep, "--out", str(tmp_path), "device.threads=1"]
        res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout

    out = tmp_path / "test"
    said = figures("bandit-ungated")
    assert set(pd.read_csv(out / "bandit_runs.csv")["sweep"]) == {"bandit-ungated"}
    missing = pd.read_csv(out / "bandit_incomplete.csv")
    assert len(missing) == 3 and missing["run"].str.startswith("bandit-dgk-hard-gate/").all()
    assert "figures drawn from 2 of 5 jobs" in said
    said = figures("bandit-dgk-hard-gate")
    assert set(pd.read_csv(out / "bandit_runs.csv")["sweep"]) == {"bandit-ungated", "bandit-dgk-hard-gate"}
    assert not (out / "bandit_incomplete.csv").exists() and "all figures done" in said


def test_a_parked_job_continues_from_its_checkpoint_on_another_machine(tmp_path):
    """`--park` copies a stopped job's checkpoint, with the metrics rows it counts, to
    parked/ (committed; runs/ is not); with runs/ gone, as on a fresh machine, the same command
    continues the job from the parked step, and the parked copy goes once the job is recorded
    finished. A second `--park` with nothing newer parks nothing."""
    import shutil

    from kondo_bench.checkpoint import CHECKPOINT, read_checkpoint
    from kondo_bench.results import read_metrics

    first = tmp_path / "test" / "runs" / "bandit-ungated" / "method=pg,seed=0"
    cmd, res, _, _ = _stopped_figures(tmp_path, signal.SIGTERM, wait=True, extra=("checkpoint_every=500",),
                                      ready=lambda: (first / CHECKPOINT).exists())
    assert res.returncode == 130
    step = read_checkpoint(first / CHECKPOINT)["step"]
    parked = tmp_path / "test" / "parked" / "bandit-ungated" / first.name
    park = subprocess.run([*cmd, "--park"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert park.returncode == 0, park.stdout + park.stderr
    assert f"parked bandit-ungated/{first.name} at step {step}" in park.stdout
    state = read_checkpoint(parked / CHECKPOINT)
    assert state["step"] == step and len(read_metrics(parked)) == state["rows"] == step // 100
    assert read_metrics(parked) == read_metrics(first)[:state["rows"]]
    twice = subprocess.run([*cmd, "--park"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "0 job(s) parked" in twice.stdout, twice.stdout
    dry = subprocess.run([*cmd, "--dry-run"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "would continue" not in dry.stdout, "its own folder's checkpoint is as late"
    shutil.rmtree(tmp_path / "test" / "runs")  # a fresh machine: the committed folders only
    dry = subprocess.run([*cmd, "--dry-run"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert f"bandit-ungated/{first.name}: would continue from its parked checkpoint (step {step})" in dry.stdout
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"continues from its parked checkpoint (step {step})" in again.stdout + again.stderr
    summary = json.loads((first / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["resumed_from_step"] == step
    assert not (tmp_path / "test" / "parked" / "bandit-ungated").exists(), "a finished job stayed parked"


def test_a_sweep_ends_its_running_job_when_figures_is_killed_outright(tmp_path):
    """`kill -9` of `figures` (nothing of it runs to pass a signal on): its sweep gets SIGTERM from
    the kernel and stops as if `figures` had passed one on, instead of running on as an orphan
    whose outcome lines nobody reads."""
    _, res, (first, second), _ = _stopped_figures(tmp_path, signal.SIGKILL, wait=True)
    assert res.returncode == -signal.SIGKILL
    assert json.loads((first / "summary.json").read_text())["status"] == "interrupted"
    assert not second.exists(), "the sweep's next job started"
