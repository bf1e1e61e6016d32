"""How a sweep's configurations are named and drawn: seeds averaged into one row per
configuration (mean, standard error, count), a label ('DG-K ρ=0.03'), a family, a fixed order,
a colour and a marker; and the side-by-side table of their key numbers.

`plots.py` and the paper figures draw with these; nothing here draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .sweeps import preset_defaults, series_keys
from .tasks import quality_labels

METHOD_NAMES = {"pg": "PG", "dg": "DG", "dgk": "DG-K", "ce": "CE (oracle)", "ppo": "PPO", "pmpo": "PMPO",
                "reparam": "reparam", "gumbel": "Gumbel-Softmax", "silent": "Silent"}
METHOD_ORDER = {"reparam": -0.2, "gumbel": -0.1, "pg": 0, "ppo": 0.3, "pmpo": 0.6, "dg": 1, "dgk": 2, "silent": 2.5,
                "ce": 3}
FIXED_STYLE = {"pg": ("0.3", "s"), "dg": ("C0", "D"), "ce": ("C2", "*"), "ppo": ("olive", "P"), "pmpo": ("saddlebrown", "X"),
               "reparam": ("teal", "v"), "gumbel": ("purple", "^"), "silent": ("crimson", "*")}
GATED_COLORS = ["C1", "C3", "C4", "C6", "C8", "C9", "C7", "C5"]  # C5 (brown) last: PMPO is saddlebrown


def quality_label(metric: str) -> str:
    """The task's own label for its metric (Task.quality_labels), else the metric's name."""
    return quality_labels().get(metric, metric.replace("_", " "))


def aggregate(df: pd.DataFrame, keys: list[str], values: list[str], by: tuple[str, ...] = ()) -> pd.DataFrame:
    """Mean, standard error and count over seeds: one row per configuration (and per `by`)."""
    g = df.groupby([*keys, *by], dropna=False, sort=False)[values]
    out = g.mean().add_suffix("_mean").join(g.sem().add_suffix("_se")).join(g.size().rename("n"))
    return out.reset_index()


def _order(agg: pd.DataFrame) -> pd.DataFrame:
    rank = agg["method"].map(METHOD_ORDER).fillna(9)
    return agg.assign(_rank=rank).sort_values(["_rank", "gate", "keep_rate", "price", "eta"],
                                              na_position="first", kind="mergesort").drop(columns="_rank")


def _varying(agg: pd.DataFrame, keys: list[str]) -> list[str]:
    skip = {"method", "gate", "price", "keep_rate", "quality_metric", "device"}
    return [k for k in keys if k not in skip and agg[k].nunique(dropna=False) > 1]


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)


def gated(row) -> bool:
    return isinstance(row["gate"], str) and row["gate"] != "none"


def gate_value(row) -> str:
    """'ρ=0.03' or 'λ=0.1' for a gated run (any estimator), '' otherwise."""
    if not gated(row):
        return ""
    if row["gate"] in ("topk", "quantile"):
        return f"ρ={_fmt(row['keep_rate'])}"
    return f"λ={_fmt(row['price'])}"


def _ignores_eta(row) -> bool:
    """PG, CE and the top-k gate (the eta -> 0 limit) do not use eta."""
    return row["method"] in ("pg", "ce") or row["method"] == "dgk" and row["gate"] == "topk"


def _extras(row, varying: list[str], eta_methods=()) -> str:
    """The other config values that vary in the table (those a run did not set are left out,
    so a run left at its default reads 'DG-K ρ=0.03' beside 'DG-K ρ=0.03, signal=random');
    η only for the methods in eta_methods."""
    parts = [f"{'η' if k == 'eta' else k.split('.')[-1]}={_fmt(row[k])}" for k in varying
             if not _at_default(row, k) and (k != "eta" or row["method"] in eta_methods and not _ignores_eta(row))]
    return "".join(", " + p for p in parts)


def _at_default(row, key: str) -> bool:
    """A value no one typed: missing, or the one its task and method preset give it."""
    value = row[key]
    if not isinstance(value, str) and pd.isna(value):
        return True
    if key == "eta":  # shown or not by the eta rule in _extras
        return False
    default = preset_defaults(str(row.get("task")), str(row.get("method"))).get(key, _NO_DEFAULT)
    return default is not _NO_DEFAULT and _fmt(default) == _fmt(value)


_NO_DEFAULT = object()


def family(row, varying: list[str], eta_methods=()) -> str:
    """A configuration's name without its price or keep rate: 'DG-K (top-ρ)', 'DG-K (price λ), η=0'."""
    name = METHOD_NAMES.get(row["method"], row["method"])
    if gated(row):
        name += {"topk": " (top-ρ)", "quantile": " (quantile ρ)", "price": " (price λ)"}.get(row["gate"], "")
    return name + _extras(row, varying, eta_methods)


def label(row, varying: list[str], eta_methods=()) -> str:
    """A configuration's full name: 'PG', 'DG-K ρ=0.03', 'DG-K λ=0, η=0'."""
    name = METHOD_NAMES.get(row["method"], row["method"])
    if gated(row):
        name += " " + gate_value(row) + (" (quantile)" if row["gate"] == "quantile" else "")
    return name + _extras(row, varying, eta_methods)


def styles(agg: pd.DataFrame, keys: list[str], color_by: str = "label") -> pd.DataFrame:
    """Label, family, colour and marker per configuration, in a fixed order (PG, DG, DG-K, ...).

    PG, DG and CE keep fixed colours; other configurations (or families, with
    color_by="family") take the next colour of the cycle.
    """
    agg = _order(agg).reset_index(drop=True)
    varying = _varying(agg, keys)
    # η is named only for the methods whose runs differ in it (DG-K top-ρ at η=1 beside λ=0 at η=0)
    eta_methods = {m for m, g in agg.groupby("method") if g["eta"].nunique(dropna=False) > 1}
    agg["label"] = [label(r, varying, eta_methods) for _, r in agg.iterrows()]
    agg["family"] = [family(r, varying, eta_methods) for _, r in agg.iterrows()]
    colors, used, cycle = {}, set(), 0
    for _, r in agg.drop_duplicates(color_by).iterrows():
        fixed = FIXED_STYLE.get(r["method"])
        if fixed and r["method"] not in used:
            colors[r[color_by]] = fixed[0]
            used.add(r["method"])
        else:
            colors[r[color_by]] = GATED_COLORS[cycle % len(GATED_COLORS)]
            cycle += 1
    agg["color"] = agg[color_by].map(colors)
    agg["marker"] = agg["method"].map(lambda m: FIXED_STYLE.get(m, (None, "o"))[1])
    return agg


def _seeds(agg: pd.DataFrame) -> str:
    n = sorted(set(int(v) for v in agg["n"]))
    return str(n[0]) if len(n) == 1 else f"{n[0]}–{n[-1]}"


def key_numbers(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration, side by side: final quality (mean ± s.e. over seeds), backward
    and forward samples, the modelled cost F + c·B, and the wall-clock of the training loop."""
    keys = series_keys(runs)
    agg = styles(aggregate(runs, keys, ["final_quality", "backward_samples", "forward_samples", "cost",
                                         "train_seconds"]), keys)
    ratios = runs["cost_ratio"].dropna().unique()
    cost = f"cost (c={ratios[0]:g})" if len(ratios) == 1 else "cost"
    return pd.DataFrame({
        "configuration": agg["label"], "seeds": agg["n"],
        f"final {runs['quality_metric'].iloc[0]}": [
            f"{m:.4g} ± {s:.2g}" if np.isfinite(s) else f"{m:.4g}"
            for m, s in zip(agg["final_quality_mean"], agg["final_quality_se"])],
        "backward": agg["backward_samples_mean"].round().astype(int),
        "forward": agg["forward_samples_mean"].round().astype(int),
        cost: agg["cost_mean"].round().astype(int),
        "train_s": agg["train_seconds_mean"].round(1),
    })
