"""Kill -9 at random moments, torn metrics lines, one writer per run folder."""

import json
import logging
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch

from conftest import make_cfg
from kondo_bench import cli
from kondo_bench.reliability import LOCK, FolderBusy, FolderLock
from kondo_bench.results import METRICS, read_metrics
from kondo_bench.sweeps import load_sweep
from kondo_bench.train import run_experiment

ARGS = ("task=bandit_multi", "task.steps=300", "task.eval_every=10", "checkpoint_every=20", "progress=false",
        "method=dgk", "keep_rate=0.2", "seed=3", "device=cpu", "device.threads=1")
TORN = '{"step": 1000, "forward_sam'


def _fork(job) -> int:
    """Run job in a forked child (torch is already imported: no start-up cost); returns its pid.
    One torch thread in the child, as DataLoader workers do, so no OpenMP pool crosses the fork."""
    pid = os.fork()
    if pid == 0:
        try:
            torch.set_num_threads(1)
            job()
        finally:
            os._exit(0)
    return pid


def strip(rows):
    """The quality and count columns: everything but the timers."""
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows]


def lines_in(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


def test_sigkill_at_random_moments_then_resume_equals_the_uninterrupted_run(tmp_path):
    """Three kill -9 at random moments of a checkpointing run (the second leaves a torn last
    line), each followed by a resume; the end result equals an uninterrupted run's."""
    cfg = make_cfg(*ARGS)
    full = run_experiment(cfg, tmp_path / "full")
    duration = full["wall_seconds"]  # the loop's time: about a second on a loaded 2-core machine
    cut, rng = tmp_path / "cut", random.Random()
    moments = []
    for kill in range(3):
        left = 1 - len(read_metrics(cut)) / len(read_metrics(tmp_path / "full"))  # a resume has less to do
        pid = _fork(lambda: run_experiment(cfg, cut))
        time.sleep(rng.uniform(0, 0.8 * duration * left))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        moments.append((lines_in(cut / METRICS), os.waitstatus_to_exitcode(status),
                        (cut / "summary.json").exists()))
        if kill == 1:  # as if killed in the middle of writing a row
            with open(cut / METRICS, "a") as f:
                f.write(TORN)
    assert not moments[0][2], f"the run finished before its first kill: {moments}"
    resumed = run_experiment(cfg, cut)
    assert resumed["status"] == "complete", moments
    assert strip(read_metrics(cut)) == strip(read_metrics(tmp_path / "full")), moments
    for key in ("forward_samples", "backward_samples", "backward_units", "final_quality", "optimizer_steps"):
        assert resumed[key] == full[key], (key, moments)
    assert not list(cut.glob(".*.tmp"))  # no temporary of an interrupted atomic write is left


def test_torn_last_line_is_dropped_with_a_warning_by_every_reader(tmp_path, caplog):
    run = tmp_path / "sweep" / "0"
    run_experiment(make_cfg("task=bandit", "task.steps=30", "progress=false"), run)
    rows = read_metrics(run)
    with open(run / METRICS, "a") as f:
        f.write(TORN)
    with caplog.at_level(logging.WARNING):
        assert read_metrics(run) == rows
    assert "torn last line" in caplog.text
    tables = load_sweep(tmp_path / "sweep")  # what summarize, plot and figures read
    assert len(tables.runs) == 1 and len(tables.curves) == len(rows)


def test_a_resume_over_a_torn_line_continues_from_the_checkpoint(tmp_path):
    args = ("task=bandit", "task.steps=40", "task.eval_every=10", "checkpoint_every=20", "progress=false")
    full = run_experiment(make_cfg(*args), tmp_path / "full")
    cut = tmp_path / "cut"
    run_experiment(make_cfg(*args), cut)
    (cut / "summary.json").unlink()  # as if killed after the step-30 row, mid-way through the next one
    with open(cut / METRICS, "a") as f:
        f.write(TORN)
    resumed = run_experiment(make_cfg(*args), cut)
    assert resumed["resumed_from_step"] == 20 and resumed["backward_samples"] == full["backward_samples"]
    assert strip(read_metrics(cut)) == strip(read_metrics(tmp_path / "full"))
    assert TORN not in (cut / METRICS).read_text()


def _hold_lock(folder: Path) -> int:
    """A child process that holds the folder's lock until killed; returns its pid."""
    read, write = os.pipe()

    def hold():
        FolderLock(folder).__enter__()
        os.write(write, b"x")
        time.sleep(120)

    pid = _fork(hold)
    os.close(write)
    assert os.read(read, 1) == b"x"
    os.close(read)
    return pid


def test_one_writer_per_folder_and_a_dead_writer_does_not_block(tmp_path, capsys):
    run = tmp_path / "run"
    pid = _hold_lock(run)
    try:
        with pytest.raises(FolderBusy, match=f"process {pid}"):
            run_experiment(make_cfg("task=bandit", "task.steps=5"), run)
        before = sorted(p.name for p in run.iterdir())
        with pytest.raises(SystemExit) as exit_:
            cli.main(["run", "task=bandit", "task.steps=5", f"hydra.run.dir={run}"])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1 and f"being written by process {pid}" in err
        assert sorted(p.name for p in run.iterdir()) == before == [LOCK]  # Hydra wrote nothing there
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    # the lock of a dead process (kill -9) does not count
    assert run_experiment(make_cfg("task=bandit", "task.steps=5", "progress=false"), run)["status"] == "complete"
    assert json.loads((run / "summary.json").read_text())["status"] == "complete"


def test_a_complete_run_of_another_config_is_refused_before_hydra_touches_it(tmp_path, capsys):
    run = tmp_path / "run"
    run_experiment(make_cfg("task=bandit", "task.steps=5", "progress=false"), run)
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "task=bandit", "task.steps=6", f"hydra.run.dir={run}"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "a complete run of a different config" in err
    assert sorted(p.name for p in run.iterdir()) == before  # no .hydra/ of the refused config, no log
