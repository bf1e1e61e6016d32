"""VAE claim 2 (Silent Gradients, arXiv 2508.03587): with the MLP decoder, silent-guided training
annealed into a stochastic estimator ends at a better test ELBO than that estimator alone.

The runs: task=vae with the Bernoulli MLP decoder; reparam (Gaussian code), Gumbel-Softmax and
REINFORCE (categorical code), each alone and as what method=silent anneals into, its weight w
falling linearly from 1 to 0 over the first half of the run (ANNEAL_SEEDS seeds: at least 5
from report scale on). Panels: test −ELBO against steps per pair, the anneal shaded; the final
test −ELBO per seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .common import VAE_NAMES, panels, vae_color, vae_labelled, vae_lines, vae_mean_curve, vae_summary, vae_title
from .core import Figure, FigureData, Scale, Sweep

ANNEAL_SEEDS = {"test": 2, "quick": 2, "report": 5, "paper": 10}
PAIRS = [("gaussian", "reparam"), ("categorical", "gumbel"), ("categorical", "pg")]


def base(s: Scale) -> tuple[str, ...]:
    return s.task("vae", seeds=ANNEAL_SEEDS.get(s.name))


def anneal(s: Scale) -> str:
    """The silent weight falls from 1 to 0 over the first half of the run."""
    steps = s.budgets["vae"].steps if "vae" in s.budgets else 2000
    return f"method.anneal_steps={max(1, steps // 2)}"


def categorical_sampled(s: Scale, seeds: int | None = None) -> Sweep:
    """Gumbel-Softmax and REINFORCE on the categorical code (vae_gate reuses them)."""
    return Sweep("vae-categorical-sampled", (*s.task("vae", seeds=seeds or ANNEAL_SEEDS.get(s.name)), "method=gumbel,pg"))


def sweeps(s: Scale) -> list[Sweep]:
    return [Sweep("vae-gaussian-reparam", (*base(s), "task.latent=gaussian", "method=reparam")),
            Sweep("vae-gaussian-silent", (*base(s), "task.latent=gaussian", "method=silent", anneal(s))),
            categorical_sampled(s),
            Sweep("vae-categorical-silent", (*base(s), "method=silent", "method.into=gumbel,pg", anneal(s)))]


def draw(d: FigureData) -> list[Path]:
    from ..plots import save, tidy_axes

    runs, curves = vae_labelled(d)
    axes, plt = panels(4, 4.6)
    finals = []
    for ax, (latent, estimator) in zip(axes, PAIRS):
        name = VAE_NAMES[estimator]
        pair = [name, f"Silent → {name}"]
        on = runs["task.latent"].astype(str) == latent if "task.latent" in runs else pd.Series(True, runs.index)
        sel = runs[on & runs["label"].isin(pair)]
        mine = curves[curves["run"].isin(sel["run"])]
        vae_lines(ax, mine, order=pair)
        steps = sel["method.anneal_steps"].dropna().unique() if "method.anneal_steps" in sel else []
        if len(steps):
            ax.axvspan(0, float(steps[0]), color="crimson", alpha=0.06, lw=0, label="silent weight w: 1 → 0")
        ax.set_title(f"{latent} code: {name}", fontsize=10)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
        tidy_axes(ax)
        late = vae_mean_curve(mine, "quality")
        if len(late):  # the early steps would flatten the end on one axis: zoom on the second half
            last = late[late["step"] >= late["step"].max() / 2]
            lo, hi = (last["mean"] - last["sem"].fillna(0)).min(), (last["mean"] + last["sem"].fillna(0)).max()
            ax.set_ylim(lo - 0.3 * (hi - lo + 1), hi + 1.5 * (hi - lo + 1))
        short = {"Gumbel-Softmax": "Gumbel", "REINFORCE (PG)": "PG"}.get(name, name)
        for lab in pair:
            finals.append((f"Silent→\n{short}" if lab.startswith("Silent") else f"{latent[:5]}.\n{short}", lab,
                           sel.loc[sel["label"] == lab, "final_quality"].to_numpy(float)))
            d.notes.append(f"{latent} code, " + vae_summary(runs, curves, lab))
        a, b = (sel.loc[sel["label"] == lab, "final_quality"].to_numpy(float) for lab in pair)
        if len(a) and len(b):
            se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)) if min(len(a), len(b)) > 1 else np.nan
            d.notes.append(f"{latent} code, Silent → {name} minus {name} alone: final test −ELBO "
                           f"{b.mean() - a.mean():+.2f} ± {se:.2f} nats (negative: silent better)")
    axes[0].set_ylabel("test −ELBO (nats, Bernoulli MLP decoder)")
    ax = axes[3]
    for i, (tick, lab, y) in enumerate(finals):
        c = vae_color(lab, i)
        ax.scatter(i + np.linspace(-0.15, 0.15, len(y)), y, s=12, color=c, alpha=0.5, zorder=2)
        if len(y):
            ax.errorbar(i, y.mean(), yerr=y.std(ddof=1) / np.sqrt(len(y)) if len(y) > 1 else 0, fmt="o", color=c,
                        capsize=4, ms=7, zorder=3)
    ax.set_xticks(range(len(finals)), [t for t, _, _ in finals], fontsize=7)
    ax.set_title("final test −ELBO, each seed a dot", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    plt.gcf().suptitle("VAE, MLP decoder (claim 2): silent-guided, then annealed, against each estimator alone "
                       f"({vae_title(d, runs)})", fontsize=10)
    return save(plt.gcf(), d.stem())


FIGURE = Figure("vae_anneal", "VAE claim 2: silent then annealed against reparam, Gumbel-Softmax, REINFORCE alone",
                sweeps, draw)
