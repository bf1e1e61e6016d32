"""The single-context bandit: misalignment to the exact gradient and error, PG, DG and DG-K
with the hard gate (η = 0) at several prices."""

from __future__ import annotations

from pathlib import Path

from ..sweeps import series_keys
from .common import panels, seeds_text
from .core import Figure, FigureData, Scale, Sweep


def sweeps(s: Scale) -> list[Sweep]:
    base = s.task("bandit")
    return [Sweep("bandit-ungated", (*base, "method=pg,dg")),
            Sweep("bandit-dgk-hard-gate", (*base, "method=dgk", "method.eta=0", "price=0,0.1,0.5"))]


def draw(d: FigureData) -> list[Path]:
    from ..labels import quality_label
    from ..plots import curve_panel, curve_table, save, tidy_axes, zero_floor

    keys = series_keys(d.runs)
    mis = curve_table(d.curves, keys, "misalignment", ["step"])
    err = curve_table(d.curves, keys, "quality", ["step", "backward_samples"])
    axes, plt = panels(3)
    curve_panel(axes[0], mis, "step", "misalignment", logy=False)  # the gated runs sit at exactly 0
    floor = zero_floor(err["quality_mean"])  # the gated runs reach exactly 0 error too
    curve_panel(axes[1], err, "step", "quality", floor=floor)
    curve_panel(axes[2], err, "backward_samples", "quality", logx=True, floor=floor)
    for ax, xl, yl in zip(axes, ("step", "step", "backward samples"),
                          (quality_label("misalignment"), quality_label("error"), quality_label("error"))):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        tidy_axes(ax)
    axes[0].legend(fontsize=8)
    plt.gcf().suptitle("Single-context bandit (K = 100, B = 100; DG-K with the hard gate η = 0): misalignment "
                       f"to the exact gradient and error (mean over {seeds_text(d.runs)} seeds ± 1 s.e.)", fontsize=11)
    mean = mis.groupby("label", sort=False)["misalignment_mean"].mean().clip(lower=0)  # -1e-7 is rounding
    d.notes.append("misalignment, mean over all steps: " + ", ".join(f"{k} {v:.3g}" for k, v in mean.items()))
    return save(plt.gcf(), d.stem())


FIGURE = Figure("bandit", "bandit: misalignment and error against steps, PG, DG and DG-K at several prices",
                sweeps, draw)
