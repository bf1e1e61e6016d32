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
    spent by the first evaluation that did, or by its last one where it did not (what a run that
    failed spent: a lower bound on what solving would have cost it). A run stopped once solved
    ends there."""
    c = curves.assign(H=curves["task.horizon"].astype(int), ok=1 - curves["quality"].astype(float) > threshold,
                      backward_passes=budget_column(curves, "backward_passes"),
                      forward=curves["forward_samples"].astype(float))
    rows = []
    for (label, seed, h), g in c.groupby(["label", "seed", "H"], sort=True):
        g = g.sort_values("forward")
        hit = g[g["ok"]]
        at = hit.iloc[0] if len(hit) else g.iloc[-1]
        rows.append({"label": label, "seed": seed, "H": h, "solved": len(hit) > 0,
                     "forward_samples": at["forward"], "backward_passes": at["backward_passes"]})
    return pd.DataFrame(rows, columns=["label", "seed", "H", "solved", "forward_samples", "backward_passes"])


def outcomes_at(runs: pd.DataFrame, h: int) -> pd.DataFrame:
    """Each seed's outcome at horizon h (rows of `first_solved` for one series): its run at h,
    or, for a seed the search never ran there, a failure implied by a failed shorter horizon
    (the monotonicity the search assumes; what that run spent stands as the lower bound). A
    seed with neither says nothing about h and is left out. `implied` marks the failures that
    were not run: between about H = 16 and 40 an ungated seed can fail one horizon and solve a
    longer one, so a reader must be able to tell them from outcomes measured at h."""
    rows = []
    for _, s in runs.groupby("seed", sort=True):
        ran = s[s["H"] == h]
        below = s[(s["H"] < h) & ~s["solved"]]
        if len(ran):
            rows.append({**ran.iloc[0].to_dict(), "implied": False})
        elif len(below):
            rows.append({**below.sort_values("H").iloc[0].to_dict(), "implied": True})
    return pd.DataFrame(rows, columns=[*runs.columns, "implied"])


def _solved(rows: pd.DataFrame) -> str:
    """The solved count over the known outcomes, and how many of the known failures are implied rather than run."""
    implied = int(rows["implied"].sum())
    return f"{int(rows['solved'].sum())}/{len(rows)}" + (f" ({implied} implied)" if implied else "")


def censored_median(costs: np.ndarray, solved: np.ndarray) -> tuple[float, bool]:
    """The median over seeds of what reaching the threshold cost, and whether it is exact. A seed
    that did not solve needs more than the whole budget, so it sorts last: the median is exact
    when more than half the seeds solved. Otherwise only a lower bound is known: the median of
    what each seed spent (a seed that failed spent less than solving would have cost it)."""
    exact = bool(solved.sum() * 2 > len(costs))
    return float(np.median(np.where(solved, costs, np.inf) if exact else costs)), exact


def _costs(rows: pd.DataFrame, c: float | None) -> tuple[float, bool]:
    """The censored median of F + c B over these seeds (c None: B alone)."""
    cost = rows["backward_passes"] if c is None else rows["forward_samples"] + c * rows["backward_passes"]
    return censored_median(cost.to_numpy(float), rows["solved"].to_numpy(bool))


def gains_table(curves: pd.DataFrame, threshold: float = THRESHOLD, reference: str = "PG") -> pd.DataFrame:
    """Gains against difficulty: for each series (`label`) and H it ran, the seeds that solved it
    (of those whose outcome at H is known, `outcomes_at`), the median over those seeds of the
    forward samples and backward passes to the threshold (a seed that failed counts as needing
    more than it spent), and the compute speedup over the reference series at each cost ratio c,
        S(c) = median(F_ref + c * B_ref) / median(F + c * B).
    Medians, not means over the seeds that solved: a series that fails most seeds of an H must
    not look cheap there. `bound` says what each speedup is: "=" exact, ">=" a lower bound (the
    reference's median seed failed), "<=" an upper bound (the series' median seed failed); where
    both medians failed there is no ratio."""
    runs = first_solved(curves, threshold)
    ref = runs[runs["label"] == reference]
    rows = []
    for (label, h), _ in runs.groupby(["label", "H"], sort=True):
        mine, theirs = outcomes_at(runs[runs["label"] == label], h), outcomes_at(ref, h)
        row = {"series": label, "H": h, "solved": _solved(mine), f"{reference}_solved": _solved(theirs) if len(theirs) else "–"}
        # a median is exact where more than half the seeds solved, whatever c (censored_median)
        mine_exact, theirs_exact = _costs(mine, 0)[1], len(theirs) > 0 and _costs(theirs, 0)[1]
        for column, c in (("forward_samples", 0), ("backward_passes", None)):
            row[column] = _costs(mine, c)[0] if mine_exact else np.nan  # the median seed did not solve H
        row["bound"] = {(True, True): "=", (True, False): ">=", (False, True): "<="}.get(
            (mine_exact, theirs_exact), "–") if len(theirs) else "–"
        for c in COST_RATIOS:
            row[f"speedup_c{c}"] = _costs(theirs, c)[0] / _costs(mine, c)[0] if row["bound"] != "–" else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


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


def gains_markdown(table: pd.DataFrame, reference: str = "PG") -> str:
    """The gains table in Markdown, each speedup marked with what it is (≥: a lower bound, ≤: an
    upper bound), and a line saying how to read it."""
    shown = table.copy()
    mark = shown.pop("bound").map({">=": "≥ ", "<=": "≤ "}).fillna("")
    for col in [c for c in shown.columns if c.startswith("speedup_")]:
        shown[col] = [f"{m}{v:.3g}" if not np.isnan(v) else "–" for m, v in zip(mark, shown[col])]
    return markdown(shown) + (
        f"\nMedians over the seeds whose outcome at H is known: a seed that failed H (or, never run there, "
        f"a shorter H: the search's monotonicity, counted as 'implied' in the solved columns) counts as needing more than the budget, so the median is "
        f"missing (–) where half or more failed. `speedup_cC`: {reference}'s median of F + c·B over the "
        f"series' (F forward samples, B backward passes, c a backward pass's cost in forward passes); "
        f"≥ where {reference}'s median seed failed (its spent budget stands in: a lower bound), ≤ where "
        f"the series' did.\n")
