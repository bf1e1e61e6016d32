"""Runs that stop when solved, and H* searched rather than gridded (figures/hsearch.py)."""

import json

import pytest

from conftest import kb, make_cfg
from kondo_bench import figures
from kondo_bench.figures import hsearch
from kondo_bench.figures.done import finished, Job
from kondo_bench.train import run_experiment, solved


def test_solved_needs_a_quality_below_the_threshold():
    assert solved(0.2, 0.25, "expected_error") == "expected_error 0.2 < solved_below 0.25"
    assert solved(0.25, 0.25, "expected_error") is None  # reward > 0.75, strictly
    assert solved(float("nan"), 0.25, "q") is None and solved(None, 0.25, "q") is None
    assert solved(0.0, None, "q") is None  # no threshold: never stops early


def test_a_run_stops_at_the_first_evaluation_below_the_threshold_and_counts_as_finished(tmp_path):
    overrides = ["task=reversal", "task.horizon=2", "task.steps=40", "task.eval_every=5", "task.eval_prompts=20",
                 "solved_below=0.99", "progress=false"]
    summary = run_experiment(make_cfg(*overrides), tmp_path / "run")
    assert summary["status"] == "solved" and summary["steps"] == 5 and summary["steps_planned"] == 40
    assert summary["forward_samples"] == 500 and summary["stop_reason"].startswith("expected_error ")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5]
    # a rerun of the same config skips it, like a complete run
    again = run_experiment(make_cfg(*overrides), tmp_path / "run")
    assert again.get("skipped") and again["status"] == "solved"
    # and `figures` takes it as this job's finished work
    config = figures.resolved_config(overrides)
    assert finished(summary, None, Job(overrides, tmp_path / "run", config), [])
    # a threshold it never crosses: the whole budget, status complete
    summary = run_experiment(make_cfg(*overrides[:-2], "solved_below=1e-9", "progress=false"), tmp_path / "other")
    assert summary["status"] == "complete" and summary["steps"] == 40 and summary["stop_reason"] is None


def test_the_command_line_reports_a_solved_run(tmp_path):
    r = kb("run", "task=bandit", "task.steps=30", "task.eval_every=10", "solved_below=10", f"hydra.run.dir={tmp_path}/b",
           cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    line = next(line for line in r.stdout.splitlines() if line.startswith("solved: "))
    assert "after 10 steps" in line


@pytest.mark.parametrize("results, start, top, expected", [
    ({}, 10, 64, [10]),  # start where the series is expected to solve
    ({10: True}, 10, 64, [20]),  # double while solved
    ({10: True, 20: True, 40: True}, 10, 64, [64]),  # up to the ceiling
    ({10: True, 20: True, 40: True, 64: True}, 10, 64, []),  # the ceiling solved: H* >= top
    ({10: True, 20: False}, 10, 64, [15]),  # bisect between the last solved and the first failed
    ({10: True, 20: False, 15: True, 17: False, 16: True}, 10, 64, []),  # adjacent: pinned, H* = 16
    ({10: False}, 10, 64, [5]),  # the start fails: look lower
    ({10: False, 5: False, 2: False, 1: False}, 10, 64, []),  # nothing solved at all: H* = 0
    ({4: True, 8: False, 6: True, 7: True}, 4, 64, []),
])
def test_the_search_doubles_then_bisects(results, start, top, expected):
    assert hsearch.next_horizons(results, start, top) == expected



@pytest.mark.parametrize("results, coarse, exact", [
    ({32: True, 64: False}, [48], [48]),  # bracket 32 wide: bisect
    ({32: True, 64: False, 48: False}, [40], [40]),  # 16 > 32 / 8
    ({32: True, 64: False, 48: False, 40: False}, [36], [36]),  # 8 > 4
    ({32: True, 64: False, 48: False, 40: False, 36: False}, [], [34]),  # [32, 36): within 1/8 of 32
    ({4: True, 8: False}, [6], [6]),  # short horizons are still pinned exactly (1/8 of 4 rounds to 0)
    ({4: True, 8: False, 6: True, 7: False}, [], []),
])
def test_a_coarser_search_stops_when_the_bracket_is_within_its_resolution(results, coarse, exact):
    assert hsearch.next_horizons(results, 4, 128, resolution=1 / 8) == coarse
    assert hsearch.next_horizons(results, 4, 128) == exact


def test_hstar_and_the_monotonicity_it_assumes():
    results = {10: True, 20: False, 15: True, 17: False, 16: True}
    assert hsearch.hstar_of(results) == 16 and hsearch.violations(results) == []
    odd = {10: True, 12: False, 14: True, 20: False}  # a seed that fails 12 but solves 14
    assert hsearch.violations(odd) == [(12, 14)]
    assert hsearch.hstar_of(odd) == 10 and hsearch.next_horizons(odd, 10, 64) == [11]


def summary(status, best=None):
    return {"status": status, "best_quality": best}


def test_a_searching_sweep_selects_each_seeds_next_horizon_and_keeps_what_it_ran():
    search = hsearch.Search(start=10, top=64, threshold=0.25)
    jobs = [({"method": "dg", "seed": str(s), "task.horizon": str(h)}, f"seed={s},task.horizon={h}")
            for s in (0, 1) for h in range(1, 65)]
    assert search(jobs, {}) == {"seed=0,task.horizon=10", "seed=1,task.horizon=10"}
    done = {"seed=0,task.horizon=10": summary("solved", 0.1),  # stopped once solved
            "seed=1,task.horizon=10": summary("complete", 0.3),  # the whole budget without
            "seed=1,task.horizon=5": summary("interrupted")}  # not finished: run it (again)
    assert search(jobs, done) == {"seed=0,task.horizon=10", "seed=0,task.horizon=20", "seed=1,task.horizon=10",
                                  "seed=1,task.horizon=5"}
    # seed 0 pinned at H* = 12: it also checks H* - 1 (monotonicity), seed 1 does not
    done = {**{f"seed={s},task.horizon={h}": summary("solved", 0.1) for s in (0, 1) for h in (10, 12)},
            **{f"seed={s},task.horizon={h}": summary("complete", 0.5) for s in (0, 1) for h in (13, 15, 20)}}
    chosen = search(jobs, done)
    assert "seed=0,task.horizon=11" in chosen and "seed=1,task.horizon=11" not in chosen
    state = {r["seed"]: r for r in search.state(jobs, done)}
    assert state["0"]["hstar"] == 12 and state["0"]["next"] == [] and state["1"]["violations"] == []
    # the check failed (11 fails, 12 solved): H* is now 10, and the check does not run again at 9
    done["seed=0,task.horizon=11"] = summary("complete", 0.4)
    chosen = search(jobs, done)
    assert "seed=0,task.horizon=9" not in chosen and "seed=0,task.horizon=11" in chosen
    assert {r["seed"]: r for r in search.state(jobs, done)}["0"]["violations"] == [(11, 12)]


def test_figures_proposes_the_next_stage_from_finished_records(tmp_path):
    """The paper-scale H* plan: every series starts at H = 4; a finished record of one job
    moves that seed's search on."""
    from kondo_bench.figures.hstar import SERIES
    from kondo_bench.figures.jobs import plan_sweeps
    from kondo_bench.figures.store import store_path, write_store

    scale, out = figures.SCALES["paper"], tmp_path / "paper"
    fig = figures.FIGURES["hstar"]
    plans = {p.sweep.name: p for p in plan_sweeps(fig, scale, out, [])}
    assert set(plans) == set(SERIES)
    assert [j.folder.name for j in plans["hstar-dg"].jobs] == [f"seed={s},task.horizon=4" for s in range(3)]
    job = plans["hstar-dg"].jobs[0]
    record = {"job": job.folder.name, "overrides": job.overrides,
              "summary": {"status": "solved", "best_quality": 0.2, "result_config": json.loads(job.config),
                          "quality_metric": "expected_error"}, "metrics": {}}
    write_store(store_path(out, "hstar-dg"), {job.folder.name: record})
    plans = {p.sweep.name: p for p in plan_sweeps(fig, scale, out, [])}
    names = [j.folder.name for j in plans["hstar-dg"].jobs]
    assert "seed=0,task.horizon=4" in names and "seed=0,task.horizon=8" in names
    assert "seed=1,task.horizon=8" not in names


def test_gains_against_difficulty_are_medians_that_count_a_failed_seed_as_over_budget():
    import pandas as pd
    from kondo_bench.figures.hstar_tables import gains_markdown, gains_table

    def run(label, seed, h, rows):  # (forward samples, backward passes, quality) at each evaluation
        return [{"label": label, "seed": seed, "task.horizon": h, "forward_samples": f, "backward_units": b * h,
                 "quality": q} for f, b, q in rows]

    curves = pd.DataFrame(
        # PG (ungated: a backward pass per forward sample) solves H = 4 in seeds 0 and 1, fails in seed 2
        run("PG", 0, 4, [(500, 500, 0.5), (1000, 1000, 0.2)]) + run("PG", 1, 4, [(3000, 3000, 0.2)])
        + run("PG", 2, 4, [(9000, 9000, 0.5)])
        # at H = 8 only seed 0 solves; seed 2 never ran it (it failed 4), so it counts as failed
        + run("PG", 0, 8, [(5000, 5000, 0.1)]) + run("PG", 1, 8, [(9000, 9000, 0.5)])
        + run("DG-K", 0, 4, [(2000, 100, 0.2)]) + run("DG-K", 1, 4, [(2000, 100, 0.1)])
        + run("DG-K", 2, 4, [(4000, 200, 0.2)])
        + run("DG-K", 0, 8, [(3000, 150, 0.2)]) + run("DG-K", 1, 8, [(3000, 150, 0.2)])
        + run("DG-K", 2, 8, [(9000, 450, 0.4)])
        # a series whose median seed fails H = 4
        + run("RAND", 0, 4, [(9000, 270, 0.5)]) + run("RAND", 1, 4, [(9000, 270, 0.5)])
        + run("RAND", 2, 4, [(1000, 30, 0.2)]))
    t = gains_table(curves).set_index(["series", "H"])
    # PG's median at H = 4 is seed 1's 3,000 (seed 2's failure sorts last), not the solved seeds' mean 2,000
    assert t.loc[("PG", 4), "forward_samples"] == 3000 and t.loc[("PG", 4), "solved"] == "2/3"
    assert t.loc[("DG-K", 4), "forward_samples"] == 2000 and t.loc[("DG-K", 4), "backward_passes"] == 100
    assert t.loc[("DG-K", 4), "bound"] == "=" and t.loc[("DG-K", 4), "speedup_c0"] == 1.5
    assert t.loc[("DG-K", 4), "speedup_c8"] == pytest.approx((3000 + 8 * 3000) / (2000 + 8 * 100))
    # H = 8: PG solved 1 of 3 (seed 2's failure implied by H = 4), so its median is only bounded
    # below by what its seeds spent (5,000, 9,000, 9,000): the gate's speedup is at least 3
    assert pd.isna(t.loc[("PG", 8), "forward_samples"]) and t.loc[("PG", 8), "solved"] == "1/3 (1 implied)"
    assert t.loc[("DG-K", 8), "solved"] == "2/3"  # every DG-K seed ran H = 8: none implied
    assert t.loc[("DG-K", 8), "PG_solved"] == "1/3 (1 implied)" and t.loc[("DG-K", 8), "bound"] == ">="
    assert t.loc[("DG-K", 8), "speedup_c0"] == 3 and t.loc[("DG-K", 8), "forward_samples"] == 3000
    assert t.loc[("PG", 8), "bound"] == "–" and pd.isna(t.loc[("PG", 8), "speedup_c0"])  # both medians failed
    # RAND's median seed fails H = 4: PG's 3,000 over what RAND's seeds spent (median 9,000) bounds it above
    assert t.loc[("RAND", 4), "bound"] == "<=" and t.loc[("RAND", 4), "speedup_c0"] == pytest.approx(1 / 3)
    assert pd.isna(t.loc[("RAND", 4), "forward_samples"])
    text = gains_markdown(t.reset_index())
    assert text.splitlines()[0].startswith("| series | H | solved | PG_solved |") and "bound" not in text.splitlines()[0]
    assert "| ≥ 3 |" in text and "| ≤ 0.333 |" in text and "| – |" in text


def test_hstar_per_seed_is_bracketed_by_the_smallest_failure_and_averaged_over_seeds():
    import pandas as pd
    from kondo_bench.figures.hstar_tables import brackets

    def run(label, seed, h, quality):  # one evaluation: solved when quality < 0.25 (reward > 0.75)
        return {"label": label, "seed": seed, "task.horizon": h, "forward_samples": 1000, "backward_units": 1000,
                "quality": quality}

    curves = pd.DataFrame([run("DG", 0, 16, 0.1), run("DG", 0, 32, 0.4), run("DG", 0, 24, 0.2),
                           run("DG", 1, 16, 0.1), run("DG", 1, 32, 0.1),  # nothing failed: a lower bound
                           run("PG", 0, 8, 0.6), run("PG", 0, 4, 0.1), run("PG", 0, 6, 0.3)])
    t = brackets(curves, {"DG": 26.5}).set_index("series")
    assert t.loc["DG", "per_seed"] == "0: 24 [< 32], 1: 32 (none failed)"
    assert t.loc["DG", "hstar_mean"] == 28 and t.loc["DG", "hstar_se"] == pytest.approx(4)
    assert t.loc["DG", "paper"] == 26.5 and pd.isna(t.loc["PG", "paper"])
    assert t.loc["PG", "per_seed"] == "0: 4 [< 6]" and t.loc["PG", "seeds"] == 1 and pd.isna(t.loc["PG", "hstar_se"])

def test_a_dry_run_lists_each_searching_sweeps_next_jobs_and_sweep_picks_some(tmp_path, capsys):
    from kondo_bench.cli import main

    assert main(["figures", "--scale", "paper", "--only", "hstar", "--seeds", "1", "--sweep", "hstar-dg",
                 "--sweep", "hstar-pm*", "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "hstar-dg: next seed=0,task.horizon=4" in out and "hstar-pmpo: next seed=0,task.horizon=4" in out
    assert "hstar-dgk-price0" not in out and "hstar-ppo" not in out
    assert "2 jobs, 0 done, 2 to run" in out  # DG and PMPO, seed 0 only


def test_a_command_runs_the_shortest_proposed_horizons_first(tmp_path):
    """Within one command the search runs its cheapest jobs (shortest H) first, across series
    and seeds, so no short job waits behind a long one; a plain sweep's jobs cost nothing."""
    from kondo_bench.figures.command import cheapest
    from kondo_bench.figures.core import Sweep
    from kondo_bench.figures.jobs import Job, Plan

    search = hsearch.Search(4, 128, 0.25)

    def plan(name, horizons, select=search):
        jobs = [Job([f"seed={s}", f"task.horizon={h}"], tmp_path / name / f"seed={s},task.horizon={h}", None)
                for s, h in horizons]
        return Plan(Sweep(name, (), select), tmp_path / name, [], jobs, tmp_path / f"{name}.jsonl")

    plans = [plan("a", [(0, 128), (1, 8)]), plan("b", [(0, 64), (1, 8), (2, 4)])]
    batch = cheapest(plans, [])
    assert [(p.sweep.name, [j.folder.name for j in p.jobs]) for p in batch] == [("b", ["seed=2,task.horizon=4"])]
    plans[1].jobs.pop()  # H = 4 ran: the two H = 8 jobs of both sweeps come next, together
    assert [[j.folder.name for j in p.jobs] for p in cheapest(plans, [])] == [["seed=1,task.horizon=8"]] * 2
    assert cheapest([plan("c", [])], []) == []
    assert len(cheapest([plan("d", [(0, 9), (1, 3)], select=None)], [])[0].jobs) == 2


def test_a_search_goes_on_with_the_other_series_when_one_series_launch_fails(tmp_path, monkeypatch, capsys):
    """One series' fault costs only that series: its launch failing (e.g. its folder busy with
    another command's run) leaves it alone for the rest of the command, while the other
    series' searches go on, stage by stage, to their end; the command then exits 1."""
    from kondo_bench.cli import main
    from kondo_bench.figures import command, jobs as jobs_module
    from kondo_bench.figures.done import resolved_config
    from kondo_bench.figures.store import read_store, store_path, write_store

    out, launched = tmp_path / "paper", []

    def launch(root, overrides, exclude, verbose, progress=None, finished=None):  # every job solves at once
        launched.append((root.name, [o for o in overrides if o.startswith("task.horizon=")]))
        if root.name == "hstar-pg":
            return 1
        grid, _ = figures.expand(overrides)
        records = read_store(store_path(out, root.name))
        for j in grid:
            name = figures.job_folder(root, j, exclude).name
            records[name] = {"job": name, "overrides": j, "metrics": {}, "summary": {
                "status": "solved", "best_quality": 0.1, "quality_metric": "expected_error",
                "result_config": json.loads(resolved_config(j))}}
        write_store(store_path(out, root.name), records)
        return 0

    monkeypatch.setattr(jobs_module, "launch", launch)
    monkeypatch.setattr(command, "make_figure", lambda *a, **k: ([], 0))  # the search is the point, not the drawing
    code = main(["figures", "--scale", "paper", "--only", "hstar", "--seeds", "1", "--sweep", "hstar-dg",
                 "--sweep", "hstar-pg", "--out", str(tmp_path)])
    assert code == 1
    assert [h for name, h in launched if name == "hstar-pg"] == [["task.horizon=4"]]  # tried once, then left alone
    dg = [h[0] for name, h in launched if name == "hstar-dg"]  # solved everything: up to the ceiling, then H* - 1
    assert dg == [f"task.horizon={h}" for h in (4, 8, 16, 32, 64, 128, 127)]
