"""Figure specs for task=vae (issue 18): the Silent Gradients paper's claims beside ours.

- `vae_linear`, claim (1): with a linear decoder (the closed-form setting, Gaussian code),
  the silent gradient has zero variance and its ELBO improves faster than reparam and
  REINFORCE on the same model. Panels: test -ELBO and the encoder's gradient variance
  against steps.
- `vae_anneal`, claim (2): with the MLP decoder, silent-guided training annealed into a
  stochastic estimator ends at a better test ELBO than that estimator alone: reparam
  (Gaussian code), Gumbel-Softmax and REINFORCE (categorical code), each pair on the same
  seeds. Panels: test -ELBO against steps per pair (the anneal shaded), final -ELBO per seed.
- `vae_gate`, claim (3), ours: DG and DG-K on the categorical encoder, test -ELBO against
  forward samples and against encoder backward passes, with a random gate at each keep
  rate as the control.

Registered on import. While `figures.py` is being turned into a package, it does not import
this module; `cli.py` does before `kondo-bench figures`, so `--only vae_linear` finds it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .figures import Budget, Figure, FigureData, Scale, Sweep, default_budget, register

# steps / evaluation interval / seeds per scale; claim (2) takes ANNEAL_SEEDS (at least 5 from report on)
BUDGETS = {"test": Budget(4, 2, 2, ("task.hidden=[16]", "task.var_draws=2", "task.var_images=16")),
           "quick": Budget(1000, 100, 2), "report": Budget(2000, 200, 3), "paper": Budget(10_000, 500, 10)}
ANNEAL_SEEDS = {"test": 2, "quick": 2, "report": 5, "paper": 10}
KEEP_RATES = {"test": "0.1", "quick": "0.1", "report": "0.03,0.1", "paper": "0.03,0.1"}
NAMES = {"reparam": "reparam", "gumbel": "Gumbel-Softmax", "pg": "REINFORCE (PG)", "dg": "DG"}
COLORS = {"reparam": "teal", "gumbel": "purple", "pg": "0.35", "dg": "C0", "silent": "crimson"}


def budget(s: Scale) -> Budget:
    return BUDGETS.get(s.name) or s.budgets.get("vae") or default_budget("vae")


def vae(s: Scale, seeds: int | None = None) -> tuple[str, ...]:
    """task=vae at this scale: steps, evaluation interval, seeds, and any extra overrides."""
    b = budget(s)
    return ("task=vae", f"task.steps={b.steps}", f"task.eval_every={b.eval_every}",
            "seed=" + ",".join(str(i) for i in range(seeds or b.seeds)), *b.extra)


def anneal(s: Scale) -> str:
    """The silent weight falls from 1 to 0 over the first half of the run."""
    return f"method.anneal_steps={max(1, budget(s).steps // 2)}"


# ---------------------------------------------------------------- labels and lines
def _get(row, key, default=None):
    v = row.get(key, default)
    return default if v is None or isinstance(v, float) and np.isnan(v) else v


def into_of(row) -> str:
    """What a silent run annealed into (method.into, or the latent's pathwise estimator)."""
    return _get(row, "method.into") or ("reparam" if _get(row, "task.latent") == "gaussian" else "gumbel")


def label(row) -> str:
    m = row["method"]
    if m == "silent":
        if _get(row, "method.schedule") == "constant":
            return "Silent (w = 1: exact gradient)"
        return f"Silent → {NAMES.get(into_of(row), into_of(row))}"
    if m == "dgk":
        rho = f"ρ={row['keep_rate']:g}" if row.get("gate") in ("topk", "quantile") else f"λ={row['price']:g}"
        return f"random gate {rho}" if _get(row, "method.signal") == "random" else f"DG-K {rho}"
    name = NAMES.get(m, m)
    return name + (" (ST)" if m == "gumbel" and _get(row, "method.straight_through") is True else "")


GATE_COLORS = {"0.01": "C5", "0.03": "C1", "0.1": "C3", "0.3": "C4"}  # DG-K and its random control share one


def color(lab: str, i: int) -> str:
    if lab.startswith("Silent"):
        return COLORS["silent"]
    if lab.startswith(("DG-K", "random gate")):
        return GATE_COLORS.get(lab.rsplit("=", 1)[-1], ["C6", "C8", "C9"][i % 3])
    for m, name in NAMES.items():
        if lab.startswith(name):
            return COLORS[m]
    return ["C1", "C3", "C4", "C5", "C6"][i % 5]


def labelled(d: FigureData) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = d.runs.assign(label=[label(r) for _, r in d.runs.iterrows()])
    curves = d.curves.assign(label=d.curves["run"].map(dict(zip(runs["run"], runs["label"]))))
    return runs, curves


def mean_curve(curves: pd.DataFrame, y: str, x: str = "step") -> pd.DataFrame:
    g = curves.groupby(["label", "step"], sort=False)
    out = g[y].agg(["mean", "sem", "size"]).join(g[x].mean().rename("x"))
    return out.reset_index().sort_values(["label", "step"])


def draw_lines(ax, curves: pd.DataFrame, y: str = "quality", x: str = "step", logy: bool = False,
               floor: float | None = None, order: list[str] | None = None) -> None:
    """Mean over seeds ± 1 s.e. per label; on a log axis, zeros are drawn at `floor`, marked."""
    agg = mean_curve(curves, y, x)
    for i, lab in enumerate(order or list(dict.fromkeys(agg["label"]))):
        c = agg[agg["label"] == lab]
        if c.empty:
            continue
        m, se, xv = c["mean"].to_numpy(float), np.nan_to_num(c["sem"].to_numpy(float)), c["x"].to_numpy(float)
        if floor is not None:
            m = np.maximum(m, floor)
        ax.plot(xv, m, color=color(lab, i), lw=2 if lab.startswith(("Silent", "DG-K")) else 1.4, label=lab,
                ls=":" if lab.startswith("random") else "-")
        lo = np.where(m - se > 0, m - se, m) if logy else m - se
        ax.fill_between(xv, lo, m + se, color=color(lab, i), alpha=0.18, lw=0)
    if logy:
        ax.set_yscale("log")
    ax.grid(True, which="major", alpha=0.3)


def summary(runs: pd.DataFrame, curves: pd.DataFrame, lab: str) -> str:
    """'final -ELBO m ± se (n), mean over evaluations a': the second is lower for a faster learner."""
    f = runs.loc[runs["label"] == lab, "final_quality"].to_numpy(float)
    auc = curves[curves["label"] == lab].groupby("run")["quality"].mean().to_numpy(float)
    se = f.std(ddof=1) / np.sqrt(len(f)) if len(f) > 1 else float("nan")
    return (f"{lab}: final test −ELBO {f.mean():.2f} ± {se:.2f} (n={len(f)}), "
            f"mean over evaluations {auc.mean():.2f}")


def _title(d: FigureData, runs: pd.DataFrame) -> str:
    steps = sorted({int(v) for v in runs["steps"]})
    n = runs.groupby("label").size()
    seeds = str(n.min()) if n.min() == n.max() else f"{n.min()}–{n.max()}"
    return f"scale {d.scale.name}: {', '.join(f'{s:,}' for s in steps)} steps of 100 images, mean over {seeds} seeds ± 1 s.e."


def _fig(ncols: int, width: float = 5.4):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, 4.3), squeeze=False, layout="constrained")
    return fig, axes[0]


# ---------------------------------------------------------------- claim (1): the linear decoder
def _linear_sweeps(s: Scale) -> list[Sweep]:
    base = (*vae(s), "task.decoder=linear", "task.latent=gaussian")
    return [Sweep("vae-linear-sampled", (*base, "method=reparam,pg")),
            Sweep("vae-linear-silent", (*base, "method=silent", "method.schedule=constant"))]


def _draw_linear(d: FigureData) -> list[Path]:
    from .plots import save, tidy_axes

    runs, curves = labelled(d)
    order = sorted(runs["label"].unique(), key=lambda lab: (not lab.startswith("Silent"), lab))
    fig, (a, gap, b) = _fig(3, 5.4)
    draw_lines(a, curves, order=order)
    a.set_ylabel("test −ELBO (nats; Gaussian density on binary pixels)")
    # (b) each method's mean curve minus the silent gradient's: above 0, behind it
    agg = mean_curve(curves, "quality")
    ref = agg[agg["label"] == order[0]].set_index("step")["mean"]
    for i, lab in enumerate(order[1:], 1):
        c = agg[agg["label"] == lab].set_index("step")
        gap.plot(c.index, c["mean"] - ref.reindex(c.index), color=color(lab, i), lw=1.4, label=lab)
        gap.fill_between(c.index, c["mean"] - c["sem"].fillna(0) - ref.reindex(c.index),
                         c["mean"] + c["sem"].fillna(0) - ref.reindex(c.index), color=color(lab, i), alpha=0.18, lw=0)
    gap.axhline(0, color=color(order[0], 0), lw=2, label=order[0])
    gap.set_ylabel(f"test −ELBO minus {order[0].split(' (')[0]}'s (nats; > 0: behind it)")
    gap.grid(True, alpha=0.3)
    var = curves["encoder_grad_var"].astype(float)
    floor = float(var[var > 0].min() / 10) if (var > 0).any() else 1e-12
    draw_lines(b, curves, y="encoder_grad_var", logy=True, floor=floor, order=order)
    b.axhline(floor, color="0.5", ls=":", lw=0.8)
    b.annotate(f"exactly 0 (drawn at {floor:.2g})", (0.01, floor), xycoords=("axes fraction", "data"),
               xytext=(0, 3), textcoords="offset points", fontsize=7, color="0.4")
    b.set_ylabel("encoder gradient variance (trace of Cov)")
    for ax in (a, gap, b):
        ax.set_xlabel("step")
        tidy_axes(ax)
    a.legend(fontsize=8)
    fig.suptitle("VAE, linear decoder x ~ N(Wz + b, σ²), Gaussian code (claim 1): test −ELBO, its gap to the silent "
                 f"gradient, and the variance of the encoder's gradient ({_title(d, runs)})", fontsize=10)
    for lab in order:
        zero = (curves.loc[curves["label"] == lab, "encoder_grad_var"] == 0).mean()
        d.notes.append(summary(runs, curves, lab) + f"; gradient variance exactly 0 in {zero:.0%} of the evaluations")
    return save(fig, d.stem())


# ---------------------------------------------------------------- claim (2): silent, then annealed
PAIRS = [("gaussian", "reparam"), ("categorical", "gumbel"), ("categorical", "pg")]


def _anneal_sweeps(s: Scale) -> list[Sweep]:
    base = vae(s, ANNEAL_SEEDS.get(s.name))
    return [Sweep("vae-gaussian-reparam", (*base, "task.latent=gaussian", "method=reparam")),
            Sweep("vae-gaussian-silent", (*base, "task.latent=gaussian", "method=silent", anneal(s))),
            Sweep("vae-categorical-sampled", (*base, "method=gumbel,pg")),
            Sweep("vae-categorical-silent", (*base, "method=silent", "method.into=gumbel,pg", anneal(s)))]


def _draw_anneal(d: FigureData) -> list[Path]:
    from .plots import save, tidy_axes

    runs, curves = labelled(d)
    fig, axes = _fig(4, 4.6)
    finals = []
    for ax, (latent, base) in zip(axes, PAIRS):
        pair = [NAMES[base], f"Silent → {NAMES[base]}"]
        on = runs["task.latent"].astype(str) == latent if "task.latent" in runs else pd.Series(True, runs.index)
        sel = runs[on & runs["label"].isin(pair)]
        draw_lines(ax, curves[curves["run"].isin(sel["run"])], order=pair)
        steps = sel["method.anneal_steps"].dropna().unique() if "method.anneal_steps" in sel else []
        if len(steps):
            ax.axvspan(0, float(steps[0]), color="crimson", alpha=0.06, lw=0, label="silent weight w: 1 → 0")
        ax.set_title(f"{latent} code: {NAMES[base]}", fontsize=10)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
        tidy_axes(ax)
        # the last eval's spread makes the early steps unreadable on one axis: zoom on the second half
        late = mean_curve(curves[curves["run"].isin(sel["run"])], "quality")
        if len(late):
            last = late[late["step"] >= late["step"].max() / 2]
            lo, hi = (last["mean"] - last["sem"].fillna(0)).min(), (last["mean"] + last["sem"].fillna(0)).max()
            ax.set_ylim(lo - 0.3 * (hi - lo + 1), hi + 1.5 * (hi - lo + 1))
        for lab in pair:
            v = sel.loc[sel["label"] == lab, ["seed", "final_quality"]]
            short = {"Gumbel-Softmax": "Gumbel", "REINFORCE (PG)": "PG"}.get(NAMES[base], NAMES[base])
            finals.append((f"Silent→\n{short}" if lab.startswith("Silent") else f"{latent[:5]}.\n{short}", lab, v))
            d.notes.append(f"{latent} code, " + summary(runs, curves, lab))
        a, b = (sel.loc[sel["label"] == lab, "final_quality"].to_numpy(float) for lab in pair)
        if len(a) and len(b):
            se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)) if min(len(a), len(b)) > 1 else np.nan
            d.notes.append(f"{latent} code, Silent → {NAMES[base]} minus {NAMES[base]} alone: final test −ELBO "
                           f"{b.mean() - a.mean():+.2f} ± {se:.2f} nats (negative: silent better)")
    axes[0].set_ylabel("test −ELBO (nats, Bernoulli MLP decoder)")
    ax = axes[3]
    for i, (tick, lab, v) in enumerate(finals):
        c = color(lab, i)
        y = v["final_quality"].to_numpy(float)
        ax.scatter(i + np.linspace(-0.15, 0.15, len(y)), y, s=12, color=c, alpha=0.5, zorder=2)
        if len(y):
            ax.errorbar(i, y.mean(), yerr=y.std(ddof=1) / np.sqrt(len(y)) if len(y) > 1 else 0, fmt="o", color=c,
                        capsize=4, ms=7, zorder=3)
    ax.set_xticks(range(len(finals)), [t for t, _, _ in finals], fontsize=7)
    ax.set_title("final test −ELBO, each seed a dot", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"VAE, MLP decoder (claim 2): silent-guided, then annealed, against each estimator alone "
                 f"({_title(d, runs)})", fontsize=10)
    return save(fig, d.stem())


# ---------------------------------------------------------------- claim (3): DG and DG-K on the encoder
def _gate_sweeps(s: Scale) -> list[Sweep]:
    base, rates = vae(s), KEEP_RATES.get(s.name, "0.1")
    return [Sweep("vae-categorical-sampled", (*base, "method=gumbel,pg")),  # shared with vae_anneal
            Sweep("vae-gate-dg", (*base, "method=dg")),
            Sweep("vae-gate-dgk", (*base, "method=dgk", f"keep_rate={rates}")),
            Sweep("vae-gate-random", (*base, "method=dgk", "method.signal=random", f"keep_rate={rates}"))]


def _draw_gate(d: FigureData) -> list[Path]:
    from .plots import save, tidy_axes

    runs, curves = labelled(d)
    runs, curves = runs[runs["method"] != "gumbel"], curves[curves["method"] != "gumbel"]  # pathwise: no gate
    order = sorted(runs["label"].unique(), key=lambda lab: (lab.startswith(("DG-K", "random")), lab))
    fig, (a, b, c) = _fig(3, 5.4)
    draw_lines(a, curves, x="forward_samples", order=order)
    draw_lines(b, curves, x="backward_samples", order=order)
    b.set_xscale("log")
    for i, lab in enumerate(order):
        r = runs[runs["label"] == lab]
        y = r["final_quality"].to_numpy(float)
        c.errorbar(r["backward_samples"].mean(), y.mean(), yerr=y.std(ddof=1) / np.sqrt(len(y)) if len(y) > 1 else 0,
                   fmt="o", color=color(lab, i), capsize=3, label=lab, ls="none",
                   mfc="white" if lab.startswith("random") else color(lab, i))
        d.notes.append(summary(runs, curves, lab) + f", encoder backward samples {r['backward_samples'].mean():,.0f}")
    c.set_xscale("log")
    c.grid(True, alpha=0.3)
    c.legend(fontsize=7, title="random gate: open, at DG-K's keep rate", title_fontsize=7)
    a.set_ylabel("test −ELBO (nats)")
    for ax, xl in ((a, "forward samples (codes screened)"), (b, "encoder backward samples"),
                   (c, "encoder backward samples (whole run)")):
        ax.set_xlabel(xl)
        tidy_axes(ax)
    c.set_ylabel("final test −ELBO")
    a.legend(fontsize=8)
    fig.suptitle("VAE, categorical code (claim 3, ours): DG and DG-K on the encoder, a random gate at equal keep "
                 f"rate as the control ({_title(d, runs)})", fontsize=10)
    return save(fig, d.stem())


register(Figure("vae_linear", "VAE claim 1: linear decoder, silent (exact) against reparam and REINFORCE",
                _linear_sweeps, _draw_linear))
register(Figure("vae_anneal", "VAE claim 2: silent then annealed against reparam, Gumbel-Softmax, REINFORCE alone",
                _anneal_sweeps, _draw_anneal))
register(Figure("vae_gate", "VAE claim 3: DG and DG-K on the categorical encoder against backward passes",
                _gate_sweeps, _draw_gate))
