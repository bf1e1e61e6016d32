"""Screening signals at equal keep rate: DG-K's top-ρ gate at one keep rate, screening on
delight against the other signals (random, advantage, |advantage|, surprisal, additive
α·U + (1 − α)·ℓ), on MNIST (final test error per signal; learning curves) and on the
single-context bandit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .common import agg_curves, footer, line, mnist_source_note, seeds_text, steps_text
from .core import Figure, FigureData, Scale, Sweep

SIGNALS = ["delight", "random", "advantage", "abs_advantage", "surprisal", "additive"]
SIGNAL_ALPHA = 0.5
SIGNAL_STYLE = {  # colour, marker; delight stands out, random is the grey control
    "delight": ("C3", "o"), "random": ("0.45", "x"), "advantage": ("C0", "s"),
    "abs_advantage": ("C9", "D"), "surprisal": ("C2", "^"), "additive": ("C4", "v")}


def signal_label(sig: str, runs: pd.DataFrame) -> str:
    if sig == "additive":
        alpha = runs["method.signal_alpha"].dropna().unique() if "method.signal_alpha" in runs else [SIGNAL_ALPHA]
        return f"additive αU+(1−α)ℓ, α={alpha[0]:g}" if len(alpha) == 1 else "additive"
    return {"delight": "delight χ = Uℓ", "abs_advantage": "|advantage|", "advantage": "advantage U",
            "surprisal": "surprisal ℓ", "random": "random (control)"}.get(sig, sig)


def signal_tick(sig: str, runs: pd.DataFrame) -> str:
    ticks = {"delight": "delight\nχ = Uℓ", "random": "random\n(control)", "advantage": "advantage\nU",
             "abs_advantage": "|advantage|\n|U|", "surprisal": "surprisal\nℓ"}
    return ticks.get(sig) or signal_label(sig, runs).replace(" αU+(1−α)ℓ, ", "\n")


def sweeps(s: Scale) -> list[Sweep]:
    rates = s.pick(paper="0.03,0.1", report="0.03", default="0.1")
    gate = ("method=dgk", f"keep_rate={rates}", f"method.signal={','.join(SIGNALS)}",
            f"method.signal_alpha={SIGNAL_ALPHA}")
    return [Sweep("screening-mnist", (*s.task("mnist", seeds=s.pick(report=3, paper=5)), *gate)),
            Sweep("screening-bandit", (*s.task("bandit"), *gate))]


def signals(df: pd.DataFrame) -> list[str]:
    have = set(df["method.signal"])
    return [s for s in SIGNALS if s in have] + sorted(have - set(SIGNALS))


def draw(d: FigureData) -> list[Path]:
    import matplotlib.pyplot as plt

    from ..labels import quality_label
    from ..plots import save, tidy_axes

    runs, curves = d.runs, d.curves
    mnist, bandit = runs[runs["task"] == "mnist"], runs[runs["task"] == "bandit"]
    rates = sorted(runs["keep_rate"].dropna().unique())
    fig, axes = plt.subplots(len(rates), 3, figsize=(16.5, 4.4 * len(rates)), squeeze=False, layout="constrained")
    for row, rho in zip(axes, rates):
        at = runs[runs["keep_rate"] == rho]
        cur = curves[curves["keep_rate"] == rho]
        # (a) MNIST final test error per signal: mean ± s.e., each seed as a dot
        ax = row[0]
        m = at[at["task"] == "mnist"]
        sigs = signals(m) if len(m) else []
        for i, sig in enumerate(sigs):
            v = m.loc[m["method.signal"] == sig, "final_quality"].to_numpy(float)
            color, marker = SIGNAL_STYLE.get(sig, ("k", "o"))
            se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0
            ax.errorbar(i, v.mean(), yerr=se, fmt=marker, color=color, ms=9, capsize=4, lw=1.5, mew=2, zorder=3)
            ax.scatter(i + np.linspace(-0.12, 0.12, len(v)), v, s=12, color=color, alpha=0.45, zorder=2)
            d.notes.append(f"MNIST ρ={rho:g}, {sig}: final test error {v.mean():.4f} ± {se:.4f} (n={len(v)})")
        ax.set_xticks(range(len(sigs)), [signal_tick(s, m) for s in sigs], fontsize=8)
        ax.set_xlim(-0.6, len(sigs) - 0.4)
        ax.set_ylabel(f"final {quality_label('test_error')} (MNIST, {steps_text(m) if len(m) else '?'} steps)")
        ax.set_title(f"MNIST, DG-K top-ρ, ρ = {rho:g}: final test error per screening signal", fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_ylim(bottom=0)
        # (b) MNIST learning curves; (c) bandit error against steps
        for ax, task, x, xlabel in ((row[1], "mnist", "forward_samples", "forward samples (images screened)"),
                                    (row[2], "bandit", "step", "step (batches of 100 pulls)")):
            c = cur[cur["task"] == task]
            if c.empty:
                ax.text(0.5, 0.5, f"no complete {task} runs", ha="center", transform=ax.transAxes)
                continue
            agg = agg_curves(c, ["method.signal"], "forward_samples" if x != "step" else "step")
            for sig in signals(c):
                color = SIGNAL_STYLE.get(sig, ("k", "o"))[0]
                line(ax, agg[agg["method.signal"] == sig], color, signal_label(sig, at),
                      lw=2.2 if sig == "delight" else 1.4)
            ax.set_yscale("log")
            ax.grid(True, which="major", alpha=0.3)
            ax.set_xlabel(xlabel)
            tidy_axes(ax)
        r = at[at["task"] == "bandit"]
        row[1].set_ylabel(quality_label("test_error") + " (MNIST)")
        row[1].set_title(f"MNIST, ρ = {rho:g}: test error against forward samples", fontsize=10)
        row[2].set_ylabel(quality_label("error") + " (bandit)")
        row[2].set_title(f"bandit (K = 100, one context), ρ = {rho:g}: error against steps", fontsize=10)
        for sig in signals(r) if len(r) else []:
            v = r.loc[r["method.signal"] == sig, "final_quality"].to_numpy(float)
            d.notes.append(f"bandit ρ={rho:g}, {sig}: final error {v.mean():.3g} ± "
                           f"{(v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0):.2g} (n={len(v)})")
    legend_ax = axes[0][2] if axes[0][2].get_lines() else axes[0][1]  # the bandit panel's lower left is empty
    legend_ax.legend(fontsize=8, loc="lower left", title="screening signal (all panels)", title_fontsize=8)
    parts = []
    if len(mnist):
        parts.append(f"MNIST {steps_text(mnist)} steps × 100 images")
    if len(bandit):
        parts.append(f"bandit {steps_text(bandit)} steps × 100 pulls")
    fig.suptitle(f"Screening signals at equal keep rate: DG-K, top-ρ gate (scale {d.scale.name}: "
                 f"{', '.join(parts)}; mean over {seeds_text(runs)} seeds ± 1 s.e.)", fontsize=11)
    footer(fig, mnist_source_note(d, mnist) if len(mnist) else None)
    return save(fig, d.stem())


FIGURE = Figure("screening", "DG-K at equal keep rate screening on delight against random, advantage, "
                "|advantage|, surprisal and additive signals (MNIST and bandit)", sweeps, draw)
