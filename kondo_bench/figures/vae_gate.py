"""VAE claim 3 (ours, beyond both papers): DG and DG-K on the categorical encoder.

The encoder is the policy, the sampled code the action, log p(x|z) the reward. The runs:
REINFORCE (PG) and Gumbel-Softmax (shared with vae_anneal; Gumbel-Softmax is pathwise and not
drawn), DG, DG-K at top-ρ keep rates and a random gate at the same rates (the control).
Panels: test −ELBO against forward samples and against encoder backward samples; the final
test −ELBO against a run's encoder backward samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import panels, vae_color, vae_labelled, vae_lines, vae_summary, vae_title
from .core import Figure, FigureData, Scale, Sweep
from .vae_anneal import categorical_sampled


def sweeps(s: Scale) -> list[Sweep]:
    base, rates = s.task("vae"), s.pick(report="0.03,0.1", paper="0.03,0.1", default="0.1")
    return [categorical_sampled(s, seeds=s.budgets["vae"].seeds if "vae" in s.budgets else None),
            Sweep("vae-gate-dg", (*base, "method=dg")),
            Sweep("vae-gate-dgk", (*base, "method=dgk", f"keep_rate={rates}")),
            Sweep("vae-gate-random", (*base, "method=dgk", "method.signal=random", f"keep_rate={rates}"))]


def draw(d: FigureData) -> list[Path]:
    from ..plots import save, tidy_axes

    runs, curves = vae_labelled(d)
    runs, curves = runs[runs["method"] != "gumbel"], curves[curves["method"] != "gumbel"]  # pathwise: no gate
    order = sorted(runs["label"].unique(), key=lambda lab: (lab.startswith(("DG-K", "random")), lab))
    (a, b, c), plt = panels(3, 5.4)
    vae_lines(a, curves, x="forward_samples", order=order)
    vae_lines(b, curves, x="backward_samples", order=order)
    b.set_xscale("log")
    for i, lab in enumerate(order):
        r = runs[runs["label"] == lab]
        y = r["final_quality"].to_numpy(float)
        c.errorbar(r["backward_samples"].mean(), y.mean(), yerr=y.std(ddof=1) / np.sqrt(len(y)) if len(y) > 1 else 0,
                   fmt="o", color=vae_color(lab, i), capsize=3, label=lab, ls="none",
                   mfc="white" if lab.startswith("random") else vae_color(lab, i))
        d.notes.append(vae_summary(runs, curves, lab) + f", encoder backward samples {r['backward_samples'].mean():,.0f}")
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
    plt.gcf().suptitle("VAE, categorical code (claim 3, ours): DG and DG-K on the encoder, a random gate at equal "
                       f"keep rate as the control ({vae_title(d, runs)})", fontsize=10)
    return save(plt.gcf(), d.stem())


FIGURE = Figure("vae_gate", "VAE claim 3: DG and DG-K on the categorical encoder against backward passes", sweeps, draw)
