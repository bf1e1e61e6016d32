"""task=lm through the command line's other paths: `figures --only lm` at test scale, a sweep
with `summarize` and `plot`, and the accounting of an LM's padding (kondo_bench/figures/lm.py)."""

import json
import shutil

import pandas as pd
import pytest

pytest.importorskip("transformers")

from kondo_bench import figures  # noqa: E402
from kondo_bench.cli import main  # noqa: E402

SERIES = {"PG", "DG", "DG-K ρ = 10 % (Bernoulli, η = 0.3)", "DG-K ρ = 3 % (Bernoulli, η = 0.3)",
          "random gate ρ = 10 %", "random gate ρ = 3 %"}


def test_grids_run_the_series_at_equal_keep_rates_on_every_scale():
    for scale in ("test", "quick", "report", "paper"):
        jobs = {}
        for sweep in figures.FIGURES["lm"].sweeps(figures.SCALES[scale]):
            grid, _ = figures.expand(sweep.overrides)
            jobs[sweep.name] = [dict(o.split("=", 1) for o in job) for job in grid]
        rates = lambda name: {j["keep_rate"] for j in jobs[name]}  # noqa: E731
        assert rates("lm-dgk") == rates("lm-random") == {"0.1", "0.03"}, scale
        assert all(j["method.gate"] == "quantile" and j["method.eta"] == "0.3" for j in jobs["lm-dgk"])
        assert {j["method"] for j in jobs["lm-ungated"]} == {"pg", "dg"}
        assert all(j["task"] == "lm" for js in jobs.values() for j in js)
        budget = figures.SCALES[scale].budgets["lm"]
        assert {len({j["seed"] for j in js}) for js in jobs.values()} == {budget.seeds}


def test_lm_figure_at_test_scale_then_a_rerun_finds_every_job_done(tmp_path, capsys):
    assert main(["figures", "--scale", "test", "--only", "lm", "--out", str(tmp_path), "device.threads=1"]) == 0
    out = tmp_path / "test"
    assert (out / "lm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / "lm.pdf").stat().st_size > 1_000
    runs = pd.read_csv(out / "lm_runs.csv")
    assert len(runs) == 12 and set(runs["quality_metric"]) == {"reward_error"}
    table = pd.read_csv(out / "lm_table.csv", index_col=0)
    assert set(table.index) == SERIES and (table["seeds"] == 2).all()
    md = (out / "lm_table.md").read_text()
    assert all(f"| {s} |" in md for s in SERIES) and "beyond the paper" in md
    # backward tokens are kept completion tokens: ungated, every sampled one (never the padding
    # after an end-of-sequence token); gated, about rho of them
    assert (table.loc[["PG", "DG"], "backward_tokens"] == table.loc[["PG", "DG"], "completion_tokens_sampled"]).all()
    for rho in (10, 3):
        for s in (f"DG-K ρ = {rho} % (Bernoulli, η = 0.3)", f"random gate ρ = {rho} %"):
            share = table.loc[s, "backward_tokens"] / table.loc[s, "completion_tokens_sampled"]
            assert share == pytest.approx(rho / 100, abs=0.05), s
    assert {p.name for p in (out / "finished").iterdir()} == {"lm-dgk.jsonl", "lm-random.jsonl", "lm-ungated.jsonl"}
    capsys.readouterr()

    assert main(["figures", "--scale", "test", "--only", "lm", "--out", str(tmp_path), "device.threads=1"]) == 0
    text = capsys.readouterr().out
    assert text.count("4 jobs, 4 done, 0 to run") == 3 and "all figures done" in text and "complete:" not in text
    # on another machine (no run folders): the committed records alone are the finished jobs
    shutil.rmtree(out / "runs")
    assert main(["figures", "--scale", "test", "--only", "lm", "--out", str(tmp_path), "--dry-run",
                 "device.threads=1"]) == 0
    assert "12 jobs, 12 done, 0 to run" in capsys.readouterr().out


def test_a_record_of_another_quality_metric_is_not_finished_work(tmp_path):
    """A record is this job's only if its task's quality metric is the one task=lm reports now."""
    from kondo_bench.figures.done import Job, finished

    overrides = ["task=lm", "method=pg", "task.steps=4"]
    job = Job(overrides, tmp_path, figures.resolved_config(overrides))
    summary = {"status": "complete", "quality_metric": "reward_error",
               "result_config": json.loads(job.config)}
    assert finished(summary, overrides, job, [])
    assert not finished({**summary, "quality_metric": "seq_error"}, overrides, job, [])


def test_a_sweep_then_summarize_and_plot(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny = ("task=lm", "task.steps=2", "task.eval_every=1", "task.batch_size=16", "task.eval_prompts=8",
            "progress=false", "device=cpu")
    assert main(["run", "-m", *tiny, "method=pg,dg", "hydra.sweep.dir=sweep"]) == 0
    assert main(["summarize", "sweep"]) == 0
    runs = pd.read_csv(tmp_path / "sweep" / "sweep.csv")
    assert sorted(runs["method"]) == ["dg", "pg"] and set(runs["quality_metric"]) == {"reward_error"}
    assert (runs["steps"] == 2).all() and (runs["forward_samples"] == 32).all()
    assert main(["plot", "sweep"]) == 0
    assert "PG" in capsys.readouterr().out
    assert (tmp_path / "sweep" / "plots" / "curves.png").stat().st_size > 0
    assert (tmp_path / "sweep" / "plots" / "tradeoff.png").stat().st_size > 0
