"""Fig 10, H*: the longest reversal horizon each method solves within a budget, against
forward samples and against backward passes.

This module is the example to follow when adding a figure: `sweeps(scale)` lists the
multiruns, `draw(data)` draws from the tables, `FIGURE` names them, and one line in
`figures/__init__.py` (MODULES) registers it.

The runs: token reversal (M = 2) at a grid of horizons H, for PG, PPO, PMPO, DG, DG-K at a
zero price with the hard gate (λ = 0, η = 0: only positive-delight tokens pass) and DG-K at
a fixed keep rate ρ = 3 %. At the paper's budget (scale `paper`: 1 M forward samples) the
horizons are searched rather than gridded (figures/hsearch.py): each series and seed runs
only the horizons that pin its H* down, each run stopping once solved (`solved_below`), and
the random gate at 3 % of tokens joins the series. H is **solved** by a seed within a budget when, at some
evaluation within that budget, its reward 1 − quality (1 − E[R] on fresh prompts) exceeds
0.75, the paper's threshold ("solved within a budget": the first time counts, a later dip
does not unsolve it). A seed's H*(budget) is the largest H of the grid it solved by then
(0 when none); the figure shows the mean over seeds ± 1 s.e. (the paper's H* ≈ 26.5 for DG
suggests a mean over seeds too), as a step curve along the budget. The grid bounds what
H* can read: it is never more than the largest H run.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from ..sweeps import series_keys
from .common import config_values, panels, seeds_text
from .core import Figure, FigureData, Scale, Sweep
from .hsearch import Search, violations
from .hstar_tables import THRESHOLD, brackets, budget_column, first_solved, gains_markdown, gains_table, markdown

# The paper's H* within 1 M forward samples (read off its Fig 10, about ±0.5), by (method, gate)
PAPER = {("dgk", "topk"): 29, ("dgk", "price"): 28, ("dg", "none"): 26.5, ("pmpo", "none"): 18,
         ("pg", "none"): 17, ("ppo", "none"): 17}
# Which ρ-gate the paper's "DG-K (ρ = 3 %)" is remains open (the gateform study): its value
# marks both candidate forms, the hard top-k and the Bernoulli (quantile) gate
PAPER[("dgk", "quantile")] = PAPER[("dgk", "topk")]


def paper_value(row) -> float | None:
    """The paper's H* for a series (a row of `styles`), None where it has none: a gate on
    another signal than delight (the random gate) is a baseline of ours, not the paper's DG-K."""
    signal = row.get("method.signal")
    if isinstance(signal, str) and signal != "delight":
        return None
    return PAPER.get((row["method"], row["gate"]))
# The horizons, steps (100 episodes each), evaluation interval and seeds at each scale
GRID = {"test": ("2,4", 10, 5, 1),
        "quick": ("3,5,7,9", 300, 25, 1),  # CPU minutes (PPO, with its 4 epochs, takes half)
        "report": ("4,6,8,10,12", 2000, 100, 1),  # about a CPU-hour
        }
# At the paper's budget: 1 M forward samples (10,000 steps of 100 episodes), evaluated every
# 100 steps, 3 seeds (the paper's seed count for Fig 10 is not known), H searched from
# `start` up to `top` (figures/hsearch.py). DG solved H = 64 in its first seed at 0.16 M samples,
# so the ceiling is 128: a failing run there takes about 10,000 steps of ~1 s on one thread.
# Starting at H = 4 and doubling, every series runs H = 4, 8, 16 (and 32 unless it failed 16):
# the horizons the gains-against-difficulty table compares the series at.
# The network is the official code's form (flax initialisation, no final LayerNorm: the form
# whose learning curve matches the paper's code, docs/tasks/reversal.md); the default form's
# search is kept beside it (results/figures/default-form, run with task.init=torch task.final_ln=true).
OFFICIAL_FORM = ("task.init=flax", "task.final_ln=false")
# H* is pinned down to within 1/8 of itself (e.g. [32, 36)): the last two bisection stages
# would cost up to two failed runs of 1 M samples each per series and seed, to split methods
# the 3 seeds' spread cannot split anyway; the figure reads H* as the bracket's low end.
# A run that fails spends an hour at H = 64 and hours at 128: a checkpoint every 500 steps lets
# one stopped part-way (a Ctrl-C, the end of a machine's day) continue where it was, exactly.
SEARCH = {"paper": {"steps": 10_000, "eval_every": 100, "seeds": 3, "start": 4, "top": 128,
                    "resolution": 1 / 8, "form": (*OFFICIAL_FORM, "checkpoint_every=500")}}
# The series at the paper's budget, gated ones first (cheaper: a run cut short keeps them);
# a second value is a series' own start.
SERIES = {"hstar-dgk-price0": (("method=dgk", "method.eta=0", "price=0"), None),
          # rho = 3 % as the Bernoulli gate with its price solved per batch (eta = 0.3): the form
          # that reproduces the paper's Fig 8 curve (the gateform study)
          "hstar-dgk-quantile": (("method=dgk", "method.gate=quantile", "keep_rate=0.03", "method.eta=0.3"), None),
          "hstar-random3": (("method=dgk", "method.signal=random", "keep_rate=0.03"), None),
          "hstar-dg": (("method=dg",), None), "hstar-pg": (("method=pg",), None),
          "hstar-pmpo": (("method=pmpo",), None), "hstar-ppo": (("method=ppo",), None),
          "hstar-dgk-keep3": (("method=dgk", "keep_rate=0.03"), None)}


def sweeps(s: Scale) -> list[Sweep]:
    if s.name in SEARCH:
        return searched(s, **SEARCH[s.name])
    horizons, steps, eval_every, seeds = GRID.get(s.name, GRID["quick"])
    base = (*s.task("reversal", seeds=seeds, steps=steps, eval_every=eval_every), f"task.horizon={horizons}")
    # the gated sweeps first: cheaper, so a run cut short (and resumed later) has them
    return [Sweep("hstar-dgk-price0", (*base, "method=dgk", "method.eta=0", "price=0")),
            Sweep("hstar-dgk-keep3", (*base, "method=dgk", "keep_rate=0.03")),
            # rho = 3 % as the Bernoulli gate with its price solved per batch (eta = 0.3): the
            # form that reproduces the paper's Fig 8 curve (the gateform study)
            Sweep("hstar-dgk-quantile", (*base, "method=dgk", "method.gate=quantile", "keep_rate=0.03",
                                         "method.eta=0.3")),
            Sweep("hstar-ungated", (*base, "method=pg,ppo,pmpo,dg"))]


def searched(s: Scale, steps: int, eval_every: int, seeds: int, start: int, top: int,
             resolution: float = 0.0, form: tuple[str, ...] = ()) -> list[Sweep]:
    """One searching sweep per series: its grid is every H up to `top` and every seed, of which
    the search runs only what pins each seed's H* down; every run stops once solved."""
    base = (*s.task("reversal", seeds=seeds, steps=steps, eval_every=eval_every), *form,
            "task.horizon=" + ",".join(str(h) for h in range(1, top + 1)), f"solved_below={1 - THRESHOLD:g}")
    return [Sweep(name, (*base, *overrides), Search(first or start, top, 1 - THRESHOLD, resolution=resolution))
            for name, (overrides, first) in SERIES.items()]


def keys_without_horizon(runs: pd.DataFrame) -> list[str]:
    """What tells the methods apart (the horizon does not: it is the grid)."""
    return [k for k in series_keys(runs) if k != "task.horizon"]


def hstar_table(curves: pd.DataFrame, keys: list[str], x: str = "forward_samples",
                threshold: float = THRESHOLD) -> pd.DataFrame:
    """H* of each configuration and seed at every budget where it can change: the largest H solved
    by that budget below the smallest H the seed failed within the whole budget (`hsearch.hstar_of`
    at the end). One row per (configuration, seed, budget) with columns keys, seed, budget, hstar."""
    c = curves.assign(budget=budget_column(curves, x), reward=1 - curves["quality"].astype(float),
                      H=curves["task.horizon"].astype(int))
    rows = []
    for conf, g in c.groupby(keys, dropna=False, sort=False):
        conf = conf if isinstance(conf, tuple) else (conf,)
        budgets = np.sort(g["budget"].unique())
        for seed, s in g.groupby("seed"):
            solved = s[s["reward"] > threshold].groupby("H")["budget"].min()  # first budget each H is solved at
            # H* as the search and the seeds table define it: below the smallest H this seed never
            # solved, so that the curve ends where the table does (a seed can fail H and solve a longer one)
            cap = min(set(s["H"]) - set(solved.index), default=np.inf)
            solved = solved[solved.index < cap]
            for b in budgets:
                done = solved.index[solved.to_numpy() <= b]
                rows.append({**dict(zip(keys, conf)), "seed": seed, "budget": b,
                             "hstar": int(done.max()) if len(done) else 0})
    return pd.DataFrame(rows, columns=[*keys, "seed", "budget", "hstar"])


def hstar_mean(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean and s.e. over seeds of H* at each budget."""
    g = table.groupby([*keys, "budget"], dropna=False, sort=False)["hstar"]
    return g.agg(["mean", "sem", "size"]).reset_index().sort_values([*keys, "budget"])


def draw(d: FigureData) -> list[Path]:
    from ..labels import METHOD_NAMES, styles
    from ..plots import save, tidy_axes

    keys = keys_without_horizon(d.runs)
    look = styles(d.runs.drop_duplicates(keys)[keys].reset_index(drop=True), keys)  # label, colour per method
    curves = d.curves.merge(look[[*keys, "label"]], on=keys, how="left")
    grid = sorted(d.runs["task.horizon"].astype(int).unique())
    full = float(curves["forward_samples"].max())  # the budget: what a run that never solved spent
    axes, plt = panels(2, 6.2)
    for ax, (x, xlabel) in zip(axes, (("forward_samples", "forward samples"),
                                      ("backward_passes", "backward passes (kept tokens / H)"))):
        mean = hstar_mean(hstar_table(curves, ["label"], x), ["label"])
        for _, r in look.iterrows():
            m = mean[mean["label"] == r["label"]]
            budget, h, se = m["budget"].to_numpy(float), m["mean"].to_numpy(float), np.nan_to_num(m["sem"])
            if not len(m):
                continue
            if x == "forward_samples" and budget[-1] < full:  # solved runs stop early; H* holds to the budget's end
                budget, h, se = np.append(budget, full), np.append(h, h[-1]), np.append(se, se[-1])
            ax.step(budget, h, where="post", color=r["color"], lw=1.6, label=r["label"])
            ax.fill_between(budget, h - se, h + se, step="post", color=r["color"], alpha=0.15, lw=0)
            paper = paper_value(r)
            if x == "forward_samples":
                n = int(m["size"].iloc[-1])
                d.notes.append(f"{r['label']}: H* = {h[-1]:.3g}" + (f" ± {se[-1]:.2g}" if n > 1 else "")
                               + f" (n = {n}) at {budget[-1]:,.0f} forward samples"
                               + (f"; the paper: {paper:g} at 1 M" if paper is not None else ""))
        if x == "forward_samples":  # the paper's values, at its budget of 1 M forward samples
            marked = look[[paper_value(r) is not None for _, r in look.iterrows()]]
            for i, (_, r) in enumerate(marked.iterrows()):
                ax.plot(1e6, paper_value(r), "x", color=r["color"], ms=8, mew=2,
                        label="the paper at 1 M (read off Fig 10)" if i == 0 else None)
        ax.axhline(grid[-1], color="0.6", ls=":", lw=0.8)
        ax.annotate(f"largest H run: {grid[-1]}", (0.99, grid[-1]), xycoords=("axes fraction", "data"),
                    xytext=(0, 3), textcoords="offset points", fontsize=7, color="0.4", ha="right")
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"H* (longest H with reward > {THRESHOLD:g},\nbelow the shortest H failed)")
        ax.grid(True, alpha=0.3)
        tidy_axes(ax)
    axes[0].legend(fontsize=8, loc="upper left")
    steps = max(int(v) for v in d.runs["steps"])
    names = ", ".join(dict.fromkeys(METHOD_NAMES.get(m, m) for m in look["method"]))
    form = "the official code's network, " if config_values(d.runs, "task.init") == "flax" else ""
    # wrapped: the searched horizons make a line wider than the panels, which would leave them
    # small in a wide, mostly blank image
    plt.gcf().suptitle(textwrap.fill(
        f"H* (Fig 10): token reversal, {form}M = {config_values(d.runs, 'task.vocab')}, H in "
        f"{{{', '.join(map(str, grid))}}}, {steps:,} steps × 100 episodes ({names}); "
        f"mean over {seeds_text(d.runs, keys)} seeds ± 1 s.e.", 150), fontsize=11)
    paper = {r["label"]: paper_value(r) for _, r in look.iterrows() if paper_value(r) is not None}
    return save(plt.gcf(), d.stem()) + difficulty(d, curves, paper)


def difficulty(d: FigureData, curves: pd.DataFrame, paper: dict[str, float]) -> list[Path]:
    """The tables beside the figure: H* per series and seed with its bracket (`_seeds`), the
    gains against difficulty (`_gains`), and any seed whose runs contradict the monotonicity
    the search assumes (it failed a shorter H than one it solved)."""
    from ..summarize import write_table

    table = brackets(curves, paper)
    written = write_table(table, d.stem("_seeds"))[:1]
    d.stem("_seeds").with_suffix(".md").write_text(
        markdown(table) + "\nH\\* per seed: the largest H solved below the smallest H failed (the bracket's top, "
        "`[< H]`; \"none failed\": H\\* is a lower bound), within the runs' budget.\n")
    written.append(d.stem("_seeds").with_suffix(".md"))

    for (label, seed), g in first_solved(curves).groupby(["label", "seed"]):
        bad = violations(dict(zip(g["H"], g["solved"])))
        if bad:
            d.notes.append(f"{label}, seed {seed}: failed H = {bad[0][0]} but solved H = {bad[0][1]} "
                           f"(monotonicity does not hold here; {len(bad)} such pair(s))")
    if "PG" not in set(curves["label"]):
        return written
    table = gains_table(curves)
    written += write_table(table, d.stem("_gains"))[:1]
    md = d.stem("_gains").with_suffix(".md")
    md.write_text(gains_markdown(table))
    return written + [md]


FIGURE = Figure("hstar", "Fig 10: H*, the longest reversal horizon solved (reward > 0.75), against forward and "
                "backward samples, PG, PPO, PMPO, DG, DG-K λ = 0 and ρ = 3 %", sweeps, draw)
