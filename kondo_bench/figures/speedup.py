"""Fig 3: compute speedup over PG to reach a target MNIST test error, against the
backward/forward cost ratio c (reuses Fig 1's runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..sweeps import series_keys
from . import mnist
from .common import first_reach, panels, seeds_text
from .core import Figure, FigureData

COST_RATIOS = np.arange(0, 9)
PAPER_SPEEDUP_DGK = [1.4, 2.7, 4.0, 5.2, 6.3, 7.4, 8.4, 9.3, 10.2]  # read off the paper's Fig 3 (±5 %)


def ceil2(x: float) -> float:
    """x rounded up to two significant digits."""
    e = 10.0 ** (np.floor(np.log10(x)) - 1)
    return float(np.ceil(x / e - 1e-9) * e)


def draw(d: FigureData) -> list[Path]:
    from ..plots import save, tidy_axes

    runs, curves = mnist.fig1(d)
    keys = series_keys(runs)
    target = mnist.TARGET.get(d.scale.name)
    reach = first_reach(curves, keys, 1.0)
    if target is None or not (first_reach(curves, keys, target)["forward"].notna()).all():
        chosen = ceil2(reach["best"].max())  # the easiest target every method reaches
        if target is not None:
            d.notes.append(f"target {target:.3g} not reached by every method; using {chosen:.3g}")
        target = chosen
    reach = first_reach(curves, keys, target)
    pg = reach[reach["method"] == "pg"].iloc[0]
    axes, plt = panels(1, 6.5)
    ax = axes[0]
    rows = []
    for r in reach.itertuples():
        if r.method == "pg" or not np.isfinite(r.forward):
            continue
        s = (pg.forward + COST_RATIOS * pg.backward) / (r.forward + COST_RATIOS * r.backward)
        ax.plot(COST_RATIOS, s, "o-", color=r.color, label=r.label)
        rows.append((r.label, s))
        if r.reforward > 0:
            s_re = (pg.forward + COST_RATIOS * pg.backward) / (r.forward + r.reforward + COST_RATIOS * r.backward)
            ax.plot(COST_RATIOS, s_re, "o:", color=r.color, mfc="white", label=f"{r.label}, re-forward charged")
            rows.append((f"{r.label} (re-forward charged)", s_re))
    ax.plot(COST_RATIOS, PAPER_SPEEDUP_DGK, "x--", color="0.5", label="paper, DG-K ρ=3% (read off Fig 3)")
    ax.axhline(2.3, color="0.5", ls=":", lw=1, label="paper, DG (≈2.3×)")
    ax.axhline(1, color="k", lw=0.8)
    ax.set_xlabel("backward/forward cost ratio c")
    ax.set_ylabel(f"speedup over PG to reach {target:.3g} test error\n(PG cost / method cost, F + c·B)")
    ax.legend(fontsize=8, loc="upper left", title_fontsize=9,
              title=f"target: test error ≤ {target:.3g} (mean curve of {seeds_text(runs)} seeds)")
    ax.grid(True, alpha=0.3)
    tidy_axes(ax)
    ax.set_title("MNIST (Fig 3): compute speedup over PG against the cost ratio c", fontsize=11)
    for lab, s in rows:
        d.notes.append(f"speedup at target {target:.3g}, {lab}: c=0 {s[0]:.2f}, c=4 {s[4]:.2f}, c=8 {s[8]:.2f}")
    d.notes.append("samples to reach the target: " + ", ".join(
        f"{r.label} F={r.forward:,.0f} B={r.backward:,.0f}" for r in reach.itertuples() if np.isfinite(r.forward)))
    return save(plt.gcf(), d.stem())


FIGURE = Figure("speedup", "Fig 3: MNIST compute speedup over PG against the cost ratio c", mnist.fig1_sweeps, draw)
