"""Helpers the figure modules share: panels, seed counts, mean curves, footers, first reach, and
the VAE figures' labels and lines (vae_*)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..sweeps import preset_defaults, series_keys
from .core import FigureData


def panels(ncols: int, width: float = 5.2):
    """A row of `ncols` axes, and pyplot."""
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width * ncols, 4.2), squeeze=False, layout="constrained")[1][0], plt


def seeds_text(runs: pd.DataFrame, keys: list[str] | None = None) -> str:
    """Seeds per configuration (`keys`, by default `series_keys`): '3', or '2–5' where they
    differ. Distinct seeds, not runs: H* passes keys without the horizon, each seed's runs
    being spread over the horizons its search tried."""
    n = runs.groupby(keys or series_keys(runs), dropna=False)["seed"].nunique()
    return str(n.min()) if n.min() == n.max() else f"{n.min()}–{n.max()}"


def steps_text(runs: pd.DataFrame) -> str:
    n = sorted(set(int(v) for v in runs["steps"]))
    return f"{n[0]:,}" if len(n) == 1 else f"{n[0]:,}–{n[-1]:,}"


def config_value_list(runs: pd.DataFrame, key: str) -> list:
    """Each run's value of a config column; a table that lacks the column (written before
    configs were flattened) takes each run's preset default."""
    if key in runs:
        return list(runs[key])
    return [preset_defaults(str(t), str(m)).get(key) for t, m in zip(runs["task"], runs["method"])]


def config_values(runs: pd.DataFrame, key: str) -> str:
    """The values of a config column across runs ('10', or '8, 12'), for titles."""
    values = pd.Series(config_value_list(runs, key))
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in sorted(values.dropna().unique()))


def footer(fig, note: str | None) -> None:
    if note:
        fig.text(0.5, -0.01, note, ha="center", va="top", fontsize=8, style="italic", color="0.3")


def agg_curves(curves: pd.DataFrame, keys: list[str], x: str = "forward_samples") -> pd.DataFrame:
    """Mean and s.e. over seeds of the quality (and the mean x) at each step."""
    g = curves.groupby([*keys, "step"], dropna=False, sort=False)
    out = g["quality"].agg(["mean", "sem", "size"]).join(g[x].mean().rename("x"))
    return out.reset_index().sort_values([*keys, "step"])


def line(ax, d: pd.DataFrame, color, label: str, lw: float = 1.5, logy: bool = True, ls: str = "-") -> None:
    """A mean curve of `agg_curves` with its ±1 s.e. band."""
    m, se, x = d["mean"].to_numpy(float), np.nan_to_num(d["sem"].to_numpy(float)), d["x"].to_numpy(float)
    ax.plot(x, m, color=color, lw=lw, ls=ls, label=label)
    lo = np.where(m - se > 0, m - se, m) if logy else m - se
    ax.fill_between(x, lo, m + se, color=color, alpha=0.18, lw=0)


def first_reach(curves: pd.DataFrame, keys: list[str], target: float) -> pd.DataFrame:
    """Per configuration, the mean-over-seeds curve's first row at or below target: its mean
    forward, backward and re-forward samples (NaN where the mean curve never gets there)."""
    from ..plots import curve_table

    agg = curve_table(curves, keys, "quality", ["forward_samples", "backward_samples", "reforward_samples"])
    out = []
    for lab, g in agg.groupby("label", sort=False):
        hit = g.sort_values("step")
        hit = hit[hit["quality_mean"] <= target]
        row = hit.iloc[0] if len(hit) else None
        out.append({"label": lab, "method": g["method"].iloc[0], "color": g["color"].iloc[0],
                    "best": g["quality_mean"].min(), "step": row["step"] if row is not None else np.nan,
                    **{k: row[f"{k}_samples_mean"] if row is not None else np.nan
                       for k in ("forward", "backward", "reforward")}})
    return pd.DataFrame(out)


def mnist_source_note(d: FigureData, runs: pd.DataFrame) -> str | None:
    """A line for the figure when the MNIST runs learnt on the 10k test-split fallback
    (their summary.json says data_source test-split), None when they used the full set."""
    sources, sizes = set(), set()
    if "data_source" in runs:
        sources |= set(runs["data_source"].dropna())
        if {"train_images", "eval_images"} <= set(runs):
            sizes |= {(t, e) for t, e in zip(runs["train_images"], runs["eval_images"]) if pd.notna(t) and pd.notna(e)}
    for run in runs["run"]:  # tables written before the data columns: the run folder's summary
        try:
            summary = json.loads((d.out / "runs" / run / "summary.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if summary.get("data_source"):
            sources.add(summary["data_source"])
            sizes.add((summary.get("train_images"), summary.get("eval_images")))
    if not sources - {"full"}:
        return None
    if len(sizes) == 1 and None not in next(iter(sizes)):
        train, ev = next(iter(sizes))
        split = f"{train / 1000:g}k train / {ev / 1000:g}k eval images"
    else:
        split = "train / eval images"
    return (f"MNIST: test-split fallback ({split} from the 10k test set; the 60k training files were absent), "
            "not the paper's 60k setting")


# ---------------------------------------------------------------- the VAE figures' labels and lines
VAE_NAMES = {"reparam": "reparam", "gumbel": "Gumbel-Softmax", "pg": "REINFORCE (PG)", "dg": "DG"}
VAE_COLORS = {"reparam": "teal", "gumbel": "purple", "pg": "0.35", "dg": "C0", "silent": "crimson"}
VAE_GATE_COLORS = {"0.01": "C5", "0.03": "C1", "0.1": "C3", "0.3": "C4"}  # DG-K and its random control share one


def _cell(row, key, default=None):
    v = row.get(key, default)
    return default if v is None or isinstance(v, float) and np.isnan(v) else v


def vae_into(row) -> str:
    """What a silent run annealed into (method.into, or the latent's pathwise estimator)."""
    return _cell(row, "method.into") or ("reparam" if _cell(row, "task.latent") == "gaussian" else "gumbel")


def vae_label(row) -> str:
    """'Silent → Gumbel-Softmax', 'DG-K ρ=0.1', 'random gate ρ=0.1', 'REINFORCE (PG)', ..."""
    m = row["method"]
    if m == "silent":
        if _cell(row, "method.schedule") == "constant":
            return "Silent (w = 1: exact gradient)"
        return f"Silent → {VAE_NAMES.get(vae_into(row), vae_into(row))}"
    if m == "dgk":
        rho = f"ρ={row['keep_rate']:g}" if row.get("gate") in ("topk", "quantile") else f"λ={row['price']:g}"
        return f"random gate {rho}" if _cell(row, "method.signal") == "random" else f"DG-K {rho}"
    name = VAE_NAMES.get(m, m)
    return name + (" (ST)" if m == "gumbel" and _cell(row, "method.straight_through") is True else "")


def vae_color(lab: str, i: int) -> str:
    if lab.startswith("Silent"):
        return VAE_COLORS["silent"]
    if lab.startswith(("DG-K", "random gate")):
        return VAE_GATE_COLORS.get(lab.rsplit("=", 1)[-1], ["C6", "C8", "C9"][i % 3])
    for m, name in VAE_NAMES.items():
        if lab.startswith(name):
            return VAE_COLORS[m]
    return ["C1", "C3", "C4", "C5", "C6"][i % 5]


def vae_labelled(d: FigureData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs and curves with a `label` column."""
    runs = d.runs.assign(label=[vae_label(r) for _, r in d.runs.iterrows()])
    curves = d.curves.assign(label=d.curves["run"].map(dict(zip(runs["run"], runs["label"]))))
    return runs, curves


def vae_mean_curve(curves: pd.DataFrame, y: str, x: str = "step") -> pd.DataFrame:
    g = curves.groupby(["label", "step"], sort=False)
    out = g[y].agg(["mean", "sem", "size"]).join(g[x].mean().rename("x"))
    return out.reset_index().sort_values(["label", "step"])


def vae_lines(ax, curves: pd.DataFrame, y: str = "quality", x: str = "step", logy: bool = False,
              floor: float | None = None, order: list[str] | None = None) -> None:
    """Mean over seeds ± 1 s.e. per label; on a log axis, zeros are drawn at `floor`."""
    agg = vae_mean_curve(curves, y, x)
    for i, lab in enumerate(order or list(dict.fromkeys(agg["label"]))):
        c = agg[agg["label"] == lab]
        if c.empty:
            continue
        m, se, xv = c["mean"].to_numpy(float), np.nan_to_num(c["sem"].to_numpy(float)), c["x"].to_numpy(float)
        if floor is not None:
            m = np.maximum(m, floor)
        ax.plot(xv, m, color=vae_color(lab, i), lw=2 if lab.startswith(("Silent", "DG-K")) else 1.4, label=lab,
                ls=":" if lab.startswith("random") else "-")
        lo = np.where(m - se > 0, m - se, m) if logy else m - se
        ax.fill_between(xv, lo, m + se, color=vae_color(lab, i), alpha=0.18, lw=0)
    if logy:
        ax.set_yscale("log")
    ax.grid(True, which="major", alpha=0.3)


def vae_summary(runs: pd.DataFrame, curves: pd.DataFrame, lab: str) -> str:
    """'final -ELBO m ± se (n), mean over evaluations a': the second is lower for a faster learner."""
    f = runs.loc[runs["label"] == lab, "final_quality"].to_numpy(float)
    auc = curves[curves["label"] == lab].groupby("run")["quality"].mean().to_numpy(float)
    se = f.std(ddof=1) / np.sqrt(len(f)) if len(f) > 1 else float("nan")
    return (f"{lab}: final test −ELBO {f.mean():.2f} ± {se:.2f} (n={len(f)}), "
            f"mean over evaluations {auc.mean():.2f}")


def vae_title(d: FigureData, runs: pd.DataFrame) -> str:
    steps = sorted({int(v) for v in runs["steps"]})
    n = runs.groupby("label").size()
    seeds = str(n.min()) if n.min() == n.max() else f"{n.min()}–{n.max()}"
    return f"scale {d.scale.name}: {', '.join(f'{s:,}' for s in steps)} steps of 100 images, mean over {seeds} seeds ± 1 s.e."
