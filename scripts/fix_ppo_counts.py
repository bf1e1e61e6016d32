"""Correct PPO's counts in figure tables written before PPO's counts were fixed (rerunning is too slow).

    python scripts/fix_ppo_counts.py results/figures/report [more folders ...]

Before the fix, a PPO step reported its kept units once per epoch, so the interval keep
rate read `epochs` (4.0) instead of at most 1, and it counted one optimiser step per
screened batch although it took epochs x minibatches. The transform, for rows whose method
is `ppo` (the preset's epochs = 4 and minibatches = 4: no committed sweep overrides them):
- curves: interval_keep_rate / epochs;
- runs and curves: optimizer_steps x epochs x minibatches (every PPO step kept all of its
  100 rows, so each pass made `minibatches` minibatches).
backward_samples, backward_units and backward_fraction are unchanged: every epoch's
backward passes were paid, and still count. It applies only while a PPO row's
interval_keep_rate is above 1, so running it twice changes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

EPOCHS, MINIBATCHES = 4, 4


def _correct(runs: pd.DataFrame, curves: pd.DataFrame) -> int:
    stale = (curves["method"] == "ppo") & (curves["interval_keep_rate"] > 1)
    if stale.any():
        curves.loc[stale, "interval_keep_rate"] /= EPOCHS
        curves.loc[stale, "optimizer_steps"] *= EPOCHS * MINIBATCHES
        runs.loc[runs["method"] == "ppo", "optimizer_steps"] *= EPOCHS * MINIBATCHES
    return int(stale.sum())


def fix(folder: Path) -> None:
    """Each table is corrected in its own format (CSV and Parquet), so nothing else changes."""
    for curves_csv in sorted(folder.glob("*_curves.csv")):
        name = curves_csv.name[: -len("_curves.csv")]
        for ext, read, write in ((".csv", pd.read_csv, lambda t, p: t.to_csv(p, index=False)),
                                 (".parquet", pd.read_parquet, lambda t, p: t.to_parquet(p, index=False))):
            runs_path, curves_path = folder / f"{name}_runs{ext}", folder / f"{name}_curves{ext}"
            runs, curves = read(runs_path), read(curves_path)
            if "method" not in curves or "interval_keep_rate" not in curves or not (n := _correct(runs, curves)):
                continue
            write(runs, runs_path)
            write(curves, curves_path)
            print(f"{name}{ext}: {n} PPO curve rows and their runs corrected in {folder}")


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["results/figures/report"]:
        fix(Path(arg))
