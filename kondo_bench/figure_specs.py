"""More figure specs for `kondo-bench figures`: screening signals, delight noise, gambling.

Registered on import; `figures.py` imports this module at its end, so `--only screening`
(or `noise`, `gambling`) finds them. Each spec is the usual `sweeps(scale)` + `draw(data)`:

- `screening`: DG-K's top-ρ gate at one keep rate, screening on delight against the other
  signals (random, advantage, |advantage|, surprisal, additive α·U + (1 − α)·ℓ), on MNIST
  (final test error per signal; learning curves) and on the single-context bandit.
- `noise`: DG and DG-K (ρ = 0.1) with relative noise σ on the delight they see
  (χ·(1 + σ·N(0, 1))): final MNIST test error against σ, PG as the reference.
- `gambling`: the bandit with reward noise σ = 2 (the gap is 1) on every arm
  (homoskedastic) or on 10 % of the wrong arms only (action-specific): PG, DG and
  DG-K (η = 0, λ = 0), error against steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .figures import Figure, FigureData, Scale, Sweep, _fig, _seeds, register

SIGNALS = ["delight", "random", "advantage", "abs_advantage", "surprisal", "additive"]
SIGNAL_ALPHA = 0.5
SIGNAL_STYLE = {  # colour, marker; delight stands out, random is the grey control
    "delight": ("C3", "o"), "random": ("0.45", "x"), "advantage": ("C0", "s"),
    "abs_advantage": ("C9", "D"), "surprisal": ("C2", "^"), "additive": ("C4", "v")}
DELIGHT_NOISE = [0, 0.25, 0.5, 1, 2]
NOISE_KEEP_RATE = 0.1
GAMBLING_NOISE = 2.0  # reward-noise sigma; the gap between the correct arm and the others is 1
GAMBLING_NOISY_ARMS = 0.1  # action-specific: this fraction of the wrong arms is noisy


def _task(s: Scale, task: str, steps: int | None = None, seeds: int | None = None,
          eval_every: int | None = None) -> tuple[str, ...]:
    """Like `Scale.task`, with the steps (and evaluation interval) replaceable."""
    b = s.budgets[task]
    return (f"task={task}", f"task.steps={steps or b.steps}", f"task.eval_every={eval_every or b.eval_every}",
            "seed=" + ",".join(str(i) for i in range(seeds or b.seeds)), *b.extra)


def _steps(runs: pd.DataFrame) -> str:
    n = sorted(set(int(v) for v in runs["steps"]))
    return f"{n[0]:,}" if len(n) == 1 else f"{n[0]:,}–{n[-1]:,}"


def mnist_source_note(d: FigureData, runs: pd.DataFrame) -> str | None:
    """A line for the figure when the MNIST runs learnt on the 10k test-split fallback
    (their summary.json says data_source test-split), None when they used the full set."""
    sources, sizes = set(), set()
    if "data_source" in runs:
        sources |= set(runs["data_source"].dropna())
    for run in runs["run"]:
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


def _footer(fig, note: str | None) -> None:
    if note:
        fig.text(0.5, -0.01, note, ha="center", va="top", fontsize=8, style="italic", color="0.3")


def _agg_curves(curves: pd.DataFrame, keys: list[str], x: str = "forward_samples") -> pd.DataFrame:
    """Mean and s.e. over seeds of the quality (and the mean x) at each step."""
    g = curves.groupby([*keys, "step"], dropna=False, sort=False)
    out = g["quality"].agg(["mean", "sem", "size"]).join(g[x].mean().rename("x"))
    return out.reset_index().sort_values([*keys, "step"])


def _line(ax, d: pd.DataFrame, color, label: str, lw: float = 1.5, logy: bool = True, ls: str = "-") -> None:
    m, se, x = d["mean"].to_numpy(float), np.nan_to_num(d["sem"].to_numpy(float)), d["x"].to_numpy(float)
    ax.plot(x, m, color=color, lw=lw, ls=ls, label=label)
    lo = np.where(m - se > 0, m - se, m) if logy else m - se
    ax.fill_between(x, lo, m + se, color=color, alpha=0.18, lw=0)


def _signal_label(sig: str, runs: pd.DataFrame) -> str:
    if sig == "additive":
        alpha = runs["method.signal_alpha"].dropna().unique() if "method.signal_alpha" in runs else [SIGNAL_ALPHA]
        return f"additive αU+(1−α)ℓ, α={alpha[0]:g}" if len(alpha) == 1 else "additive"
    return {"delight": "delight χ = Uℓ", "abs_advantage": "|advantage|", "advantage": "advantage U",
            "surprisal": "surprisal ℓ", "random": "random (control)"}.get(sig, sig)


def _signal_tick(sig: str, runs: pd.DataFrame) -> str:
    ticks = {"delight": "delight\nχ = Uℓ", "random": "random\n(control)", "advantage": "advantage\nU",
             "abs_advantage": "|advantage|\n|U|", "surprisal": "surprisal\nℓ"}
    return ticks.get(sig) or _signal_label(sig, runs).replace(" αU+(1−α)ℓ, ", "\n")


# ---------------------------------------------------------------- screening
def _screening_sweeps(s: Scale) -> list[Sweep]:
    rates = s.pick(paper="0.03,0.1", report="0.03", default="0.1")
    gate = ("method=dgk", f"keep_rate={rates}", f"method.signal={','.join(SIGNALS)}",
            f"method.signal_alpha={SIGNAL_ALPHA}")
    return [Sweep("screening-mnist", (*s.task("mnist", seeds=s.pick(report=3, paper=5)), *gate)),
            Sweep("screening-bandit", (*s.task("bandit"), *gate))]


def _signals(df: pd.DataFrame) -> list[str]:
    have = set(df["method.signal"])
    return [s for s in SIGNALS if s in have] + sorted(have - set(SIGNALS))


def _draw_screening(d: FigureData) -> list[Path]:
    import matplotlib.pyplot as plt

    from .plots import quality_label, save, tidy_axes

    runs, curves = d.runs, d.curves
    mnist, bandit = runs[runs["task"] == "mnist"], runs[runs["task"] == "bandit"]
    rates = sorted(runs["keep_rate"].dropna().unique())
    fig, axes = plt.subplots(len(rates), 3, figsize=(16.5, 4.4 * len(rates)), squeeze=False, layout="constrained")
    for row, rho in zip(axes, rates):
        at = runs[runs["keep_rate"] == rho]
        cur = curves[curves["keep_rate"] == rho]
        # (a) MNIST final test error per signal: mean ± s.e., each seed as a dot
        ax = row[0]
        m = at[at["task"] == "mnist"]
        sigs = _signals(m) if len(m) else []
        for i, sig in enumerate(sigs):
            v = m.loc[m["method.signal"] == sig, "final_quality"].to_numpy(float)
            color, marker = SIGNAL_STYLE.get(sig, ("k", "o"))
            se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0
            ax.errorbar(i, v.mean(), yerr=se, fmt=marker, color=color, ms=9, capsize=4, lw=1.5, mew=2, zorder=3)
            ax.scatter(i + np.linspace(-0.12, 0.12, len(v)), v, s=12, color=color, alpha=0.45, zorder=2)
            d.notes.append(f"MNIST ρ={rho:g}, {sig}: final test error {v.mean():.4f} ± {se:.4f} (n={len(v)})")
        ax.set_xticks(range(len(sigs)), [_signal_tick(s, m) for s in sigs], fontsize=8)
        ax.set_xlim(-0.6, len(sigs) - 0.4)
        ax.set_ylabel(f"final {quality_label('test_error')} (MNIST, {_steps(m) if len(m) else '?'} steps)")
        ax.set_title(f"MNIST, DG-K top-ρ, ρ = {rho:g}: final test error per screening signal", fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_ylim(bottom=0)
        # (b) MNIST learning curves; (c) bandit error against steps
        for ax, task, x, xlabel in ((row[1], "mnist", "forward_samples", "forward samples (images screened)"),
                                    (row[2], "bandit", "step", "step (batches of 100 pulls)")):
            c = cur[cur["task"] == task]
            if c.empty:
                ax.text(0.5, 0.5, f"no complete {task} runs", ha="center", transform=ax.transAxes)
                continue
            agg = _agg_curves(c, ["method.signal"], "forward_samples" if x != "step" else "step")
            for sig in _signals(c):
                color = SIGNAL_STYLE.get(sig, ("k", "o"))[0]
                _line(ax, agg[agg["method.signal"] == sig], color, _signal_label(sig, at),
                      lw=2.2 if sig == "delight" else 1.4)
            ax.set_yscale("log")
            ax.grid(True, which="major", alpha=0.3)
            ax.set_xlabel(xlabel)
            tidy_axes(ax)
        r = at[at["task"] == "bandit"]
        row[1].set_ylabel(quality_label("test_error") + " (MNIST)")
        row[1].set_title(f"MNIST, ρ = {rho:g}: test error against forward samples", fontsize=10)
        row[2].set_ylabel(quality_label("error") + " (bandit)")
        row[2].set_title(f"bandit (K = 100, one context), ρ = {rho:g}: error against steps", fontsize=10)
        for sig in _signals(r) if len(r) else []:
            v = r.loc[r["method.signal"] == sig, "final_quality"].to_numpy(float)
            d.notes.append(f"bandit ρ={rho:g}, {sig}: final error {v.mean():.3g} ± "
                           f"{(v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0):.2g} (n={len(v)})")
    legend_ax = axes[0][2] if axes[0][2].get_lines() else axes[0][1]  # the bandit panel's lower left is empty
    legend_ax.legend(fontsize=8, loc="lower left", title="screening signal (all panels)", title_fontsize=8)
    parts = []
    if len(mnist):
        parts.append(f"MNIST {_steps(mnist)} steps × 100 images")
    if len(bandit):
        parts.append(f"bandit {_steps(bandit)} steps × 100 pulls")
    fig.suptitle(f"Screening signals at equal keep rate: DG-K, top-ρ gate (scale {d.scale.name}: "
                 f"{', '.join(parts)}; mean over {_seeds(runs)} seeds ± 1 s.e.)", fontsize=11)
    _footer(fig, mnist_source_note(d, mnist) if len(mnist) else None)
    return save(fig, d.stem())


# ---------------------------------------------------------------- delight noise
def _noise_sweeps(s: Scale) -> list[Sweep]:
    base = _task(s, "mnist", steps=s.pick(quick=1500, report=5000), seeds=s.pick(quick=2, report=3, paper=5))
    noise = "method.delight_noise=" + ",".join(f"{v:g}" for v in DELIGHT_NOISE)
    return [Sweep("noise-pg", (*base, "method=pg")),
            Sweep("noise-dg", (*base, "method=dg", noise)),
            Sweep("noise-dgk", (*base, "method=dgk", f"keep_rate={NOISE_KEEP_RATE:g}", noise))]


def _noise_level(df: pd.DataFrame) -> pd.Series:
    return df["method.delight_noise"].astype(float) if "method.delight_noise" in df else pd.Series(0.0, df.index)


def _draw_noise(d: FigureData) -> list[Path]:
    from .plots import METHOD_NAMES, quality_label, save, tidy_axes

    runs, curves = d.runs.assign(sigma=_noise_level(d.runs)), d.curves.assign(sigma=_noise_level(d.curves))
    axes, plt = _fig(3)
    ax = axes[0]
    names = {"dg": "DG (η = 1)", "dgk": f"DG-K top-ρ, ρ = {NOISE_KEEP_RATE:g}"}
    colors = {"dg": "C0", "dgk": "C1"}
    pg = runs[runs["method"] == "pg"]["final_quality"].to_numpy(float)
    if len(pg):
        se = pg.std(ddof=1) / np.sqrt(len(pg)) if len(pg) > 1 else 0.0
        ax.axhspan(pg.mean() - se, pg.mean() + se, color="0.3", alpha=0.15, lw=0)
        ax.axhline(pg.mean(), color="0.3", ls="--", lw=1.2, label="PG (no delight; ± 1 s.e.)")
        d.notes.append(f"PG: final test error {pg.mean():.4f} ± {se:.4f} (n={len(pg)})")
    for method in ("dg", "dgk"):
        r = runs[runs["method"] == method]
        if r.empty:
            continue
        g = r.groupby("sigma")["final_quality"]
        mean, se, n = g.mean(), g.sem().fillna(0), g.size()
        ax.errorbar(mean.index, mean, yerr=se, fmt="o-", color=colors[method], capsize=3, lw=1.5, ms=6,
                    label=names[method], zorder=3)
        ax.scatter(r["sigma"] + (0.02 if method == "dgk" else -0.02), r["final_quality"], s=10,
                   color=colors[method], alpha=0.4, zorder=2)
        d.notes.append(f"{METHOD_NAMES[method]}: final test error by delight noise σ: " + ", ".join(
            f"σ={k:g} {mean[k]:.4f} ± {se[k]:.4f}" for k in mean.index) + f" (n={n.min()})")
    ax.set_xlabel("delight noise σ (the weight and gate see χ·(1 + σ·N(0, 1)))")
    ax.set_ylabel(f"final {quality_label('test_error')} (MNIST, {_steps(runs)} steps)")
    ax.set_xticks(DELIGHT_NOISE, [f"{v:g}" for v in DELIGHT_NOISE])
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("final test error against delight noise σ", fontsize=10)
    levels = sorted(curves.loc[curves["method"] != "pg", "sigma"].dropna().unique())
    cmap = plt.get_cmap("viridis")
    shade = {v: cmap(0.9 * i / max(1, len(levels) - 1)) for i, v in enumerate(levels)}
    for ax, method in zip(axes[1:], ("dg", "dgk")):
        c = curves[curves["method"] == method]
        if c.empty:
            continue
        agg = _agg_curves(c, ["sigma"])
        for v in levels:
            if (agg["sigma"] == v).any():
                _line(ax, agg[agg["sigma"] == v], shade[v], f"σ = {v:g}")
        p = curves[curves["method"] == "pg"]
        if not p.empty:
            _line(ax, _agg_curves(p, ["method"]), "0.3", "PG", lw=1.2, ls="--")
        ax.set_yscale("log")
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xlabel("forward samples (images screened)")
        ax.set_ylabel(quality_label("test_error"))
        ax.set_title(f"{names[method]}: test error against forward samples", fontsize=10)
        ax.legend(fontsize=8, title="delight noise", title_fontsize=8)
        tidy_axes(ax)
    fig = plt.gcf()
    fig.suptitle(f"Approximate delight on MNIST: relative noise σ on χ (scale {d.scale.name}: {_steps(runs)} steps "
                 f"× 100 images; mean over {_seeds(runs)} seeds ± 1 s.e.)", fontsize=11)
    _footer(fig, mnist_source_note(d, runs))
    return save(fig, d.stem())


# ---------------------------------------------------------------- gambling
def _gambling_sweeps(s: Scale) -> list[Sweep]:
    base = _task(s, "bandit", steps=s.pick(quick=400, test=None, default=1000),
                 eval_every=s.pick(quick=10, test=None, default=10),
                 seeds=s.pick(report=10))
    noisy = (f"task.reward_noise={GAMBLING_NOISE:g}", f"task.noisy_arms=1,{GAMBLING_NOISY_ARMS:g}")
    dgk = ("method=dgk", "method.eta=0", "price=0")
    return [Sweep("gambling-clean-ungated", (*base, "method=pg,dg", "task.reward_noise=0")),
            Sweep("gambling-clean-dgk", (*base, *dgk, "task.reward_noise=0")),
            Sweep("gambling-noisy-ungated", (*base, "method=pg,dg", *noisy)),
            Sweep("gambling-noisy-dgk", (*base, *dgk, *noisy))]


def _regimes(df: pd.DataFrame) -> list[tuple[str, pd.Series]]:
    noise = df["task.reward_noise"].astype(float)
    arms = df["task.noisy_arms"].astype(float).fillna(1.0) if "task.noisy_arms" in df else pd.Series(1.0, df.index)
    return [("no reward noise", noise == 0),
            (f"homoskedastic: every arm noisy, σ = {GAMBLING_NOISE:g}", (noise > 0) & (arms >= 1)),
            (f"action-specific: {GAMBLING_NOISY_ARMS:.0%} of wrong arms noisy, σ = {GAMBLING_NOISE:g}",
             (noise > 0) & (arms < 1))]


def _draw_gambling(d: FigureData) -> list[Path]:
    from .plots import quality_label, save

    runs, curves = d.runs, d.curves
    styles = {"pg": ("0.3", "PG"), "dg": ("C0", "DG (η = 1)"), "dgk": ("C1", "DG-K λ = 0, η = 0")}
    axes, plt = _fig(3)
    for ax, (title, _) in zip(axes, _regimes(curves)):
        mask = dict(_regimes(curves))[title]
        c = curves[mask]
        agg = _agg_curves(c, ["method"], "step")
        for method, (color, lab) in styles.items():
            if (agg["method"] == method).any():
                _line(ax, agg[agg["method"] == method], color, lab, logy=False)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("step (batches of 100 pulls)")
        ax.set_ylabel(quality_label("error"))
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        r = runs[dict(_regimes(runs))[title]]
        for method, (_, lab) in styles.items():
            v = r.loc[r["method"] == method, "final_quality"].to_numpy(float)
            if len(v):
                d.notes.append(f"{title}: {lab} final error {v.mean():.3g} ± "
                               f"{(v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0):.2g} (n={len(v)})")
    axes[0].legend(fontsize=8)
    plt.gcf().suptitle(f"Gambling: reward noise σ = {GAMBLING_NOISE:g} against a gap of 1 on the single-context "
                       f"bandit (K = 100; scale {d.scale.name}: {_steps(runs)} steps × 100 pulls; "
                       f"mean over {_seeds(runs)} seeds ± 1 s.e.)", fontsize=11)
    return save(plt.gcf(), d.stem())


register(Figure("screening", "DG-K at equal keep rate screening on delight against random, advantage, "
                "|advantage|, surprisal and additive signals (MNIST and bandit)", _screening_sweeps, _draw_screening))
register(Figure("noise", "MNIST final test error against relative delight noise σ, DG and DG-K (ρ = 0.1)",
                _noise_sweeps, _draw_noise))
register(Figure("gambling", "bandit with reward noise: homoskedastic against action-specific, PG, DG, DG-K (λ = 0)",
                _gambling_sweeps, _draw_gambling))
