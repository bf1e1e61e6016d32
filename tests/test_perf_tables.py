"""The performance tables in README.md and docs/performance.md are generated from results/*.csv
(scripts/perf_tables.py): each block matches what its CSV renders today, and a changed CSV
changes the rendering (so the check could fail)."""

from __future__ import annotations

import csv
import importlib.util
import shutil

import pytest

from conftest import REPO

spec = importlib.util.spec_from_file_location("perf_tables", REPO / "scripts" / "perf_tables.py")
perf_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(perf_tables)


def test_every_generated_block_matches_its_csv():
    stale = []
    for name in perf_tables.FILES:
        path = REPO / name
        if path.exists():
            stale += [f"{name}: {c}" for c in perf_tables.render_file(path.read_text())[1]]
    assert not stale, f"run python scripts/perf_tables.py --write: {stale}"


def test_the_blocks_are_there():
    """README carries the default-runs table and the regime sentence; the docs page every table."""
    readme = (REPO / "README.md").read_text()
    for name in ("bench-core", "regime-sentence"):
        assert f"<!-- generated: {name} -->" in readme, name
    docs = REPO / "docs" / "performance.md"
    if docs.exists():
        for name in perf_tables.RENDER:
            assert f"<!-- generated: {name} -->" in docs.read_text(), name


def test_a_changed_csv_cell_makes_the_block_stale(tmp_path, monkeypatch):
    results = tmp_path / "results"
    shutil.copytree(REPO / "results", results, ignore=shutil.ignore_patterns("figures", "*.md"))
    monkeypatch.setattr(perf_tables, "REPO", tmp_path)
    text = f"<!-- generated: bench-core -->\n{perf_tables.bench_core()}<!-- end generated: bench-core -->\n"
    assert perf_tables.render_file(text)[1] == []
    rows = list(csv.DictReader(open(results / "bench_core_cpu.csv")))
    rows[-1]["backward_samples"] = str(int(rows[-1]["backward_samples"]) + 1)
    with open(results / "bench_core_cpu.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    new, changed = perf_tables.render_file(text)
    assert changed == ["bench-core"] and f"{int(rows[-1]['backward_samples']):,}" in new


def test_an_unknown_block_is_refused():
    with pytest.raises(SystemExit, match="unknown generated block 'nope'"):
        perf_tables.render_file("<!-- generated: nope -->\nx\n<!-- end generated: nope -->\n")
