"""scripts/form_compare.py: two forms' curve tables compared at one step, per run and per series."""

from __future__ import annotations

import csv
import importlib.util

import pytest

from conftest import REPO

spec = importlib.util.spec_from_file_location("form_compare", REPO / "scripts" / "form_compare.py")
form_compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(form_compare)


def write(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, ["run", "step", "expected_error", "cumulative_error"])
        w.writeheader()
        w.writerows(rows)


def rows(errors: dict[str, float], step: int = 300) -> list[dict]:
    out = []
    for run, e in errors.items():
        out += [{"run": run, "step": s, "expected_error": e * (2 if s < step else 1), "cumulative_error": 0.1}
                for s in (step - 100, step)]
    return out


def test_medians_and_ranks_per_series_at_the_step(tmp_path):
    a, b, out = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "t.md"
    write(a, rows({"s/method=pg,seed=0": 0.1, "s/method=pg,seed=1": 0.3, "s/method=dg,seed=0": 0.01,
                   "s/method=dg,seed=1": 0.03, "k/seed=0": 0.5}))
    # the official form swaps PG and DG; a run only one table has is left out
    write(b, rows({"s/method=pg,seed=0": 0.001, "s/method=pg,seed=1": 0.003, "s/method=dg,seed=0": 0.2,
                   "s/method=dg,seed=1": 0.4, "k/seed=0": 0.05, "k/seed=9": 0.9}))
    assert form_compare.main(["--default", str(a), "--official", str(b), "--step", "300", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| s/method=dg | 2 | 2.00e-02 | 1 | 3.00e-01 | 3 |" in text
    assert "| s/method=pg | 2 | 2.00e-01 | 2 | 2.00e-03 | 1 |" in text
    assert "| k | 1 | 5.00e-01 | 3 | 5.00e-02 | 2 |" in text
    assert "k/seed=9" not in text


def test_a_step_neither_table_has_is_one_line(tmp_path):
    a = tmp_path / "a.csv"
    write(a, rows({"s/seed=0": 0.1}))
    with pytest.raises(SystemExit, match="no run has an evaluation at that step"):
        form_compare.main(["--default", str(a), "--official", str(a), "--step", "7"])
    with pytest.raises(SystemExit, match="no curve table at"):
        form_compare.main(["--default", str(tmp_path / "none.csv"), "--official", str(a)])
