"""The `gateform` study's grid, labels and table, without running it."""

import numpy as np
import pandas as pd
import pytest

from kondo_bench.figures import gateform as gf
from kondo_bench import figures
from test_figures import config, grid


def test_report_grid_has_every_form_at_the_same_keep_rate_and_resolves():
    sweeps = grid("gateform", "report")
    jobs = [j for js in sweeps.values() for j in js]
    assert len(jobs) == 12 * 3 and {j["seed"] for j in jobs} == {"0", "1", "2"}
    assert {j["task.steps"] for j in jobs} == {"2000"}
    gated = [j for j in jobs if j["method"] == "dgk"]
    assert {j["keep_rate"] for j in gated} == {"0.03"}
    labels = set()
    for j in jobs:
        if j["seed"] != "0":
            continue
        c = config(j)
        row = {"gate": c["method"]["gate"] if j["method"] == "dgk" else "none", "keep_rate": c["keep_rate"],
               "eta": c["method"]["eta"], **{f"method.{k}": v for k, v in c["method"].items()}}
        labels.add(gf.form_label(row))
    assert labels == {"DG (ungated)", "top-k, ties random", "top-k, ties all", "random gate ρ = 0.03",
                      *(f"Bernoulli (quantile) η = {e:g}" for e in gf.ETAS),
                      "top-k, ties random + DG weight", "Bernoulli (quantile) η = 1 + DG weight",
                      "sequence top-k (mean delight)", "sequence top-k (sum delight)"}


def test_table_reads_the_error_at_the_budget_and_counts_per_form(tmp_path):
    runs = pd.DataFrame([
        {"run": "a", "gate": "topk", "keep_rate": 0.03, "eta": 1.0, "method.ties": "random", "method.signal": "delight",
         "final_quality": 0.4, "forward_samples": 200_000, "backward_units": 6000, "backward_samples": 2000,
         "wall_seconds": 10.0},
        {"run": "b", "gate": "topk", "keep_rate": 0.03, "eta": 1.0, "method.ties": "random", "method.signal": "delight",
         "final_quality": 0.2, "forward_samples": 200_000, "backward_units": 6000, "backward_samples": 1000,
         "wall_seconds": 12.0},
        {"run": "c", "gate": "none", "keep_rate": None, "eta": 1.0, "final_quality": 0.0,
         "forward_samples": 200_000, "backward_units": 200_000, "backward_samples": 20_000, "wall_seconds": 20.0}])
    curves = pd.DataFrame({"run": ["a", "a", "b", "b", "c", "c"], "forward_samples": [100_000, 200_000] * 3,
                           "seq_error": [0.5, 0.4, 0.3, 0.2, 0.01, 0.0]})
    d = figures.FigureData("gateform", figures.SCALES["test"], tmp_path, runs, curves, pd.DataFrame())
    t = gf.table(d)
    assert list(t.index) == ["DG (ungated)", "top-k, ties random"]  # DG first, as the reference
    topk = t.loc["top-k, ties random"]
    assert topk["error_at_0.1M"] == pytest.approx(0.4) and topk["final_error"] == pytest.approx(0.3)
    assert topk["error_at_0.1M_se"] == pytest.approx(np.std([0.5, 0.3], ddof=1) / np.sqrt(2))
    assert topk["backward_sequences"] == 1500 and t.loc["DG (ungated)", "seeds"] == 1
