"""The tables beside Fig 10 (H*): per series and seed, the horizons solved and H*'s bracket,
and the gains against difficulty (what reaching the threshold cost each series at each H).

Both read one row per run from the figure's curves (`first_solved`): whether it solved its H
(reward 1 - quality above the threshold at some evaluation) and what it had spent by then.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .hsearch import hstar_of

THRESHOLD = 0.75  # reward above which an H counts as solved (the paper's)


def budget_column(curves: pd.DataFrame, x: str) -> pd.Series:
    """The budget spent by each row: forward samples, or backward passes (kept tokens / H:
    the paper's count, one pass per sequence's worth of tokens)."""
    if x == "backward_passes":
        return curves["backward_units"] / curves["task.horizon"].astype(float)
    return curves[x].astype(float)


COST_RATIOS = (0, 1, 2, 4, 8)  # c, a backward pass's cost in forward passes (the paper's Fig 3 sweeps 0-8)


def first_solved(curves: pd.DataFrame, threshold: float = THRESHOLD) -> pd.DataFrame:
    """One row per run (label, seed, H): whether it solved H (reward 1 - quality above the
    threshold at some evaluation) and the forward samples and backward passes (kept tokens / H)
    spent by the first evaluation that did. A run stopped once solved ends there."""
    c = curves.assign(H=curves["task.horizon"].astype(int), ok=1 - curves["quality"].astype(float) > threshold,
                      backward_passes=budget_column(curves, "backward_passes"),
                      forward=curves["forward_samples"].astype(float))
    rows = []
    for (label, seed, h), g in c.groupby(["label", "seed", "H"], sort=True):
        hit = g[g["ok"]].sort_values("forward")
        rows.append({"label": label, "seed": seed, "H": h, "solved": len(hit) > 0,
                     "forward_samples": hit["forward"].iloc[0] if len(hit) else np.nan,
                     "backward_passes": hit["backward_passes"].iloc[0] if len(hit) else np.nan})
    return pd.DataFrame(rows, columns=["label", "seed", "H", "solved", "forward_samples", "backward_passes"])


def gains_table(curves: pd.DataFrame, threshold: float = THRESHOLD, reference: str = "PG") -> pd.DataFrame:
    """Gains against difficulty: for each series (`label`) and H, the seeds that solved it, the
    mean forward samples and backward passes they took to reach the threshold, and the compute
    speedup over the reference series at each cost ratio c,
        S(c) = (F_ref + c * B_ref) / (F + c * B),
    where both solved that H (means over their solved seeds)."""
    runs = first_solved(curves, threshold)
    g = runs.groupby(["label", "H"], sort=True)
    table = pd.DataFrame({"solved": g["solved"].sum().astype(int).astype(str) + "/" + g["solved"].size().astype(str),
                          "forward_samples": g["forward_samples"].mean(),
                          "backward_passes": g["backward_passes"].mean()}).reset_index()
    table = table.rename(columns={"label": "series"})
    ref = table[table["series"] == reference].set_index("H")
    for c in COST_RATIOS:
        cost = table["forward_samples"] + c * table["backward_passes"]
        table[f"speedup_c{c}"] = table["H"].map(ref["forward_samples"] + c * ref["backward_passes"]) / cost
    return table


def brackets(curves: pd.DataFrame, paper: dict[str, float] | None = None,
             threshold: float = THRESHOLD) -> pd.DataFrame:
    """H* of each series at the whole budget: per seed, H* (the largest solved H below the
    smallest failed one, as the search defines it) and that failed H, the bracket's top (`>`:
    none failed, H* is a lower bound); per series, their mean ± s.e. and the paper's value."""
    runs = first_solved(curves, threshold)
    rows = []
    for label, g in runs.groupby("label", sort=True):
        seeds = []
        for seed, s in g.groupby("seed", sort=True):
            results = dict(zip(s["H"].astype(int), s["solved"].astype(bool)))
            failed = [h for h, ok in results.items() if not ok]
            h = hstar_of(results)
            seeds.append((seed, h, f"{h}" + (f" [< {min(failed)}]" if failed else " (none failed)")))
        values = np.array([h for _, h, _ in seeds], float)
        rows.append({"series": label, "seeds": len(seeds), "hstar_mean": values.mean(),
                     "hstar_se": values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else np.nan,
                     "per_seed": ", ".join(f"{sd}: {text}" for sd, _, text in seeds),
                     "paper": (paper or {}).get(label, np.nan)})
    return pd.DataFrame(rows, columns=["series", "seeds", "hstar_mean", "hstar_se", "per_seed", "paper"])


def markdown(table: pd.DataFrame) -> str:
    """A plain Markdown table, floats to 3 significant digits, NaN as a dash."""
    def cell(v):
        return "–" if isinstance(v, float) and np.isnan(v) else f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"
