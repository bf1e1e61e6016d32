"""The VAE figures (kondo_bench/figures/vae_*.py): their grids, and each draw on synthetic tables.

The figures' pipeline on real runs is exercised by README's `kondo-bench figures` command
(tests/test_readme.py, at test scale)."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import make_cfg
from kondo_bench import figures
from kondo_bench.figures import common, vae_anneal
from kondo_bench.validation import validate

NAMES = ("vae_linear", "vae_anneal", "vae_gate")


def jobs(fig: str, scale: str) -> dict[str, list[dict]]:
    out = {}
    for sweep in figures.FIGURES[fig].sweeps(figures.SCALES[scale]):
        grid, _ = figures.expand(sweep.overrides)
        out[sweep.name] = [dict(o.split("=", 1) for o in job) for job in grid]
    return out


def test_registered_and_listed_by_the_cli(capsys):
    names = list(figures.FIGURES)
    assert names[names.index(NAMES[0]):][:3] == list(NAMES)  # together, in order (lm, beyond the paper, follows)
    from kondo_bench.cli import main
    assert main(["figures", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the epilog that lists the figures
    assert all(f"{name}: VAE claim" in out for name in NAMES), out


@pytest.mark.parametrize("scale", ["test", "report"])
def test_grids_are_valid_runs_with_the_claims_seeds(scale):
    steps = figures.SCALES[scale].budgets["vae"].steps
    seen = {}
    for fig in NAMES:
        for name, grid in jobs(fig, scale).items():
            seen.setdefault(name, grid)
            assert seen[name] == grid or fig == "vae_gate", name  # a shared sweep is the same jobs
            assert all(j["task"] == "vae" and j["task.steps"] == str(steps) for j in grid)
            cfg = make_cfg(*(f"{k}={v}" for k, v in grid[-1].items()))
            validate(cfg)  # each sweep's last job is a run the CLI accepts
            if cfg.method.name == "silent" and fig == "vae_anneal":
                assert cfg.method.anneal_steps == steps // 2 or steps < 2
    seeds = lambda fig, sweep: len({j["seed"] for j in jobs(fig, scale)[sweep]})  # noqa: E731
    assert seeds("vae_anneal", "vae-categorical-silent") == vae_anneal.ANNEAL_SEEDS[scale]
    assert (scale != "report" or vae_anneal.ANNEAL_SEEDS[scale] >= 5) and seeds("vae_gate", "vae-gate-dg") == \
        figures.SCALES[scale].budgets["vae"].seeds
    linear = [j for js in jobs("vae_linear", scale).values() for j in js]
    assert {j["method"] for j in linear} == {"silent", "reparam", "pg"}
    assert all(j["task.decoder"] == "linear" and j["task.latent"] == "gaussian" for j in linear)
    rates = {j["keep_rate"] for j in jobs("vae_gate", scale)["vae-gate-random"]}
    assert rates == {j["keep_rate"] for j in jobs("vae_gate", scale)["vae-gate-dgk"]}  # the control: equal rates


def synthetic(rows: list[dict], steps=(100, 200)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs and curves tables shaped like load_sweep's, for the given configurations x 2 seeds."""
    runs, curves = [], []
    for i, cfg in enumerate(rows):
        for seed in (0, 1):
            run = f"sweep{i}/seed={seed}"
            final = 100 + i + seed
            backward = 40_000 if cfg.get("gate") == "topk" else 400_000
            runs.append({"run": run, "task": "vae", "seed": seed, "gate": "none", "price": np.nan, "keep_rate": np.nan,
                         "steps": steps[-1], "final_quality": final, "backward_samples": backward,
                         "task.latent": "categorical", **cfg})
            for k, s in enumerate(steps):
                curves.append({"run": run, "step": s, "quality": final + 10 * (len(steps) - k - 1),
                               "forward_samples": 200 * s, "backward_samples": backward * s // steps[-1],
                               "encoder_grad_var": 0.0 if cfg.get("method.schedule") == "constant" else 5.0 + k,
                               "method": cfg["method"]})
    return pd.DataFrame(runs), pd.DataFrame(curves)


DRAWS = {
    "vae_linear": [{"method": "silent", "method.schedule": "constant", "task.latent": "gaussian"},
                   {"method": "reparam", "task.latent": "gaussian"}, {"method": "pg", "task.latent": "gaussian"}],
    "vae_anneal": [{"method": "reparam", "task.latent": "gaussian"},
                   {"method": "silent", "task.latent": "gaussian", "method.anneal_steps": 100},
                   {"method": "gumbel"}, {"method": "pg"},
                   {"method": "silent", "method.into": "gumbel", "method.anneal_steps": 100},
                   {"method": "silent", "method.into": "pg", "method.anneal_steps": 100}],
    "vae_gate": [{"method": "pg"}, {"method": "dg"}, {"method": "gumbel"},
                 {"method": "dgk", "gate": "topk", "keep_rate": 0.1, "method.signal": "delight"},
                 {"method": "dgk", "gate": "topk", "keep_rate": 0.1, "method.signal": "random"}],
}


@pytest.mark.parametrize("fig", NAMES)
def test_each_draw_on_synthetic_tables(fig, tmp_path):
    runs, curves = synthetic(DRAWS[fig])
    data = figures.FigureData(fig, figures.SCALES["test"], tmp_path, runs, curves, pd.DataFrame())
    files = figures.FIGURES[fig].draw(data)
    png = next(p for p in files if p.suffix == ".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    notes = "\n".join(data.notes)
    if fig == "vae_linear":
        assert "Silent (w = 1: exact gradient): final test −ELBO 100.50 ± 0.50 (n=2)" in notes
        assert "gradient variance exactly 0 in 100% of the evaluations" in notes and "exactly 0 in 0%" in notes
    if fig == "vae_anneal":  # silent (configuration 1, 4, 5) against its baseline (0, 2, 3): +1, +2, +2 nats
        assert "gaussian code, Silent → reparam minus reparam alone: final test −ELBO +1.00" in notes
        assert "Silent → REINFORCE (PG) minus REINFORCE (PG) alone: final test −ELBO +2.00" in notes
    if fig == "vae_gate":
        assert "DG-K ρ=0.1: " in notes and "random gate ρ=0.1: " in notes and "Gumbel" not in notes
        assert "encoder backward samples 40,000" in notes


def test_labels_name_what_ran():
    row = {"method": "silent", "task.latent": "gaussian", "method.into": None}
    assert common.vae_label(row) == "Silent → reparam"
    assert common.vae_label({"method": "silent", "method.schedule": "constant"}) == "Silent (w = 1: exact gradient)"
    assert common.vae_label({"method": "dgk", "gate": "price", "price": 0.0}) == "DG-K λ=0"
    assert common.vae_label({"method": "gumbel", "method.straight_through": True}) == "Gumbel-Softmax (ST)"
    assert json.dumps(common.vae_into({"method": "silent", "method.into": float("nan")})) == '"gumbel"'
