"""Kill -9 at random moments, torn metrics lines, one writer per run folder."""

import errno
import hashlib
import json
import logging
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import make_cfg
from kondo_bench import cli
from kondo_bench.reliability import (CHECKPOINT, CHECKPOINT_MAGIC, LOCK, FolderBusy, FolderLock, read_checkpoint,
                                     save_checkpoint)
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


def _hold_lock(folder: Path) -> subprocess.Popen:
    """A process that holds the folder's lock until killed. A fresh interpreter, not a fork of
    this (threaded) test process, and its "x" is awaited with a deadline: a wait with no bound
    here would hold the whole suite if the holder never got the lock."""
    code = ("import sys, time; from kondo_bench.reliability import FolderLock; "
            f"FolderLock({str(folder)!r}).__enter__(); print('x', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    if not ready or proc.stdout.readline() != b"x\n":
        proc.kill()
        raise AssertionError(f"the lock holder did not start: {proc.communicate(timeout=30)[1][-2000:]!r}")
    return proc


def test_one_writer_per_folder_and_a_dead_writer_does_not_block(tmp_path, capsys):
    run = tmp_path / "run"
    holder = _hold_lock(run)
    pid = holder.pid
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
        holder.kill()
        holder.wait(timeout=30)
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


# ---- verified checkpoints ----

CKPT_ARGS = ("task=bandit_multi", "task.steps=40", "task.eval_every=10", "checkpoint_every=20", "progress=false",
             "method=dgk", "keep_rate=0.2", "seed=2")


def _cut_with_checkpoint(tmp_path) -> tuple[dict, Path]:
    """An uninterrupted run, and one killed after its step-20 checkpoint (its summary removed)."""
    full = run_experiment(make_cfg(*CKPT_ARGS), tmp_path / "full")
    cut = tmp_path / "cut"
    run_experiment(make_cfg(*CKPT_ARGS), cut)
    (cut / "summary.json").unlink()  # as if killed after the step-20 checkpoint
    assert (cut / CHECKPOINT).exists()
    return full, cut


def _tamper_flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) - 200, len(data) - 100):  # inside the payload's tensors, past the header
        data[i] ^= 0x55
    path.write_bytes(bytes(data))


def _tamper_drop_rng(path: Path) -> None:
    state = read_checkpoint(path)
    del state["rng"]
    save_checkpoint(path.parent, state)  # a valid checksum over a state that lacks a key


def _tamper_drop_task_key(path: Path) -> None:
    state = read_checkpoint(path)
    del state["task"]["optimizer"]
    save_checkpoint(path.parent, state)


@pytest.mark.parametrize("tamper,why", [(_tamper_flip, "does not match its checksum"),
                                         (_tamper_drop_rng, "lacks rng"),
                                         (_tamper_drop_task_key, "does not fit this run's task")])
def test_a_bad_checkpoint_is_set_aside_with_one_warning_and_the_run_starts_over(tmp_path, caplog, tamper, why):
    full, cut = _cut_with_checkpoint(tmp_path)
    tamper(cut / CHECKPOINT)
    with caplog.at_level(logging.WARNING):
        resumed = run_experiment(make_cfg(*CKPT_ARGS), cut)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and CHECKPOINT in r.getMessage()]
    assert len(warnings) == 1 and why in warnings[0] and "set aside as checkpoint.pt.bad-1" in warnings[0], warnings
    assert (cut / f"{CHECKPOINT}.bad-1").exists()  # renamed, not deleted
    assert resumed["status"] == "complete" and resumed["resumed_from_step"] is None
    assert strip(read_metrics(cut)) == strip(read_metrics(tmp_path / "full"))  # from scratch, the same result
    assert resumed["backward_samples"] == full["backward_samples"]
    assert run_experiment(make_cfg(*CKPT_ARGS), cut).get("skipped")  # and not met again on the next rerun


def test_checkpoints_carry_a_checksum_of_their_content(tmp_path):
    save_checkpoint(tmp_path, {"step": 1})
    data = (tmp_path / CHECKPOINT).read_bytes()
    assert data.startswith(CHECKPOINT_MAGIC)
    digest, _, payload = data[len(CHECKPOINT_MAGIC):].partition(b"\n")
    assert hashlib.sha256(payload).hexdigest().encode() == digest


# ---- complete means complete ----

def test_a_complete_runs_truncated_metrics_make_it_incomplete_and_a_rerun_redoes_it(tmp_path, caplog):
    cfg = ("task=bandit", "task.steps=40", "task.eval_every=10", "progress=false")
    run = tmp_path / "sweep" / "0"
    run_experiment(make_cfg(*cfg), run)
    s = json.loads((run / "summary.json").read_text())
    assert s["metrics_rows"] == 4 and len(s["metrics_sha256"]) == 64
    lines = (run / METRICS).read_text().splitlines(keepends=True)
    (run / METRICS).write_text("".join(lines[:2]))  # cut short after the run finished
    tables = load_sweep(tmp_path / "sweep")
    assert tables.runs.empty and tables.curves.empty  # never plotted short
    assert "holds 2 rows, not the 4 its summary recorded" in tables.incomplete["reason"][0]
    with caplog.at_level(logging.WARNING):
        again = run_experiment(make_cfg(*cfg), run)
    assert not again.get("skipped") and again["status"] == "complete" and "running it again" in caplog.text
    assert len(read_metrics(run)) == 4 and len(load_sweep(tmp_path / "sweep").runs) == 1


def test_a_result_field_that_overflowed_fails_the_run(tmp_path, monkeypatch):
    from kondo_bench.accounting import Counters

    as_dict = Counters.as_dict
    monkeypatch.setattr(Counters, "as_dict", lambda self, c: {**as_dict(self, c), "cost": float("inf")})
    s = run_experiment(make_cfg("task=bandit", "task.steps=10", "progress=false"), tmp_path)
    assert s["status"] == "failed" and s["error"].startswith("cost overflowed")
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "failed"


# ---- plain errors for the environment ----

@pytest.mark.parametrize("where,error,expect", [
    ("append", OSError(errno.ENOSPC, "No space left on device", "metrics.jsonl"), "no space left on the disk"),
    ("append", OSError(errno.EROFS, "Read-only file system", "metrics.jsonl"), "on a read-only file system"),
    ("checkpoint", RuntimeError("basic_ios::clear: iostream error"), "cannot write a checkpoint"),
])
def test_a_full_or_read_only_disk_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, where, error, expect):
    from kondo_bench import results, train

    def fail(*args, **kwargs):
        raise error

    if where == "append":
        monkeypatch.setattr(results.RunWriter, "append", fail)
    else:
        monkeypatch.setattr(train, "save_checkpoint", fail)
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "task=bandit", "task.steps=20", "task.eval_every=10", "checkpoint_every=10",
                  f"hydra.run.dir={run}"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and expect in err and "Traceback" not in err, err
    assert not (run / "summary.json").exists()  # nothing that looks complete


def test_a_data_folder_that_does_not_exist_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KONDO_BENCH_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "task=mnist", "task.steps=1", f"hydra.run.dir={tmp_path}/run"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and f"KONDO_BENCH_DATA={tmp_path}/nowhere is not a folder" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args", [["hydra.run.dir="], ["-m", "seed=0,1", "hydra.sweep.dir="]], ids=["run", "sweep"])
def test_an_empty_run_folder_is_refused(tmp_path, capsys, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "task=bandit", "task.steps=1", *args])
    err = capsys.readouterr().err
    key = args[-1].rstrip("=")
    assert exit_.value.code == 2 and err.count("\n") == 1 and f"{key} is empty" in err
    assert list(tmp_path.iterdir()) == []


def test_output_paths_that_cannot_be_written_are_one_line(tmp_path, capsys):
    from kondo_bench.plots import plot_main
    from kondo_bench.summarize import summarize_main

    run_experiment(make_cfg("task=bandit", "task.steps=10", "progress=false"), tmp_path / "sweep" / "0")
    blocker = tmp_path / "file"
    blocker.write_text("")
    for call in (lambda: summarize_main([str(tmp_path / "sweep"), "--out", str(blocker / "table")]),
                 lambda: plot_main([str(tmp_path / "sweep"), "--out", str(blocker / "plots")]),
                 lambda: cli.main(["figures", "--scale", "test", "--only", "bandit", "--out", str(blocker)])):
        capsys.readouterr()
        assert call() == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(blocker) in err and "Traceback" not in err, err


def test_figures_refuses_a_misspelt_key_before_launching_anything(tmp_path, capsys):
    assert cli.main(["figures", "--scale", "test", "--only", "bandit", "--out", str(tmp_path), "task.stepz=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "task.stepz" in err
    assert not any(tmp_path.rglob("*.hydra"))  and not (tmp_path / "test" / "runs").exists()
