"""`lm` (beyond the paper, which has no language-model experiment): the Kondo gate on a
Hugging Face causal LM.

The runs: `task=lm` as it comes (docs/lm.md): a Qwen2 built from a config (64 wide, 2
blocks, about 0.08 M parameters) learning reversal as text ("0110=" -> "0110" reversed,
H = 6 digits, M = 2), 64 completions per step in groups of G = 8, the group-mean baseline.
The series: PG (GRPO's policy gradient, ungated), DG, DG-K at ρ = 10 % and 3 % of
completion tokens, and a random gate at each of those keep rates (the control). DG-K is the
Bernoulli gate with its price solved per batch, η = 0.3 (`method.gate=quantile`): the form
that reproduces the paper's DG-K on token reversal, where the hard token top-k stalls
(docs/tasks/reversal.md, and docs/lm.md's TRL comparison for this task). The random gate
keeps exactly ρ of the tokens (top-k on uniform noise), as in the reversal figure.

Panels: 1 − mean reward of sampled answers (`reward_error`) against forward samples
(completions sampled), against backward sequences (completions with at least one kept
token) and against backward tokens (kept completion tokens). `lm_table.md` (and .csv):
final sampled and greedy error, completions and tokens forward and backward, and the
positions the learning forward and backward ran (`learn_tokens`: prompt included, after
compaction and right-trimming).

Scales (steps of 64 completions / seeds), with the quick scale's measured ~0.17 s a step on
one thread of a loaded 2-core CPU (evaluation included): `test` 4 / 2 on 16 completions a
step (seconds of runs; the tests use it), `quick` 300 / 2 (12 jobs: 13 minutes, one at a
time), `report` 1,000 / 3 (18 jobs: under a CPU-hour), `paper` 10,000 / 10: 640,000
completions per run, 60 runs, sized for a GPU (`device=cuda`, `-j N`); on that CPU it would
be about 28 CPU-hours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .common import agg_curves, config_values, line, panels, seeds_text, steps_text
from .core import Figure, FigureData, Scale, Sweep

RATES = (0.1, 0.03)  # ρ, the kept fraction of completion tokens
ETA = 0.3  # the Bernoulli gate's temperature (the reversal gateform study's choice)
COLORS = {"PG": "0.3", "DG": "C0", 0.1: "C3", 0.03: "C1"}
BEYOND = "beyond the paper (it has no LM experiment)"


def sweeps(s: Scale) -> list[Sweep]:
    """Gated first: cheaper, so a run cut short keeps them."""
    base, rates = s.task("lm"), ",".join(f"{r:g}" for r in RATES)
    return [Sweep("lm-dgk", (*base, "method=dgk", "method.gate=quantile", f"method.eta={ETA:g}", f"keep_rate={rates}")),
            Sweep("lm-random", (*base, "method=dgk", "method.signal=random", f"keep_rate={rates}")),
            Sweep("lm-ungated", (*base, "method=pg,dg"))]


def _rate(row) -> float:
    return round(float(row["keep_rate"]), 6)


def series(row) -> str:
    """'PG', 'DG', 'DG-K ρ = 3 % (Bernoulli, η = 0.3)', 'random gate ρ = 3 %'."""
    if row["method"] != "dgk":
        return row["method"].upper()
    rho = f"ρ = {100 * _rate(row):g} %"
    if row.get("method.signal") == "random":
        return f"random gate {rho}"
    return f"DG-K {rho} ({'Bernoulli' if row['gate'] == 'quantile' else row['gate']}, η = {float(row['eta']):g})"


def _order(lab: str) -> tuple:
    return (["PG", "DG", "DG-K", "random"].index(lab.split(" ")[0]), -float(lab.split("= ")[1].split(" ")[0])
            if "ρ" in lab else 0)


def _color(runs: pd.DataFrame, lab: str) -> str:
    """PG and DG their fixed colours; DG-K and its random control share one per keep rate."""
    row = runs[runs["series"] == lab].iloc[0]
    return COLORS.get(_rate(row) if row["method"] == "dgk" else lab, "C4")


def table(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """One row per series: mean over seeds (± s.e. for the errors) of each run's end."""
    last = curves.sort_values("step").groupby("run").last()
    r = runs.set_index("run").join(last[["greedy_reward_error", "learn_tokens", "gen_tokens"]], how="left")
    g = r.groupby("series")
    se = lambda x: x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan  # noqa: E731
    out = pd.DataFrame({
        "seeds": g.size(),
        "reward_error": g["final_quality"].mean(), "reward_error_se": g["final_quality"].agg(se),
        "greedy_reward_error": g["greedy_reward_error"].mean(),
        "greedy_reward_error_se": g["greedy_reward_error"].agg(se),
        "forward_completions": g["forward_samples"].mean(), "completion_tokens_sampled": g["gen_tokens"].mean(),
        "backward_completions": g["backward_samples"].mean(), "backward_tokens": g["backward_units"].mean(),
        "learning_positions": g["learn_tokens"].mean(), "train_seconds": g["train_seconds"].mean()})
    return out.loc[sorted(out.index, key=_order)]


def markdown(t: pd.DataFrame) -> str:
    def e(m, s):
        return f"{m:.3f}" + (f" ± {s:.3f}" if np.isfinite(s) else "")
    lines = ["| series | seeds | 1 − reward, sampled | 1 − reward, greedy | forward completions "
             "| backward completions | backward tokens | learning positions | train s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for lab, r in t.iterrows():
        lines.append(f"| {lab} | {int(r.seeds)} | {e(r.reward_error, r.reward_error_se)} | "
                     f"{e(r.greedy_reward_error, r.greedy_reward_error_se)} | {r.forward_completions:,.0f} | "
                     f"{r.backward_completions:,.0f} | {r.backward_tokens:,.0f} | {r.learning_positions:,.0f} | "
                     f"{r.train_seconds:.0f} |")
    lines.append("\nAt the end of each run, mean ± 1 s.e. over seeds. 1 − reward: 1 − the mean reward (fraction "
                 "of answer positions right) of one sampled (greedy) answer to each of the evaluation prompts. "
                 "Backward completions have at least one kept token; backward tokens are the kept completion "
                 "tokens; learning positions are the prompt and completion positions the learning forward and "
                 "backward ran, after compaction and right-trimming. Train s: the training loop's wall-clock on "
                 "one thread. "
                 f"This experiment is {BEYOND}.")
    return "\n".join(lines) + "\n"


def draw(d: FigureData) -> list[Path]:
    from ..plots import quality_label, save, tidy_axes

    runs = d.runs.assign(series=[series(r) for r in d.runs.to_dict("records")])
    curves = d.curves.merge(runs[["run", "series"]], on="run")
    order = sorted(runs["series"].unique(), key=_order)
    t = table(runs, curves)
    (d.out / f"{d.name}_table.md").write_text(markdown(t))
    t.to_csv(d.stem("_table.csv"))
    axes, plt = panels(3, 5.4)
    for ax, (x, xlabel) in zip(axes, (("forward_samples", "forward samples (completions sampled)"),
                                      ("backward_samples", "backward sequences (completions with a kept token)"),
                                      ("backward_units", "backward tokens (kept completion tokens)"))):
        agg = agg_curves(curves, ["series"], x)
        for lab in order:
            line(ax, agg[agg["series"] == lab], _color(runs, lab), lab, lw=1.8 if lab.startswith("DG-K") else 1.4,
                 logy=False, ls=":" if lab.startswith("random") else "-")
        if x != "forward_samples":
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        tidy_axes(ax)
    axes[0].set_ylabel(quality_label("reward_error"))
    axes[0].legend(fontsize=8)
    for lab, r in t.iterrows():
        se = f" ± {r.reward_error_se:.3f}" if r.seeds > 1 else ""
        d.notes.append(f"{lab}: 1 − reward {r.reward_error:.3f}{se}"
                       + f" (greedy {r.greedy_reward_error:.3f}), backward completions {r.backward_completions:,.0f}, "
                       f"backward tokens {r.backward_tokens:,.0f} of {r.completion_tokens_sampled:,.0f} sampled")
    d.notes.append(f"lm: {BEYOND}; table in {d.out / f'{d.name}_table.md'}")
    model = (f"{config_values(runs, 'task.model.family')}, {config_values(runs, 'task.model.hidden_size')} wide, "
             f"{config_values(runs, 'task.model.layers')} blocks")
    plt.gcf().suptitle(f"Beyond the paper: the Kondo gate on a Hugging Face causal LM ({model}, built from a config), "
                       f"reversal as text, H = {config_values(runs, 'task.length')}, M = "
                       f"{config_values(runs, 'task.vocab')}; {steps_text(runs)} steps × "
                       f"{config_values(runs, 'task.batch_size')} completions (G = "
                       f"{config_values(runs, 'task.samples_per_prompt')}); mean over {seeds_text(runs)} "
                       "seeds ± 1 s.e.", fontsize=10)
    return save(plt.gcf(), d.stem()) + [d.out / f"{d.name}_table.md", d.stem("_table.csv")]


FIGURE = Figure("lm", f"{BEYOND[0].upper()}{BEYOND[1:]}: the gate on a Hugging Face causal LM, reversal as text: "
                "1 − reward against forward samples, backward completions and tokens; PG, DG, DG-K ρ = 10 %, 3 % "
                "(Bernoulli, η = 0.3), random gate at equal rate", sweeps, draw)
