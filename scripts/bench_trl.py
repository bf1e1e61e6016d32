"""Benchmark: TRL's GRPOTrainer and kondo-bench's task=lm side by side on this CPU (figures, not a test).

Both train the same model (a Qwen2 built from one config, the same initial weights), on the
same task (reversal as text, the same reward function and character tokenizer), with the
same prompts per step, group size, completion length, learning rate and seed. The systems
run one after another within each seed, seed after seed (interleaved repeats), in this
process, on the same torch thread count. Per step it records wall-clock (generation
included), completion tokens and the mean reward of the step's sampled completions.

The loss that matches: kondo-bench's ungated PG (group-mean baseline, sum of kept tokens'
terms over batch x completion length) is TRL's `loss_type="dr_grpo"` with
`scale_rewards="none"`, `beta=0`, `num_iterations=1` (the clipped ratio is 1 and its
gradient the policy gradient); TRL's learning-rate decay and gradient clipping are off
(`lr_scheduler_type="constant"`, `max_grad_norm=0`), Adam(W) without weight decay on both.

    python scripts/bench_trl.py [--steps 100] [--seeds 2] [--out results/lm/bench_trl]

Writes <out>.csv (one row per system: step time median and min-max, tokens/s, final reward),
<out>_steps.csv (every step) and <out>.png (reward against samples; step times).
Needs the `trl` extra: pip install 'kondo-bench[trl]'.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchtable import print_table, write_csv  # noqa: E402


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def compose(overrides):
    """The composed config, as `kondo-bench run` would build it."""
    from kondo_bench.compose import compose as kb_compose

    return kb_compose(list(overrides))


SYSTEMS = {  # name -> kondo-bench method overrides (None: TRL)
    "trl-grpo": None,
    "kb-pg": ["method=pg"],
    "kb-dgk-0.1": ["method=dgk", "keep_rate=0.1"],
    "kb-dgk-0.03": ["method=dgk", "keep_rate=0.03"],
}


def task_overrides(a) -> list[str]:
    return ["task=lm", f"task.length={a.length}", f"task.vocab={a.vocab}", f"task.batch_size={a.prompts * a.group}",
            f"task.samples_per_prompt={a.group}", f"task.lr={a.lr}", f"task.model.hidden_size={a.hidden}",
            f"task.model.layers={a.layers}", f"task.model.heads={a.heads}", f"task.model.intermediate_size={4 * a.hidden}",
            "device=cpu"]


def run_kb(a, method, init, seed) -> list[dict]:
    """kondo-bench's loop body (kondo_bench/train.py: draw, select, learn_step), timed per step."""
    import torch

    from kondo_bench.methods import Method
    from kondo_bench.tasks import draw, make_task
    from kondo_bench.train import learn_step, seed_everything

    cfg = compose(task_overrides(a) + method)
    seed_everything(seed)
    task = make_task(cfg, torch.device("cpu"))
    task.model.load_state_dict(init)
    m = Method.from_config(cfg)
    rows = []
    for step in range(1, a.steps + 1):
        t0 = time.perf_counter()
        batch = draw(task, not m.gated)
        t1 = time.perf_counter()
        sel = m.select(batch.advantage, batch.logp, batch.data["valid"])
        learned = learn_step(task, batch, sel, m)
        t2 = time.perf_counter()
        rows.append({"step": step, "seconds": t2 - t0, "gen_s": t1 - t0, "tokens": int(batch.data["valid"].sum()),
                     "reward": float(batch.reward.mean()), "kept_tokens": learned.kept_units})
    return rows


def run_trl(a, init, seed, tokenizer, model_cfg) -> list[dict]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from kondo_bench.tasks.lm.problems import draw, reversal_reward

    torch.manual_seed(seed)
    prompts, answers = draw("reversal", a.steps * a.prompts, a.length, a.vocab)
    model = AutoModelForCausalLM.from_config(model_cfg)
    model.load_state_dict(init)
    times = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            times.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            times[-1] = time.perf_counter() - times[-1]

    with tempfile.TemporaryDirectory() as tmp:
        args = GRPOConfig(
            output_dir=tmp, per_device_train_batch_size=a.prompts * a.group, num_generations=a.group,
            max_completion_length=a.length, learning_rate=a.lr, lr_scheduler_type="constant", warmup_steps=0,
            weight_decay=0.0, max_grad_norm=0.0, loss_type="dr_grpo", scale_rewards="none", beta=0.0,
            num_iterations=1, temperature=1.0, top_p=1.0, top_k=0, max_steps=a.steps, logging_steps=1,
            report_to="none", save_strategy="no", seed=seed, use_cpu=True, bf16=False, disable_tqdm=True,
            gradient_accumulation_steps=1, shuffle_dataset=False, dataloader_num_workers=0)
        trainer = GRPOTrainer(model=model, reward_funcs=reversal_reward, args=args, processing_class=tokenizer,
                              train_dataset=Dataset.from_dict({"prompt": prompts, "answer": answers}),
                              callbacks=[Clock()])
        trainer.remove_callback(PrinterCallback)  # its per-step log lines, not the timing
        trainer.train()
    logs = [h for h in trainer.state.log_history if "reward" in h]
    return [{"step": i + 1, "seconds": t, "gen_s": float("nan"),
             "tokens": round(h["completions/mean_length"] * a.prompts * a.group), "reward": h["reward"],
             "kept_tokens": float("nan")} for i, (t, h) in enumerate(zip(times, logs))]


def summarise(rows: list[dict], a) -> list[dict]:
    out = []
    skip = a.warmup
    for name in SYSTEMS:
        mine = [r for r in rows if r["system"] == name]
        if not mine:
            continue
        secs = [r["seconds"] for r in mine if r["step"] > skip]
        toks = [r["tokens"] / r["seconds"] for r in mine if r["step"] > skip]
        last = [r["reward"] for r in mine if r["step"] > a.steps - a.last]
        first = [r["reward"] for r in mine if r["step"] <= a.last]
        seeds = sorted({r["seed"] for r in mine})
        per_seed = [statistics.mean(r["reward"] for r in mine if r["seed"] == s and r["step"] > a.steps - a.last)
                    for s in seeds]
        out.append({"system": name, "seeds": len(seeds), "steps": a.steps,
                    "step_s_median": round(statistics.median(secs), 4), "step_s_min": round(min(secs), 4),
                    "step_s_max": round(max(secs), 4), "tokens_per_s": round(statistics.median(toks), 1),
                    f"reward_first{a.last}": round(statistics.mean(first), 4),
                    f"reward_last{a.last}": round(statistics.mean(last), 4),
                    "reward_last_seed_sd": round(statistics.stdev(per_seed), 4) if len(per_seed) > 1 else float("nan")})
    base = next((r["step_s_median"] for r in out if r["system"] == "trl-grpo"), None)
    for r in out:
        r["speed_vs_trl"] = round(base / r["step_s_median"], 2) if base else float("nan")
    return out


def figure(rows, summary, a, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    per_step = a.prompts * a.group
    for name in SYSTEMS:
        mine = [r for r in rows if r["system"] == name]
        if not mine:
            continue
        seeds = sorted({r["seed"] for r in mine})
        curve = np.mean([[r["reward"] for r in mine if r["seed"] == s] for s in seeds], 0)
        k = max(1, a.steps // 20)
        smooth = np.convolve(curve, np.ones(k) / k, mode="valid")
        x = (np.arange(len(smooth)) + k) * per_step
        ax1.plot(x, smooth, label=name)
        secs = [r["seconds"] for r in mine if r["step"] > a.warmup]
        ax2.boxplot([secs], positions=[list(SYSTEMS).index(name)], widths=0.6, showfliers=False)
    ax1.set_xlabel("completions sampled"), ax1.set_ylabel(f"mean reward of the step's samples ({k}-step mean)")
    ax1.set_title(f"reversal H={a.length}, M={a.vocab}; {a.prompts}x{a.group} per step; {len(seeds)} seeds")
    ax1.legend()
    ax2.set_xticks(range(len(SYSTEMS)), list(SYSTEMS))
    ax2.set_ylabel("seconds per step (generation included)")
    ax2.set_title(f"{a.threads} torch thread(s); load avg {a.load[0]:.1f} → {a.load[1]:.1f}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--length", type=int, default=6, help="H: reversal digits = completion tokens")
    ap.add_argument("--vocab", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=3, help="steps left out of the step-time statistics")
    ap.add_argument("--last", type=int, default=20, help="steps averaged for the final reward")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--out", default="results/lm/bench_trl")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers
    import trl

    from kondo_bench.tasks.lm.model import model_config
    from kondo_bench.tasks.lm.tokenizer import char_tokenizer

    torch.set_num_threads(a.threads)
    tok = char_tokenizer()
    mcfg = model_config("qwen2", len(tok), a.hidden, a.layers, a.heads, 4 * a.hidden, 512, tok.pad_token_id,
                        tok.eos_token_id)
    load0 = os.getloadavg()[0]
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}; "
          f"{a.threads} thread(s); {cpu_model()}; load average {os.getloadavg()}", flush=True)
    rows = []
    for seed in range(a.seeds):
        torch.manual_seed(seed)
        init = copy.deepcopy(transformers.AutoModelForCausalLM.from_config(mcfg).state_dict())
        for name in a.systems.split(","):
            load = os.getloadavg()[0]
            got = (run_trl(a, init, seed, tok, mcfg) if SYSTEMS[name] is None else run_kb(a, SYSTEMS[name], init, seed))
            torch.set_num_threads(a.threads)  # TRL's Trainer may have changed it
            for r in got:
                rows.append({"system": name, "seed": seed, **r})
            secs = sorted(r["seconds"] for r in got)
            print(f"seed {seed} {name}: median step {secs[len(secs) // 2]:.3f} s, final reward "
                  f"{statistics.mean(r['reward'] for r in got[-a.last:]):.3f}, load average {load:.1f}", flush=True)
    a.load = (load0, os.getloadavg()[0])
    summary = summarise(rows, a)
    for r in summary:
        r.update(threads=a.threads, load_start=round(a.load[0], 2), load_end=round(a.load[1], 2), cpu=cpu_model())
    print_table(summary, [k for k in summary[0] if k != "cpu"])
    write_csv(summary, a.out + ".csv")
    write_csv([{k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
              a.out + "_steps.csv")
    figure(rows, summary, a, a.out + ".png")
    print(f"wrote {a.out}.csv, {a.out}_steps.csv, {a.out}.png")


if __name__ == "__main__":
    main()
