"""The benchmark scripts run and write the rows the docs' tables are generated from: every row
says where it was measured (threads, CPU model, load average). Tiny budgets; no timing is judged."""

from __future__ import annotations

import csv
import sys

import torch

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import bench_speed  # noqa: E402
import profile_step  # noqa: E402
import step_overhead  # noqa: E402
from benchtable import interleaved  # noqa: E402

MACHINE = ("threads", "cpu", "cpus", "load_avg_1m", "torch", "date")
TINY = ["task=reversal", "task.horizon=3", "task.d_model=16", "task.ffn=32", "task.layers=1", "task.heads=2"]


def test_interleaved_visits_every_fn_each_round_in_rotated_order():
    calls = []
    t = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=2, calls=1, warmup=0)
    assert calls == ["a", "b", "b", "a"] and all(len(v["wall"]) == len(v["cpu"]) == 2 for v in t.values())


def test_profile_step_writes_phases_and_ops(tmp_path, monkeypatch):
    monkeypatch.setitem(profile_step.CASES, "reversal", (TINY, profile_step.CASES["reversal"][1]))
    out, ops = tmp_path / "p.csv", tmp_path / "o.csv"
    assert profile_step.main(["--cases", "reversal", "--rounds", "1", "--calls", "10", "--top", "3",
                              "--out", str(out), "--ops-out", str(ops)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert {r["method"] for r in rows} == {"pg", "dgk-0.1-token", "dgk-0.1-sequence"}
    for r in rows:
        assert all(r[k] for k in MACHINE) and r["threads"] == "1"
        gated = r["gated"] == "True"
        assert (float(r["reforward_ms"]) > 0) == gated and (float(r["gather_ms"]) > 0) == gated
    assert len(list(csv.DictReader(open(ops)))) == 3 * 3
    torch.set_num_threads(1)


def test_bench_speed_rows_carry_both_clocks_and_the_machine():
    torch.set_num_threads(1)
    from kondo_bench.config import register

    register()
    rows = bench_speed.bench(TINY, "tiny", 20, "cpu", rounds=1, calls=1, keep_rates=(0.1,), bf16=False)
    assert {(r["clock"], r["gate_unit"]) for r in rows} == {(c, u) for c in ("wall", "cpu") for u in ("token", "sequence")}
    for r in rows:
        assert all(r[k] is not None for k in MACHINE)
        assert r["ideal"] > 0 and r["realised_over_ideal"] > 0 and r["speedup"] > 0


def test_step_overhead_splits_the_gated_step_against_its_bound(tmp_path, monkeypatch):
    monkeypatch.setitem(step_overhead.CASES, "tiny", ([*TINY, "task.batch_size=20"], (0.1,)))
    out = tmp_path / "s.csv"
    assert step_overhead.main(["--cases", "tiny", "--rounds", "1", "--budget", "0", "--out", str(out)]) == 0
    (row,) = list(csv.DictReader(open(out)))
    assert all(row[k] for k in MACHINE) and row["threads"] == "1" and row["k"] == "2"
    assert all(float(row[k]) > 0 for k in ("dg_vs_plain", "realised_over_ideal", "fixed", "compose", "library"))
    torch.set_num_threads(1)
