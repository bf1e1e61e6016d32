"""scripts/report_numbers.py: the numbers REPORT.md quotes, recomputed from committed figure tables."""

import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "results" / "figures" / "quick"


def test_report_numbers_reproduces_the_tables_means(tmp_path):
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "report_numbers.py"), str(QUICK)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    runs = pd.read_csv(QUICK / "mnist_runs.csv")
    dgk = runs[(runs["sweep"] == "mnist-dgk-keep3")]["final_quality"]
    row = next(line for line in res.stdout.splitlines() if line.startswith("| DG-K ρ=0.03 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == str(len(dgk))
    assert abs(float(cells[2].split(" ± ")[0]) - dgk.mean()) < 1e-3 * dgk.mean()
    for section in ("## Bandit", "## MNIST", "## Token reversal", "## Screening", "## Delight noise", "## Gambling"):
        assert section in res.stdout


def test_report_numbers_says_which_tables_are_missing(tmp_path):
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "report_numbers.py"), str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "mnist: no tables" in res.stdout and "|" not in res.stdout


def test_report_numbers_help_and_a_missing_folder(tmp_path):
    script = [sys.executable, str(ROOT / "scripts" / "report_numbers.py")]
    res = subprocess.run([*script, "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("usage:") and "# Numbers" not in res.stdout
    res = subprocess.run([*script, str(tmp_path / "nope")], capture_output=True, text=True)
    assert res.returncode == 2 and "# Numbers" not in res.stdout
    assert res.stderr.count("\n") == 1 and "is not a folder" in res.stderr
