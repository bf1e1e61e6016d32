"""Fig 8, token reversal (H = 10, M = 2): sequence error against forward samples, backward
sequences and backward tokens, and the quality-cost frontier with a random gate."""

from __future__ import annotations

from pathlib import Path

from ..sweeps import series_keys
from .common import config_values, seeds_text
from .core import Figure, FigureData, Scale, Sweep


def sweeps(s: Scale) -> list[Sweep]:
    base = s.task("reversal")
    ungated = s.pick(quick="pg,dg", test="pg,dg", default="pg,dg,ppo,pmpo")
    rates = s.pick(quick="0.03", test="0.03", default="0.03,0.1,0.3")
    random_rates = s.pick(quick="0.03", test="0.03", default="0.03,0.1")
    return [Sweep("reversal-ungated", (*base, f"method={ungated}")),
            Sweep("reversal-dgk-keep-rates", (*base, "method=dgk", f"keep_rate={rates}")),
            Sweep("reversal-random-keep-rates", (*base, "method=dgk", "method.signal=random",
                                                 f"keep_rate={random_rates}")),
            Sweep("reversal-dgk-price0", (*base, "method=dgk", "method.eta=0", "price=0"))]


def draw(d: FigureData) -> list[Path]:
    from ..plots import plot_curves, plot_tradeoff

    axes = [("forward_samples", "forward samples", False), ("backward_samples", "backward samples (sequences)", True),
            ("backward_units", "backward tokens", True)]
    n, size = seeds_text(d.runs), f"H = {config_values(d.runs, 'task.horizon')}, M = {config_values(d.runs, 'task.vocab')}"
    return plot_curves(d.curves, series_keys(d.runs), d.stem(), axes_spec=axes,
                       title=f"Token reversal (Fig 8), {size}: sequence error "
                             f"(mean over {n} seeds ± 1 s.e.)") + plot_tradeoff(
        d.runs, d.stem("_pareto"), title=f"Token reversal, {size}: final sequence error against cost, "
        f"with a random gate at equal keep rates; mean over {n} seeds ± 1 s.e.")


FIGURE = Figure("reversal", "Fig 8: token reversal sequence error against forward and backward samples",
                sweeps, draw)
