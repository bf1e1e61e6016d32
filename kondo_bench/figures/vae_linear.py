"""VAE claim 1 (Silent Gradients, arXiv 2508.03587): with a linear decoder, the silent gradient
has zero variance and its ELBO improves faster than reparam and REINFORCE on the same model.

The runs: task=vae with task.decoder=linear (x ~ N(Wz + b, σ²), σ² learned) and a Gaussian
code; the silent gradient at w = 1 throughout (method.schedule=constant: the exact gradient of
the closed-form ELBO), reparam and REINFORCE (leave-one-out baseline). Panels: test −ELBO
against steps; each method's gap to the silent gradient; the encoder's gradient variance
(the trace of its covariance over draws on a fixed minibatch), where exactly 0 is drawn on a
marked floor.
"""

from __future__ import annotations

from pathlib import Path

from .common import panels, vae_color, vae_labelled, vae_lines, vae_mean_curve, vae_summary, vae_title
from .core import Figure, FigureData, Scale, Sweep


def sweeps(s: Scale) -> list[Sweep]:
    base = (*s.task("vae"), "task.decoder=linear", "task.latent=gaussian")
    return [Sweep("vae-linear-sampled", (*base, "method=reparam,pg")),
            Sweep("vae-linear-silent", (*base, "method=silent", "method.schedule=constant"))]


def draw(d: FigureData) -> list[Path]:
    from ..plots import save, tidy_axes

    runs, curves = vae_labelled(d)
    order = sorted(runs["label"].unique(), key=lambda lab: (not lab.startswith("Silent"), lab))
    (a, gap, b), plt = panels(3, 5.4)
    vae_lines(a, curves, order=order)
    a.set_ylabel("test −ELBO (nats; Gaussian density on binary pixels)")
    # each method's mean curve minus the silent gradient's: above 0, behind it
    agg = vae_mean_curve(curves, "quality")
    ref = agg[agg["label"] == order[0]].set_index("step")["mean"]
    for i, lab in enumerate(order[1:], 1):
        c = agg[agg["label"] == lab].set_index("step")
        base = ref.reindex(c.index)
        gap.plot(c.index, c["mean"] - base, color=vae_color(lab, i), lw=1.4, label=lab)
        gap.fill_between(c.index, c["mean"] - c["sem"].fillna(0) - base, c["mean"] + c["sem"].fillna(0) - base,
                         color=vae_color(lab, i), alpha=0.18, lw=0)
    gap.axhline(0, color=vae_color(order[0], 0), lw=2, label=order[0])
    gap.set_ylabel(f"test −ELBO minus {order[0].split(' (')[0]}'s (nats; > 0: behind it)")
    gap.grid(True, alpha=0.3)
    var = curves["encoder_grad_var"].astype(float)
    floor = float(var[var > 0].min() / 10) if (var > 0).any() else 1e-12
    vae_lines(b, curves, y="encoder_grad_var", logy=True, floor=floor, order=order)
    b.axhline(floor, color="0.5", ls=":", lw=0.8)
    b.annotate(f"exactly 0 (drawn at {floor:.2g})", (0.01, floor), xycoords=("axes fraction", "data"),
               xytext=(0, 3), textcoords="offset points", fontsize=7, color="0.4")
    b.set_ylabel("encoder gradient variance (trace of Cov)")
    for ax in (a, gap, b):
        ax.set_xlabel("step")
        tidy_axes(ax)
    a.legend(fontsize=8)
    plt.gcf().suptitle("VAE, linear decoder x ~ N(Wz + b, σ²), Gaussian code (claim 1): test −ELBO, its gap to the "
                       f"silent gradient, and the variance of the encoder's gradient ({vae_title(d, runs)})", fontsize=10)
    for lab in order:
        zero = (curves.loc[curves["label"] == lab, "encoder_grad_var"] == 0).mean()
        d.notes.append(vae_summary(runs, curves, lab) + f"; gradient variance exactly 0 in {zero:.0%} of the evaluations")
    return save(plt.gcf(), d.stem())


FIGURE = Figure("vae_linear", "VAE claim 1: linear decoder, silent (exact) against reparam and REINFORCE", sweeps, draw)
