"""Fig 1, MNIST: test error against forward and backward samples (PG, DG, DG-K ρ = 3 %), and
the quality-cost frontier over keep rates and prices with a random gate at equal keep rates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..sweeps import series_keys
from .common import first_reach, seeds_text
from .core import Figure, FigureData, Scale, Sweep

TARGET = {"paper": 0.05, "report": 0.05, "quick": 0.12}  # error to reach (Fig 3's target); else the easiest reachable


def fig1_sweeps(s: Scale) -> list[Sweep]:
    """Fig 1's runs (Fig 3 reuses them)."""
    base = s.task("mnist")
    return [Sweep("mnist-ungated", (*base, "method=pg,dg")),
            Sweep("mnist-dgk-keep3", (*base, "method=dgk", "keep_rate=0.03"))]


def sweeps(s: Scale) -> list[Sweep]:
    # fewer seeds off the Fig 1 configurations (Fig 1 itself: 30 at paper scale)
    base = s.task("mnist", seeds=s.pick(quick=2, report=3, paper=5))
    rates = "0.01,0.1,0.3"  # 0.01 keeps k = 1 of 100 images per step: the smallest top-ρ gate here
    prices = s.pick(quick="0,1", test="0,1", default="0,0.1,0.3,1")
    # the control: a random gate at the same keep rates (0.03 included), same top-ρ machinery
    random_rates = ",".join(sorted({*rates.split(","), "0.03"}, key=float))
    return [*fig1_sweeps(s),
            Sweep("mnist-dgk-keep-rates", (*base, "method=dgk", f"keep_rate={rates}")),
            Sweep("mnist-random-keep-rates", (*base, "method=dgk", "method.signal=random", f"keep_rate={random_rates}")),
            Sweep("mnist-dgk-prices", (*base, "method=dgk", "method.eta=0", f"price={prices}"))]


def fig1(d: FigureData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs and curves of Fig 1's sweeps only."""
    names = {sw.name for sw in fig1_sweeps(d.scale)}
    return d.runs[d.runs["sweep"].isin(names)], d.curves[d.curves["sweep"].isin(names)]


def draw(d: FigureData) -> list[Path]:
    from ..plots import plot_curves, plot_tradeoff

    runs, curves = fig1(d)
    target = TARGET.get(d.scale.name)
    if target is not None:
        reach = first_reach(curves, series_keys(runs), target)
        d.notes.append(f"forward samples to reach {target:.0%} test error (mean curve): " + ", ".join(
            f"{r.label} {r.forward:,.0f}" if np.isfinite(r.forward) else f"{r.label} not reached"
            for r in reach.itertuples()))
    files = plot_curves(curves, series_keys(runs), d.stem(),
                        title="MNIST contextual bandit (Fig 1): test error against forward and backward samples "
                              f"(mean over {seeds_text(runs)} seeds ± 1 s.e.)")
    return files + plot_tradeoff(d.runs, d.stem("_pareto"), title="MNIST: final test error against cost over "
                                 "keep rates ρ and prices λ (η = 0), with a random gate at equal keep rates; "
                                 f"mean over {seeds_text(d.runs)} seeds ± 1 s.e.")


FIGURE = Figure("mnist", "Fig 1: MNIST test error against forward and backward samples; Pareto frontier",
                sweeps, draw)
