"""`gateform`: which ρ-gate is the paper's "DG-K (ρ = 3 %)" on token reversal?

Every gate form at the same keep rate of tokens, ρ = 3 %, on H = 10, M = 2, a few seeds,
against DG ungated and a random gate at the same rate:

- the hard top-k over tokens, ties broken at random (our default) and ties all passing
  (the official code's `>=` against the k-th score);
- the Bernoulli gate with its price solved per batch for an expected keep rate ρ
  (`method.gate=quantile`) at η = 0.1, 0.3, 1, 3: η → 0 is the top-k, η → ∞ the random gate;
- the survivors with unit weight (the paper's) and with the DG weight (`method.estimator=dg`);
- a sequence-level gate (`method.unit=sequence`): whole answers ranked by their tokens' mean
  or summed delight, ρ = 3 % of answers.

Draws the learning curves and writes one table (`gateform_table.md`): sequence error at
0.1 M forward samples and at the end, backward tokens and sequences, wall-clock.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .common import panels, seeds_text
from .core import Figure, FigureData, Scale, Sweep

RHO = 0.03
ETAS = (0.1, 0.3, 1, 3)
METRIC = "seq_error"  # sampled sequence error: every reversal run reports it, before and after expected_error
AT = 100_000  # forward samples at which the table reads the error, the paper's "0.1 M"


def _sweeps(s: Scale) -> list[Sweep]:
    b = s.budgets["reversal"]
    steps = s.pick(test=b.steps, quick=300, default=2000)
    seeds = s.pick(test=2, quick=2, default=3)
    base = ("task=reversal", f"task.steps={steps}", f"task.eval_every={b.eval_every}",
            "seed=" + ",".join(str(i) for i in range(seeds)), *b.extra)
    gated = (*base, "method=dgk", f"keep_rate={RHO:g}")
    etas = ",".join(f"{e:g}" for e in ETAS)
    return [Sweep("gateform-dg", (*base, "method=dg")),
            Sweep("gateform-topk", (*gated, "method.gate=topk", "method.ties=random,all")),
            Sweep("gateform-random", (*gated, "method.gate=topk", "method.signal=random")),
            Sweep("gateform-quantile", (*gated, "method.gate=quantile", f"method.eta={etas}")),
            Sweep("gateform-dgweight", (*gated, "method.estimator=dg", "method.gate=topk,quantile")),
            Sweep("gateform-sequence", (*gated, "method.gate=topk", "method.unit=sequence",
                                        "method.unit_reduce=mean,sum"))]


def _col(df: pd.DataFrame, key: str, default) -> pd.Series:
    return df[key] if key in df else pd.Series(default, index=df.index)


def form_label(row) -> str:
    """What a run's gate is, in words, from its config columns."""
    if row["gate"] == "none":
        return "DG (ungated)"
    g, sig = row["gate"], row.get("method.signal", "delight")
    weight = " + DG weight" if row.get("estimator") == "dg" or row.get("method.estimator") == "dg" else ""
    if sig == "random":
        return f"random gate ρ = {row['keep_rate']:g}"
    if row.get("method.unit", "token") == "sequence":
        form = f"sequence top-k ({row.get('method.unit_reduce', 'mean')} delight)"
    elif g == "topk":
        form = f"top-k, ties {row.get('method.ties', 'random')}"
    else:
        form = f"Bernoulli (quantile) η = {float(row['eta']):g}"
    return form + weight


def _order(label: str) -> tuple:
    keys = ["DG (ungated)", "top-k, ties random", "top-k, ties all", "Bernoulli", "sequence", "random"]
    return (next((i for i, k in enumerate(keys) if label.startswith(k)), len(keys)), label)


def _at(curves: pd.DataFrame, forward: float) -> pd.Series:
    """Each run's sampled error at the last evaluation at or before `forward` forward samples."""
    c = curves[curves["forward_samples"] <= forward].sort_values("forward_samples")
    return c.groupby("run")[METRIC].last()


def table(d: FigureData) -> pd.DataFrame:
    runs = d.runs.copy()
    runs["form"] = [form_label(r) for r in runs.to_dict("records")]
    runs["at_01M"] = runs["run"].map(_at(d.curves, AT))
    runs["final"] = runs["run"].map(_at(d.curves, float("inf")))
    g = runs.groupby("form")
    se = lambda x: x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan  # noqa: E731
    out = pd.DataFrame({
        "seeds": g.size(),
        "error_at_0.1M": g["at_01M"].mean(), "error_at_0.1M_se": g["at_01M"].agg(se),
        "final_error": g["final"].mean(), "final_error_se": g["final"].agg(se),
        "forward_samples": g["forward_samples"].mean(),
        "backward_tokens": g["backward_units"].mean(), "backward_sequences": g["backward_samples"].mean(),
        "wall_seconds": g["wall_seconds"].mean()})
    return out.loc[sorted(out.index, key=_order)]


def _markdown(t: pd.DataFrame, resolution: float) -> str:
    def e(m, s):
        return f"{m:.3g}" + (f" ± {s:.2g}" if np.isfinite(s) else "")
    lines = ["| gate form (ρ = 3 % where gated) | seeds | error at 0.1 M | final error | backward tokens | "
             "backward sequences | wall-clock s |", "|---|---|---|---|---|---|---|"]
    for form, r in t.iterrows():
        lines.append(f"| {form} | {int(r.seeds)} | {e(r['error_at_0.1M'], r['error_at_0.1M_se'])} | "
                     f"{e(r.final_error, r.final_error_se)} | {r.backward_tokens:,.0f} | "
                     f"{r.backward_sequences:,.0f} | {r.wall_seconds:.0f} |")
    lines.append(f"\nErrors are the sampled sequence error on the evaluation prompts (resolution about "
                 f"{resolution:.1g}: one wrong token in all of them); mean ± 1 s.e. over seeds.")
    return "\n".join(lines) + "\n"


def _draw(d: FigureData) -> list[Path]:
    from ..plots import save

    runs = d.runs.copy()
    runs["form"] = [form_label(r) for r in runs.to_dict("records")]
    curves = d.curves.merge(runs[["run", "form"]], on="run")
    horizon = float(_col(runs, "task.horizon", 10).iloc[0])
    prompts = float(_col(runs, "task.eval_prompts", 200).iloc[0])
    floor = 1 / (prompts * horizon)  # one wrong token over all evaluation prompts
    t = table(d)
    (d.out / "gateform_table.md").write_text(_markdown(t, floor))
    t.to_csv(d.out / "gateform_table.csv")
    d.notes.extend(f"{form}: error at 0.1 M {r['error_at_0.1M']:.3g}, final {r.final_error:.3g}, "
                   f"backward tokens {r.backward_tokens:,.0f}" for form, r in t.iterrows())
    axes, plt = panels(2, width=6.2)
    fig = plt.gcf()
    forms = list(t.index)
    colors = {f: plt.cm.tab20(i / max(len(forms) - 1, 1)) for i, f in enumerate(forms)}
    for ax, x, xlabel in ((axes[0], "forward_samples", "forward samples"),
                          (axes[1], "backward_units", "backward tokens")):
        for form in forms:
            c = curves[curves["form"] == form].groupby("step").agg(x=(x, "mean"), y=(METRIC, "mean"))
            style = "--" if form.startswith(("DG (", "random")) else "-"
            ax.plot(c["x"], c["y"].clip(lower=floor / 2), style, color=colors[form], label=form, lw=1.4)
        ax.axhline(floor, color="0.6", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        if x == "backward_units":
            ax.set_xscale("log")
    axes[0].set_ylabel("sequence error (mean over seeds)")
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"Token reversal H = {horizon:g}: gate forms at ρ = {RHO:g} of tokens ({seeds_text(d.runs)} seeds); "
                 f"dotted line: evaluation resolution {floor:.1g}, zeros drawn at half of it", fontsize=9)
    return save(fig, d.stem())


FIGURE = Figure("gateform", "token reversal: which ρ = 3 % gate form reproduces the paper's DG-K (top-k, "
                "ties, Bernoulli at η, DG weight, sequence-level) against DG and a random gate",
                _sweeps, _draw, metric=METRIC)
