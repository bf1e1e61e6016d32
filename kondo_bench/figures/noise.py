"""Approximate delight: DG and DG-K (ρ = 0.1) with relative noise σ on the delight they see
(χ·(1 + σ·N(0, 1))): final MNIST test error against σ, PG as the reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .common import agg_curves, footer, line, mnist_source_note, panels, seeds_text, steps_text
from .core import Figure, FigureData, Scale, Sweep

DELIGHT_NOISE = [0, 0.25, 0.5, 1, 2]
NOISE_KEEP_RATE = 0.1


def sweeps(s: Scale) -> list[Sweep]:
    base = s.task("mnist", steps=s.pick(quick=1500, report=5000), seeds=s.pick(quick=2, report=3, paper=5))
    noise = "method.delight_noise=" + ",".join(f"{v:g}" for v in DELIGHT_NOISE)
    return [Sweep("noise-pg", (*base, "method=pg")),
            Sweep("noise-dg", (*base, "method=dg", noise)),
            Sweep("noise-dgk", (*base, "method=dgk", f"keep_rate={NOISE_KEEP_RATE:g}", noise))]


def noise_level(df: pd.DataFrame) -> pd.Series:
    return df["method.delight_noise"].astype(float) if "method.delight_noise" in df else pd.Series(0.0, df.index)


def draw(d: FigureData) -> list[Path]:
    from ..labels import METHOD_NAMES, quality_label
    from ..plots import save, tidy_axes

    runs, curves = d.runs.assign(sigma=noise_level(d.runs)), d.curves.assign(sigma=noise_level(d.curves))
    axes, plt = panels(3)
    ax = axes[0]
    names = {"dg": "DG (η = 1)", "dgk": f"DG-K top-ρ, ρ = {NOISE_KEEP_RATE:g}"}
    colors = {"dg": "C0", "dgk": "C1"}
    pg = runs[runs["method"] == "pg"]["final_quality"].to_numpy(float)
    if len(pg):
        se = pg.std(ddof=1) / np.sqrt(len(pg)) if len(pg) > 1 else 0.0
        ax.axhspan(pg.mean() - se, pg.mean() + se, color="0.3", alpha=0.15, lw=0)
        ax.axhline(pg.mean(), color="0.3", ls="--", lw=1.2, label="PG (no delight; ± 1 s.e.)")
        d.notes.append(f"PG: final test error {pg.mean():.4f} ± {se:.4f} (n={len(pg)})")
    for method in ("dg", "dgk"):
        r = runs[runs["method"] == method]
        if r.empty:
            continue
        g = r.groupby("sigma")["final_quality"]
        mean, se, n = g.mean(), g.sem().fillna(0), g.size()
        ax.errorbar(mean.index, mean, yerr=se, fmt="o-", color=colors[method], capsize=3, lw=1.5, ms=6,
                    label=names[method], zorder=3)
        ax.scatter(r["sigma"] + (0.02 if method == "dgk" else -0.02), r["final_quality"], s=10,
                   color=colors[method], alpha=0.4, zorder=2)
        d.notes.append(f"{METHOD_NAMES[method]}: final test error by delight noise σ: " + ", ".join(
            f"σ={k:g} {mean[k]:.4f} ± {se[k]:.4f}" for k in mean.index) + f" (n={n.min()})")
    ax.set_xlabel("delight noise σ (the weight and gate see χ·(1 + σ·N(0, 1)))")
    ax.set_ylabel(f"final {quality_label('test_error')} (MNIST, {steps_text(runs)} steps)")
    ax.set_xticks(DELIGHT_NOISE, [f"{v:g}" for v in DELIGHT_NOISE])
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("final test error against delight noise σ", fontsize=10)
    levels = sorted(curves.loc[curves["method"] != "pg", "sigma"].dropna().unique())
    cmap = plt.get_cmap("viridis")
    shade = {v: cmap(0.9 * i / max(1, len(levels) - 1)) for i, v in enumerate(levels)}
    for ax, method in zip(axes[1:], ("dg", "dgk")):
        c = curves[curves["method"] == method]
        if c.empty:
            continue
        agg = agg_curves(c, ["sigma"])
        for v in levels:
            if (agg["sigma"] == v).any():
                line(ax, agg[agg["sigma"] == v], shade[v], f"σ = {v:g}")
        p = curves[curves["method"] == "pg"]
        if not p.empty:
            line(ax, agg_curves(p, ["method"]), "0.3", "PG", lw=1.2, ls="--")
        ax.set_yscale("log")
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xlabel("forward samples (images screened)")
        ax.set_ylabel(quality_label("test_error"))
        ax.set_title(f"{names[method]}: test error against forward samples", fontsize=10)
        ax.legend(fontsize=8, title="delight noise", title_fontsize=8)
        tidy_axes(ax)
    fig = plt.gcf()
    fig.suptitle(f"Approximate delight on MNIST: relative noise σ on χ (scale {d.scale.name}: {steps_text(runs)} steps "
                 f"× 100 images; mean over {seeds_text(runs)} seeds ± 1 s.e.)", fontsize=11)
    footer(fig, mnist_source_note(d, runs))
    return save(fig, d.stem())


FIGURE = Figure("noise", "MNIST final test error against relative delight noise σ, DG and DG-K (ρ = 0.1)", sweeps, draw)
