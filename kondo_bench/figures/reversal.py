"""Fig 8, token reversal (H = 10, M = 2): sequence error against forward samples, backward
sequences and backward tokens, and the quality-cost frontier with a random gate."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..sweeps import series_keys
from .common import config_value_list, config_values, seeds_text
from .core import Figure, FigureData, Scale, Sweep


def sweeps(s: Scale) -> list[Sweep]:
    """Cheapest and most wanted first, so a run cut short (or `--seeds N`) keeps them: the
    two forms of DG-K (rho = 3 %), DG-K lambda = 0, the ungated baselines, then the other
    keep rates and the random gate of the frontier."""
    base = s.task("reversal")
    ungated = s.pick(quick="pg,dg", test="pg,dg", default="pg,dg,ppo,pmpo")
    rates = s.pick(quick=None, test=None, default="0.1,0.3")
    random_rates = s.pick(quick="0.03", test="0.03", default="0.03,0.1")
    return [Sweep("reversal-dgk-keep3", (*base, "method=dgk", "keep_rate=0.03")),  # the official hard top-k
            # the form of the rho-gate that reproduces the paper's DG-K (rho = 3 %) curve (the
            # gateform study): a Bernoulli gate with its price solved per batch, eta = 0.3
            Sweep("reversal-dgk-quantile", (*base, "method=dgk", "method.gate=quantile", "keep_rate=0.03",
                                            "method.eta=0.3")),
            Sweep("reversal-dgk-price0", (*base, "method=dgk", "method.eta=0", "price=0")),
            Sweep("reversal-ungated", (*base, f"method={ungated}")),
            *([Sweep("reversal-dgk-keep-rates", (*base, "method=dgk", f"keep_rate={rates}"))] if rates else []),
            Sweep("reversal-random-keep-rates", (*base, "method=dgk", "method.signal=random",
                                                 f"keep_rate={random_rates}"))]


def resolution(runs: pd.DataFrame) -> tuple[float | None, str | None, str]:
    """How finely the runs' quality resolves the error: (floor, its note, a footer line).

    The sampled `seq_error` of one evaluation is a multiple of 1/(prompts × H): a mean below
    that grain is a seed average of zeros and single grains, not a measured level, so a log
    axis clips there (floor) and says so. `expected_error` (1 − E[R], π of the target read
    along sampled answers) has no grain: only exact zeros, if any, get a floor."""
    prompts = pd.Series(config_value_list(runs, "task.eval_prompts")).astype(float)
    horizon = pd.Series(config_value_list(runs, "task.horizon")).astype(float)
    grain = float((1 / (prompts * horizon)).max())
    p, h = config_values(runs, "task.eval_prompts"), config_values(runs, "task.horizon")
    if set(runs["quality_metric"]) == {"expected_error"}:
        return None, None, (f"Sequence error 1 − E[R] on {p} fresh prompts per evaluation, from π of the target token "
                            "along sampled answers (Rao-Blackwellised: unbiased, and nearly exact near convergence); "
                            f"it resolves errors far below the {sci(grain)} grain of scoring the sampled answers.")
    note = f"resolution {sci(grain)}: lower values drawn here"
    return grain, note, (f"Sampled sequence error: one evaluation scores {p} fresh prompts × H = {h} tokens, so it "
                         f"moves in steps of 1/({p} × {h}) = {sci(grain)} and reads exactly 0 below that; means under the dotted "
                         "line (zeros and seed averages of single steps) are drawn on it, not at a measured level. "
                         "Newer runs report 1 − E[R] (expected_error), which resolves far lower.")


def sci(x: float) -> str:
    """5e-4, not 0.0005 or 5e-04."""
    m, e = f"{x:.1e}".split("e")
    return f"{float(m):g}e{int(e)}"


def draw(d: FigureData) -> list[Path]:
    from ..plots import plot_curves, plot_tradeoff

    axes = [("forward_samples", "forward samples", False), ("backward_samples", "backward samples (sequences)", True),
            ("backward_units", "backward tokens", True)]
    n, size = seeds_text(d.runs), f"H = {config_values(d.runs, 'task.horizon')}, M = {config_values(d.runs, 'task.vocab')}"
    floor, note, footer = resolution(d.runs)
    return plot_curves(d.curves, series_keys(d.runs), d.stem(), axes_spec=axes, floor=floor, floor_note=note,
                       footer=footer, title=f"Token reversal (Fig 8), {size}: sequence error "
                                            f"(mean over {n} seeds ± 1 s.e.)") + plot_tradeoff(
        d.runs, d.stem("_pareto"), floor=floor, floor_note=note, footer=footer,
        title=f"Token reversal, {size}: final sequence error against cost, "
        f"with a random gate at equal keep rates; mean over {n} seeds ± 1 s.e.")


FIGURE = Figure("reversal", "Fig 8: token reversal sequence error against forward and backward samples",
                sweeps, draw)
