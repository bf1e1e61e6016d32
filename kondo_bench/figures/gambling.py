"""Gambling: the single-context bandit with reward noise σ = 2 (the gap is 1) on every arm
(homoskedastic) or on 10 % of the wrong arms only (action-specific): PG, DG and DG-K
(η = 0, λ = 0), error against steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .common import agg_curves, line, panels, seeds_text, steps_text
from .core import Figure, FigureData, Scale, Sweep

GAMBLING_NOISE = 2.0  # reward-noise sigma; the gap between the correct arm and the others is 1
GAMBLING_NOISY_ARMS = 0.1  # action-specific: this fraction of the wrong arms is noisy


def sweeps(s: Scale) -> list[Sweep]:
    base = s.task("bandit", steps=s.pick(quick=400, test=None, default=1000),
                 eval_every=s.pick(quick=10, test=None, default=10),
                 seeds=s.pick(report=10))
    noisy = (f"task.reward_noise={GAMBLING_NOISE:g}", f"task.noisy_arms=1,{GAMBLING_NOISY_ARMS:g}")
    dgk = ("method=dgk", "method.eta=0", "price=0")
    return [Sweep("gambling-clean-ungated", (*base, "method=pg,dg", "task.reward_noise=0")),
            Sweep("gambling-clean-dgk", (*base, *dgk, "task.reward_noise=0")),
            Sweep("gambling-noisy-ungated", (*base, "method=pg,dg", *noisy)),
            Sweep("gambling-noisy-dgk", (*base, *dgk, *noisy))]


def regimes(df: pd.DataFrame) -> list[tuple[str, pd.Series]]:
    noise = df["task.reward_noise"].astype(float)
    arms = df["task.noisy_arms"].astype(float).fillna(1.0) if "task.noisy_arms" in df else pd.Series(1.0, df.index)
    return [("no reward noise", noise == 0),
            (f"homoskedastic: every arm noisy, σ = {GAMBLING_NOISE:g}", (noise > 0) & (arms >= 1)),
            (f"action-specific: {GAMBLING_NOISY_ARMS:.0%} of wrong arms noisy, σ = {GAMBLING_NOISE:g}",
             (noise > 0) & (arms < 1))]


def draw(d: FigureData) -> list[Path]:
    from ..labels import quality_label
    from ..plots import save

    runs, curves = d.runs, d.curves
    styles = {"pg": ("0.3", "PG"), "dg": ("C0", "DG (η = 1)"), "dgk": ("C1", "DG-K λ = 0, η = 0")}
    axes, plt = panels(3)
    for ax, (title, _) in zip(axes, regimes(curves)):
        mask = dict(regimes(curves))[title]
        c = curves[mask]
        agg = agg_curves(c, ["method"], "step")
        for method, (color, lab) in styles.items():
            if (agg["method"] == method).any():
                line(ax, agg[agg["method"] == method], color, lab, logy=False)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("step (batches of 100 pulls)")
        ax.set_ylabel(quality_label("error"))
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        r = runs[dict(regimes(runs))[title]]
        for method, (_, lab) in styles.items():
            v = r.loc[r["method"] == method, "final_quality"].to_numpy(float)
            if len(v):
                d.notes.append(f"{title}: {lab} final error {v.mean():.3g} ± "
                               f"{(v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0):.2g} (n={len(v)})")
    axes[0].legend(fontsize=8)
    plt.gcf().suptitle(f"Gambling: reward noise σ = {GAMBLING_NOISE:g} against a gap of 1 on the single-context "
                       f"bandit (K = 100; scale {d.scale.name}: {steps_text(runs)} steps × 100 pulls; "
                       f"mean over {seeds_text(runs)} seeds ± 1 s.e.)", fontsize=11)
    return save(plt.gcf(), d.stem())


FIGURE = Figure("gambling", "bandit with reward noise: homoskedastic against action-specific, PG, DG, DG-K (λ = 0)",
                sweeps, draw)
