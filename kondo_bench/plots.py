"""Plots from the tidy tables of `sweeps.py`: the quality-cost trade-off and learning curves,
and `kondo-bench plot`.

Every function takes the tables (`runs`, `curves`) already loaded; none reads run folders.
Seeds of one configuration (equal on every config column but `seed`) are averaged, with
±1 standard error (error bars on points, a shaded band on curves); their names, colours and
markers come from `labels.py`. Files are written as PNG and PDF side by side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window: works on headless machines
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .labels import _fmt, _seeds, aggregate, gate_value, key_numbers, quality_label, styles  # noqa: E402
from .sweeps import load_sweep, pareto_front, series_keys  # noqa: E402
from .tasks import linear_quality  # noqa: E402

TRADEOFF_AXES = [("backward_samples", "backward samples"),
                 ("cost", "modelled cost (forward-equivalents, c = {c})"),
                 ("train_seconds", "wall-clock (s)")]


def save(fig, stem: str | Path) -> list[Path]:
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + ext) for ext in (".png", ".pdf")]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    # No creation date in the PDF: a figure redrawn from the same records is the same file,
    # so committed figures change in git only when what they show changes.
    fig.savefig(paths[1], bbox_inches="tight", metadata={"CreationDate": None})
    plt.close(fig)
    return paths


def zero_floor(values) -> float | None:
    """Where a log axis draws values that are exactly 0 (a run with no error left at the
    resolution of its evaluation): a tenth of the smallest positive value, or 1e-6 when none
    is positive. None when every value is positive, so nothing needs drawing differently."""
    v = np.asarray(pd.Series(values).dropna(), dtype=float)
    if not len(v) or (v > 0).all():
        return None
    positive = v[v > 0]
    return float(positive.min() / 10) if len(positive) else 1e-6


def mark_floor(ax, floor: float | None, note: str | None = None) -> None:
    """A dotted line at the floor, saying what the points on it are: zeros, or with `note`
    whatever the caller clipped there (values below an evaluation's resolution)."""
    if floor is not None:
        ax.autoscale_view()
        lo, hi = ax.get_ylim()  # fixed limits that hold the floor (every point on it gives a flat range)
        ax.set_ylim(min(lo, floor / 2) if lo > 0 else floor / 2, max(hi, floor * 5))
        ax.axhline(floor, color="0.5", ls=":", lw=0.8, zorder=1)
        ax.annotate(note or f"0 (drawn at {floor:.2g} on this log axis)", (0.01, floor), xycoords=("axes fraction", "data"),
                    xytext=(0, 3), textcoords="offset points", fontsize=7, color="0.4")


def tradeoff_panel(ax, agg: pd.DataFrame, x: str, y: str = "final_quality", frontier: bool = True,
                   floor: float | None = None, floor_note: str | None = None, logy: bool = True) -> None:
    """Mean ± s.e. per configuration; gated points labelled by ρ or λ; the frontier as a step line.
    Means below `floor` (default: zero_floor of the means, for means of exactly 0) are drawn
    on it, and it is marked (with `floor_note`, if given); `logy=False` (a quality that can be
    0 or negative, such as a negative ELBO): a linear axis, no floor."""
    shown = set()
    floor = None if not logy else floor if floor is not None else zero_floor(agg[f"{y}_mean"])
    if floor is not None:
        agg = agg.assign(**{f"{y}_mean": agg[f"{y}_mean"].clip(lower=floor)})
    for _, r in agg.iterrows():
        gated = r["method"] == "dgk"
        fam = r["family"] if gated else r["label"]
        yerr = _nan0(r.get(f"{y}_se"))
        if yerr is not None and floor is not None:  # a bar stops at the floor too
            yerr = [[max(0.0, min(yerr, r[f"{y}_mean"] - floor))], [yerr]]
        ax.errorbar(r[f"{x}_mean"], r[f"{y}_mean"], xerr=_nan0(r.get(f"{x}_se")), yerr=yerr,
                    fmt=r["marker"], color=r["color"], ms=7 if gated else 8, capsize=2, lw=1,
                    mfc="white" if not gated else r["color"], mew=1.5,
                    label=None if fam in shown else fam, zorder=3)
        shown.add(fam)
        if gated:
            ax.annotate(gate_value(r), (r[f"{x}_mean"], r[f"{y}_mean"]), textcoords="offset points",
                        xytext=(5, 4), fontsize=7, color=r["color"])
    if frontier and len(agg) > 1:
        front = pareto_front(agg, f"{x}_mean", f"{y}_mean")
        ax.step(front[f"{x}_mean"], front[f"{y}_mean"], where="post", color="k", lw=1, ls="--",
                alpha=0.6, label="Pareto frontier", zorder=2)
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.grid(True, which="major", alpha=0.3)
    mark_floor(ax, floor, floor_note)


def _human(v: float, _pos=None) -> str:
    """Tick labels: 20k, 1.5M, 0.05."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:g}{suffix}"
    return f"{v:g}"


def tidy_axes(ax) -> None:
    """Readable ticks: 1-2-5 steps on log axes (denser over less than a decade), 20k not 20000."""
    ax.autoscale_view()
    for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if axis.get_scale() == "log" and lo > 0:
            decades = np.log10(hi / lo)
            subs = (1.0,) if decades > 3 else (1.0, 2.0, 5.0) if decades > 0.8 else (1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9)
            axis.set_major_locator(mticker.LogLocator(base=10, subs=subs))
            axis.set_minor_formatter(mticker.NullFormatter())
        axis.set_major_formatter(mticker.FuncFormatter(_human))


def _nan0(v):
    return None if v is None or pd.isna(v) else v


def plot_tradeoff(runs: pd.DataFrame, stem: str | Path, title: str | None = None, floor: float | None = None,
                  floor_note: str | None = None, footer: str | None = None) -> list[Path]:
    """Final quality against backward samples, modelled cost and wall-clock (three panels);
    `floor` (with `floor_note`) as in tradeoff_panel, `footer` a line under the figure."""
    keys = series_keys(runs)
    values = ["final_quality"] + [x for x, _ in TRADEOFF_AXES]
    agg = styles(aggregate(runs, keys, values), keys, color_by="family")
    c = runs["cost_ratio"].dropna().unique()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), sharey=True, layout="constrained")
    logy = runs["quality_metric"].iloc[0] not in linear_quality()
    floor = None if not logy else floor if floor is not None else zero_floor(agg["final_quality_mean"])
    for ax, (x, xlabel) in zip(axes, TRADEOFF_AXES):
        tradeoff_panel(ax, agg, x, floor=floor, floor_note=floor_note, logy=logy)
        ax.set_xlabel(xlabel.format(c=_fmt(c[0]) if len(c) == 1 else "per run"))
        tidy_axes(ax)
    axes[0].set_ylabel(f"final {quality_label(runs['quality_metric'].iloc[0])}")
    handles, labels = axes[0].get_legend_handles_labels()
    # the caption heads the legend under the axes (the layout cannot stack a legend and a caption there)
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), fontsize=8, frameon=False,
               title=_wrap(fig, footer) if footer else None, title_fontproperties={"size": 8, "style": "italic"})
    fig.suptitle(title or f"{runs['task'].iloc[0]}: quality against cost (mean over seeds ± 1 s.e.; "
                 f"n = {_seeds(agg)})", fontsize=11)
    return save(fig, stem)


def _wrap(fig, text: str) -> str:
    import textwrap

    return textwrap.fill(text, width=int(fig.get_figwidth() * 18))  # about the figure's width at 8 pt


def _footer(fig, text: str | None) -> None:
    """A caption under the figure, wrapped to its width; the layout makes room for it."""
    if text:
        fig.supxlabel(_wrap(fig, text), fontsize=8, style="italic", color="0.3")


def curve_table(curves: pd.DataFrame, keys: list[str], y: str, xs: list[str]) -> pd.DataFrame:
    """Mean over seeds at each evaluation step: x columns averaged, y with its standard error."""
    keys = [k for k in keys if k in curves.columns]
    values = list(dict.fromkeys([y, *[x for x in xs if x != "step"]]))
    agg = aggregate(curves, keys, values, by=("step",))
    if "step" in xs:
        agg["step_mean"] = agg["step"]
    return styles(agg, keys)


def curve_panel(ax, agg: pd.DataFrame, x: str, y: str, logx: bool = False, logy: bool = True,
                floor: float | None = None, floor_note: str | None = None) -> None:
    """One line per configuration with a shaded ±1 s.e. band. On a log axis, a band that
    reaches 0 keeps only its upper half, and means and bands below `floor` (default:
    zero_floor of the means, for means of exactly 0) are drawn on it, which is marked (with
    `floor_note`, if given): no plunge to rounding noise like 1e-17."""
    if logy:
        floor = floor if floor is not None else zero_floor(agg[f"{y}_mean"])
    for lab, d in agg.groupby("label", sort=False):
        d = d.sort_values("step")
        xv, m, se = d[f"{x}_mean"].to_numpy(float), d[f"{y}_mean"].to_numpy(float), d[f"{y}_se"].to_numpy(float)
        if logy and floor is not None:
            m = np.maximum(m, floor)
        color = d["color"].iloc[0]
        ax.plot(xv, m, color=color, lw=1.5, label=lab)
        se = np.nan_to_num(se)
        lo, hi = (np.where(m - se > 0, m - se, m) if logy else m - se), m + se
        if logy and floor is not None:
            lo, hi = np.maximum(lo, floor), np.maximum(hi, floor)
        ax.fill_between(xv, lo, hi, color=color, alpha=0.2, lw=0)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
        mark_floor(ax, floor, floor_note)
    ax.grid(True, which="major", alpha=0.3)


CURVE_AXES = [("forward_samples", "forward samples", False), ("backward_samples", "backward samples", True)]


def plot_curves(curves: pd.DataFrame, keys: list[str], stem: str | Path, y: str = "quality",
                axes_spec=CURVE_AXES, ylabel: str | None = None, title: str | None = None,
                floor: float | None = None, floor_note: str | None = None, footer: str | None = None) -> list[Path]:
    """Learning curves: quality against forward and backward samples (one panel each);
    `floor` (with `floor_note`) as in curve_panel, `footer` a line under the figure."""
    agg = curve_table(curves, keys, y, [x for x, _, _ in axes_spec])
    fig, axes = plt.subplots(1, len(axes_spec), figsize=(6.2 * len(axes_spec), 4.4), sharey=True, squeeze=False,
                             layout="constrained")
    metric = curves["quality_metric"].iloc[0] if y == "quality" else y
    logy = metric not in linear_quality()
    floor = None if not logy else floor if floor is not None else zero_floor(agg[f"{y}_mean"])
    for ax, (x, xlabel, logx) in zip(axes[0], axes_spec):
        curve_panel(ax, agg, x, y, logx=logx, logy=logy, floor=floor, floor_note=floor_note)
        ax.set_xlabel(xlabel)
        tidy_axes(ax)
    axes[0][0].set_ylabel(ylabel or quality_label(metric))
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title or f"{curves['task'].iloc[0]}: learning curves (mean over seeds ± 1 s.e.; "
                 f"n = {_seeds(agg)})", fontsize=11)
    _footer(fig, footer)
    return save(fig, stem)


def plot_main(argv: list[str]) -> int:
    """`kondo-bench plot SWEEP_DIR [--out DIR]`."""
    parser = argparse.ArgumentParser(prog="kondo-bench plot",
                                     description="Trade-off and learning-curve figures (PNG and PDF) of a sweep.")
    parser.add_argument("sweep_dir", help="a multirun folder (or any folder of run folders)")
    parser.add_argument("--out", help="folder for the figures (default: SWEEP_DIR/plots)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    root = Path(args.sweep_dir)
    tables = load_sweep(root) if root.is_dir() else None
    if tables is None or tables.runs.empty:
        print(f"kondo-bench: error: no complete runs under {root}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else root / "plots"
    from .errors import UserError
    from .preflight import check_out

    try:
        check_out(out)
    except UserError as e:
        print(f"kondo-bench: error: {e}", file=sys.stderr)
        return 2
    written = []
    tasks = tables.runs["task"].unique()
    for task in tasks:
        runs = tables.runs[tables.runs["task"] == task]
        curves = tables.curves[tables.curves["task"] == task] if not tables.curves.empty else tables.curves
        suffix = f"_{task}" if len(tasks) > 1 else ""
        written += plot_tradeoff(runs, out / f"tradeoff{suffix}")
        if not curves.empty:
            written += plot_curves(curves, series_keys(runs), out / f"curves{suffix}")
        print(f"{task}: final values side by side (backward/forward samples, modelled cost F + c·B in "
              "forward-equivalents, train_s the training loop's wall-clock in seconds):")
        print("    " + key_numbers(runs).to_string(index=False).replace("\n", "\n    "))
        for source, g in runs.groupby("data_source") if "data_source" in runs else []:
            print(f"    data: {source}, {g['train_images'].iloc[0]:,.0f} training / {g['eval_images'].iloc[0]:,.0f} "
                  "evaluation images" + ("" if source == "full" else " (the test-split fallback: not the "
                                         "paper's 60k setting; see docs/data.md)"))
        if not curves.empty:
            print(f"    learning curves: {out / f'curves{suffix}.png'}")
    if not tables.incomplete.empty:
        print(f"left out {len(tables.incomplete)} incomplete job(s); `kondo-bench summarize {root}` lists them")
    print("wrote " + ", ".join(str(p) for p in written if p.suffix != ".pdf"))
    return 0
