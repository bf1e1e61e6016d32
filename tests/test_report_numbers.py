"""scripts/report_numbers.py: the numbers REPORT.md quotes, recomputed from committed figure tables."""

import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "results" / "figures" / "quick"
REPORT = ROOT / "results" / "figures" / "report"  # the VAE figures have report-scale tables


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


def test_report_numbers_gives_the_vae_at_four_points_of_the_run_and_the_gates_reach(tmp_path):
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "report_numbers.py"), str(REPORT)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    runs, curves = pd.read_csv(REPORT / "vae_anneal_runs.csv"), pd.read_csv(REPORT / "vae_anneal_curves.csv")
    silent = runs[(runs["method"] == "silent") & (runs["task.latent"] == "gaussian")]
    section = res.stdout.split("## VAE claim 2")[1].split("##")[0]
    row = next(line for line in section.splitlines() if line.startswith("| Silent → reparam |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    header = [c.strip() for c in section.splitlines()[1].strip("|").split("|")]
    assert header[2:6] == ["step 200", "step 400", "step 1,000", "final"]  # a tenth, a fifth, half, all of 2,000
    at = curves[curves["run"].isin(silent["run"]) & (curves["step"] == 400)]["quality"]
    assert len(at) == len(silent) == int(cells[1])
    assert abs(float(cells[3].split(" ± ")[0]) - at.mean()) < 1e-3 * abs(at.mean())
    assert abs(float(cells[5].split(" ± ")[0]) - silent["final_quality"].mean()) < 1e-3 * abs(silent["final_quality"].mean())
    reach = next(line for line in res.stdout.splitlines() if "to reach −ELBO 170" in line)
    assert "DG-K ρ=0.03 " in reach and "(forward " in reach


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
