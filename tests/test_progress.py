"""Jobs done / total, failed and an ETA over a sweep's jobs."""

import io
import json

import pytest
from omegaconf import OmegaConf

from kondo_bench.progress import BASIC_SWEEPER, Progress, SweepProgress, eta_seconds, format_duration, grid_size


def test_eta_is_the_remaining_jobs_at_the_pace_of_the_ended_ones():
    assert eta_seconds(ended=0, elapsed=50.0, remaining=10) is None  # nothing to go by yet
    assert eta_seconds(ended=4, elapsed=100.0, remaining=6) == pytest.approx(150.0)
    assert eta_seconds(ended=4, elapsed=100.0, remaining=0) == 0.0
    # two jobs at a time: 4 ended in 100 s of wall-clock is 25 s a job, whatever each took alone
    assert eta_seconds(ended=4, elapsed=100.0, remaining=2) == pytest.approx(50.0)


@pytest.mark.parametrize("seconds, text", [(None, "?"), (0.4, "0 s"), (12, "12 s"), (247, "4 min 07 s"),
                                           (4210, "1 h 10 min"), (36_000, "10 h 00 min")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_plain_lines_at_most_every_interval_and_at_the_end():
    clock, out = Clock(), io.StringIO()  # not a terminal: plain lines, as a log file gets them
    p = Progress(10, skipped=1, label="[mnist] jobs", every=60, stream=out, clock=clock)
    clock.t = 30
    p.ended(ok=True)  # within 60 s of the last line: no line
    clock.t = 70
    p.ended(ok=False)
    p.close()
    assert out.getvalue().splitlines() == [
        "[mnist] jobs: 1/10 done (1 skipped), 0 failed, 0 s elapsed, about ? left",
        # 2 jobs ended in 70 s (the skipped one does not count towards the pace); 7 to go
        "[mnist] jobs: 2/10 done (1 skipped), 1 failed, 1 min 10 s elapsed, about 4 min 05 s left",
        "[mnist] jobs: 2/10 done (1 skipped), 1 failed, 1 min 10 s elapsed, about 4 min 05 s left"]


def test_grid_size_of_a_basic_sweep():
    assert grid_size(["task=bandit", "price=0,0.1,1", "seed=range(0,4)"]) == 12


def test_sweep_callback_counts_the_folder_with_skipped_jobs_done_at_the_start(tmp_path, capsys):
    def finish(job, status):
        (tmp_path / job).mkdir()
        (tmp_path / job / "summary.json").write_text(json.dumps({"status": status}))

    finish("0", "complete")  # from an earlier attempt: skipped by this one
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}, "sweeper": {"_target_": BASIC_SWEEPER},
                                         "overrides": {"task": ["method=pg,dg", "seed=0,1"]}}})
    cb = SweepProgress(every=0, poll=3600)
    cb.on_multirun_start(config)
    finish("1", "complete")
    cb.on_job_end(config, None)
    finish("2", "failed")
    cb.on_multirun_end(config)
    lines = [line.rsplit(" elapsed", 1)[0] for line in capsys.readouterr().err.splitlines()]
    assert lines == [f"sweep {tmp_path}: 1/4 done (1 skipped), 0 failed, 0 s",
                     f"sweep {tmp_path}: 2/4 done (1 skipped), 0 failed, 0 s",
                     f"sweep {tmp_path}: 2/4 done (1 skipped), 1 failed, 0 s",
                     f"sweep {tmp_path}: 2/4 done (1 skipped), 1 failed, 0 s"]


def test_sweep_callback_pickles_for_the_joblib_and_submitit_launchers():
    import pickle

    cb = pickle.loads(pickle.dumps(SweepProgress(every=5, poll=1)))
    assert (cb.every, cb.poll, cb.progress) == (5, 1, None)
