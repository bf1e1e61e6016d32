"""Parked checkpoints (kondo_bench/figures/parked.py): which copy wins, and what is never
copied. The whole round trip through `kondo-bench figures --park` is in test_figures.py."""

import json

from kondo_bench.checkpoint import CHECKPOINT, read_checkpoint, save_checkpoint
from kondo_bench.figures.done import Job, _canonical
from kondo_bench.figures.parked import drop, park, unpark
from kondo_bench.results import METRICS, read_metrics

CONFIG = {"seed": 0, "task": {"name": "reversal", "horizon": 128}}


def _run(folder, step, config=CONFIG, rows=None):
    """A run folder with a checkpoint at `step` (one metrics row per 100 steps, as eval_every=100,
    and two rows past it unless `rows` says how many the file holds)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = step // 100 + 2 if rows is None else rows
    (folder / METRICS).write_text("".join(json.dumps({"step": 100 * (i + 1)}) + "\n" for i in range(n)))
    save_checkpoint(folder, {"step": step, "task": {}, "counters": {}, "seconds": {}, "stale": 0, "rng": {},
                             "rows": step // 100, "result_config": config})


def _job(folder):
    return Job(["seed=0"], folder, _canonical(CONFIG))


def test_park_copies_the_checkpoint_and_the_rows_it_counts_and_only_a_later_one(tmp_path):
    job = _job(tmp_path / "runs" / "seed=0")
    _run(job.folder, 500)
    assert park(tmp_path / "parked", [job]) == [("seed=0", 500)]
    parked = tmp_path / "parked" / "seed=0"
    assert read_checkpoint(parked / CHECKPOINT)["step"] == 500
    assert [r["step"] for r in read_metrics(parked)] == [100, 200, 300, 400, 500]  # not the 2 rows past it
    assert park(tmp_path / "parked", [job]) == []  # nothing newer
    _run(job.folder, 1000)
    assert park(tmp_path / "parked", [job]) == [("seed=0", 1000)]


def test_unpark_never_replaces_a_later_checkpoint_nor_copies_another_config_or_a_bad_file(tmp_path):
    parked_dir = tmp_path / "parked"
    job = _job(tmp_path / "runs" / "seed=0")
    _run(parked_dir / "seed=0", 500)
    _run(job.folder, 1000)  # this machine got further: its own checkpoint stays
    assert unpark(parked_dir, [job]) == [] and read_checkpoint(job.folder / CHECKPOINT)["step"] == 1000

    other = _job(tmp_path / "runs2" / "seed=0")
    _run(parked_dir / "seed=0", 500, config={**CONFIG, "seed": 1})  # parked by another config
    assert unpark(parked_dir, [other]) == [] and not other.folder.exists()  # no empty folder left either

    _run(parked_dir / "seed=0", 500)
    data = bytearray((parked_dir / "seed=0" / CHECKPOINT).read_bytes())
    data[-5] ^= 0xFF  # a byte flipped: fails its checksum
    (parked_dir / "seed=0" / CHECKPOINT).write_bytes(bytes(data))
    assert unpark(parked_dir, [other]) == [] and not (other.folder / CHECKPOINT).exists()

    _run(parked_dir / "seed=0", 500, rows=3)  # fewer rows than the checkpoint counts
    assert unpark(parked_dir, [other]) == [] and not other.folder.exists()  # the copy began, and left nothing

    _run(parked_dir / "seed=0", 500)
    assert unpark(parked_dir, [other]) == [("seed=0", 500)]
    assert read_checkpoint(other.folder / CHECKPOINT)["step"] == 500 and len(read_metrics(other.folder)) == 5


def test_drop_removes_finished_jobs_and_the_sweep_folder_once_empty(tmp_path):
    parked_dir = tmp_path / "parked"
    a, b = _job(tmp_path / "runs" / "seed=0"), _job(tmp_path / "runs" / "seed=1")
    _run(parked_dir / "seed=0", 500)
    _run(parked_dir / "seed=1", 500)
    drop(parked_dir, [a])
    assert not (parked_dir / "seed=0").exists() and (parked_dir / "seed=1").exists()
    drop(parked_dir, [b])
    assert not parked_dir.exists()
