"""Benchmark: token reversal through kondo-bench against a plain PyTorch loop.

Measures, in one process and on the same model code:
  plain DG     a bare loop: sample, one forward with autograd, DG-weighted loss, Adam step
  kondo DG     `kondo-bench run task=reversal method=dg` through run_experiment
  kondo DG-K   method=dgk with keep_rate 0.1 (and 0.03): screen, gate, compacted re-forward
so the loop's own overhead at keep rate 1 (kondo DG against plain DG) and what a gate
saves are both visible. `train s` is wall-clock without evaluation (kondo-bench's
`time_train`: its act, screen and learn phases); `CPU s` is process CPU time for the whole
run (setup and one final evaluation included), which a busy neighbour disturbs less.

    python scripts/bench_reversal.py                      # H = 10, M = 2, 1,000 steps, 1 thread
    python scripts/bench_reversal.py --threads 2 --repeats 3 --only plain-dg kondo-dg
    python scripts/bench_reversal.py --steps 300 task.horizon=20

This is a benchmark that prints figures, not a test. On a shared machine, run it when
nothing else is busy, and see the load average it prints.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch
from hydra import compose, initialize_config_module

from kondo_bench.config import register
from kondo_bench.tasks.reversal import Transformer, adam, answer_logp, grouped_advantage, reward_of, sample, target_of
from kondo_bench.train import run_experiment, seed_everything

RUNS = {  # name: Hydra overrides (None: the plain loop)
    "plain-dg": None,
    "kondo-dg": ["method=dg"],
    "kondo-dgk-0.1": ["method=dgk", "keep_rate=0.1"],
    "kondo-dgk-0.03": ["method=dgk", "keep_rate=0.03"],
}


def plain_dg(cfg, steps: int, seed: int) -> dict:
    """Full-batch DG with nothing around it: the floor kondo-bench's loop is measured against."""
    seed_everything(seed)
    t = cfg.task
    net = Transformer(t.vocab, 2 * t.horizon, t.d_model, t.layers, t.heads, t.ffn)
    opt = adam(net, t.lr)  # torch.optim.Adam(fused=True), as the task uses
    eta, n_prompts = cfg.method.eta, t.batch_size // t.samples_per_prompt
    group = torch.arange(n_prompts).repeat_interleave(t.samples_per_prompt)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        prompt = torch.randint(t.vocab, (n_prompts, t.horizon))
        answer, _ = sample(net, prompt, t.samples_per_prompt)
        logp = answer_logp(net, prompt, answer, group)  # [B, H], with autograd
        reward = reward_of(answer, target_of(prompt, t.variant, t.vocab)[group])
        u = grouped_advantage(reward, t.samples_per_prompt)[:, None]
        w = torch.sigmoid(u * -logp.detach() / eta)  # DG weight sigma(delight / eta), a constant
        loss = -(w * u * logp).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        prompt = torch.randint(t.vocab, (t.eval_prompts, t.horizon))
        answer, _ = sample(net, prompt)
        error = 1 - reward_of(answer, target_of(prompt, t.variant, t.vocab)).mean().item()
    return {"train_s": seconds, "cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - start,
            "seq_error": error,
            "backward_samples": steps * t.batch_size, "backward_units": steps * t.batch_size * t.horizon}


def kondo(cfg) -> dict:
    cpu = time.process_time()
    with tempfile.TemporaryDirectory() as out:
        s = run_experiment(cfg, out)
    return {"train_s": s["time_train"], "cpu_s": time.process_time() - cpu,
            "wall_s": s["wall_seconds"], "seq_error": s["final"]["seq_error"],
            "backward_samples": s["backward_samples"], "backward_units": s["backward_units"],
            "act_s": s["time_act"], "screen_s": s["time_screen"], "learn_s": s["time_learn"], "eval_s": s["time_eval"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--repeats", type=int, default=1, help="rounds over the runs, interleaved; the table shows the fastest")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="+", choices=list(RUNS), default=list(RUNS))
    p.add_argument("overrides", nargs="*", help="Hydra overrides for every run, e.g. task.horizon=12")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    register()
    # One evaluation, at the end: the figures are about training. `task.eval_every=50` puts the default back.
    base = ["task=reversal", "device=cpu", "progress=false", f"task.steps={args.steps}",
            f"task.eval_every={args.steps}", f"seed={args.seed}"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    results: dict[str, list[dict]] = {name: [] for name in args.only}
    with initialize_config_module("kondo_bench.conf", version_base="1.3"):
        for _ in range(args.repeats):
            for name in args.only:
                cfg = compose("config", overrides=[*base, *(RUNS[name] or ["method=dg"]), *args.overrides])
                r = plain_dg(cfg, args.steps, args.seed) if RUNS[name] is None else kondo(cfg)
                results[name].append(r)
                print(f"  {name}: {r['train_s']:.1f} s training ({r['cpu_s']:.1f} s CPU), "
                      f"seq_error {r['seq_error']:.3f}", flush=True)
    t = cfg.task
    print(f"\nreversal H={t.horizon} M={t.vocab}, {t.batch_size} episodes/step, {args.steps} steps, "
          f"{args.threads} thread(s), fastest of {args.repeats}; load average {os.getloadavg()[0]:.2f}")
    best = {name: min(rs, key=lambda r: r["train_s"]) for name, rs in results.items()}
    plain = best.get("plain-dg")
    print(f"{'run':<16}{'train s':>9}{'CPU s':>8}{'steps/s':>9}{'vs plain':>9}{'act':>7}{'screen':>7}"
          f"{'learn':>7}{'bwd rows':>10}{'bwd tokens':>11}{'seq_error':>10}")
    for name, r in best.items():
        ratio = f"{r['train_s'] / plain['train_s']:.2f}x" if plain else "-"
        phases = "".join(f"{r[k]:>7.1f}" if k in r else f"{'-':>7}" for k in ("act_s", "screen_s", "learn_s"))
        print(f"{name:<16}{r['train_s']:>9.1f}{r['cpu_s']:>8.1f}{args.steps / r['train_s']:>9.1f}{ratio:>9}{phases}"
              f"{r['backward_samples']:>10,}{r['backward_units']:>11,}{r['seq_error']:>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
