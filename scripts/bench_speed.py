"""Benchmark: does the gate save wall-clock, and how close to its bound? (figures, not a test)

For each task, model size and batch size, in one process, every timing interleaved with the
others (rounds that visit each in turn, see benchtable.interleaved), one thread by default:
  A, F, B, O  the parts of a step: acting without autograd (the gated step's screen: the
              forward pass and sampling; reversal: the KV-cache sampler), the forward pass with
              autograd over every row (the task's compacted path), its backward, the optimiser step
  plain       a hand-written PyTorch loop of full-batch DG on the same model (sample, one
              forward with autograd, DG loss, Adam step): what a user would write by hand
  dg          kondo-bench's ungated DG step (act with autograd, select, learn)
  dgk@p       kondo-bench's DG-K top-p step (screen without autograd, gate, compacted learn);
              reversal also with the sequence-level gate (method.unit=sequence, `seq`)
  bf16        the DG-K step at p = 0.1 with the speculative bf16 screening forward
  speedup     t(dg) / t(dgk@p), the median of the per-round ratios
  ideal       t(dg) / (A + p (F + B) + O): the gated step if everything but the screen and
              the optimiser scaled with the keep rate and the gate itself were free
  realised/ideal = (A + p (F + B) + O) / t(dgk@p): the share of the gated step that is the bound's
  ideal_fb    the paper-style bound (F + B) / (F + p B), for comparison with older tables
Cells are medians over rounds with min and max; ratios are medians of the per-round ratios
(two timings taken side by side), so load that comes and goes cancels. Every row records the
thread count, CPU model and load average. Wall-clock and this thread's CPU time are both kept.

    python scripts/bench_speed.py [--device cpu|cuda] [--quick] [--rounds 5] [--out results/bench_speed_cpu.csv]
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hydra import compose, initialize_config_module  # noqa: E402

from kondo_bench.config import register  # noqa: E402
from kondo_bench.methods import Method  # noqa: E402
from kondo_bench.tasks import all_rows, make_task, sample_categorical  # noqa: E402
from kondo_bench.tasks.reversal import answer_logp, grouped_advantage, reward_of, sample, target_of  # noqa: E402
from kondo_bench.train import learn_step, resolve_device  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchtable import interleaved, machine, med, print_table, write_csv  # noqa: E402

KEEP_RATES = (1.0, 0.3, 0.1, 0.03)
BF16_AT = 0.1


def compose_cfg(overrides: list[str]):
    with initialize_config_module("kondo_bench.conf", version_base="1.3"):
        return compose("config", overrides=overrides)


def step_fn(task, method: Method, bf16_screen: bool = False):
    """kondo-bench's step as the loop runs it (draw, select, learn_step), without the loop's timers."""
    def step():
        cast = torch.autocast(task.device.type, dtype=torch.bfloat16) if bf16_screen else nullcontext()
        with cast:
            batch = task.act() if method.gated else task.act_with_grad()
        sel = method.select(batch.advantage, batch.logp)
        learn_step(task, batch, sel, method, refresh_old=bf16_screen)
    return step


def part_fns(task) -> dict:
    """A, F, F + B and O of the full batch (B is measured as F + B minus F)."""
    batch = task.act()
    rows = all_rows(batch)

    def fwd():
        return -task.logp(batch, rows).sum()

    def fwd_bwd():
        task.optimizer.zero_grad(set_to_none=True)
        fwd().backward()

    fwd_bwd()  # the optimiser step needs gradients to apply
    return {"A": task.act, "F": fwd, "FB": fwd_bwd, "O": task.optimizer.step}


def plain_mnist_step(task, batch_size: int, eta: float):
    """What a user would write by hand: the same model, full-batch DG, no framework (with the
    same fast row gather and inverse-CDF sampling, so the comparison measures the framework)."""
    net, opt, x_all, y_all = task.net, task.optimizer, task.x, task.y

    def step():
        idx = torch.randint(len(y_all), (batch_size,), device=x_all.device)
        logp_all = net(torch.index_select(x_all, 0, idx)).log_softmax(-1)
        probs = logp_all.detach().exp()
        a = sample_categorical(probs)
        u = (a == y_all[idx]).float() - (probs * probs).sum(-1)
        logp = logp_all.gather(-1, a[:, None])[:, 0]
        w = torch.sigmoid(u * -logp.detach() / eta)
        loss = -(w * u * logp).sum() / batch_size
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def plain_reversal_step(task, eta: float):
    """The same by hand for token reversal: sample with the task's KV-cache sampler, one
    teacher-forced forward with autograd, DG-weighted loss over every token, Adam step."""
    t, net, opt = task.cfg, task.net, task.optimizer
    # the config's keys read once, as a hand-written loop holds them in plain variables
    vocab, horizon, per_prompt, variant = int(t.vocab), int(t.horizon), int(t.samples_per_prompt), str(t.variant)
    n_prompts = t.batch_size // per_prompt
    group = torch.arange(n_prompts, device=task.device).repeat_interleave(per_prompt)

    def step():
        prompt = torch.randint(vocab, (n_prompts, horizon), device=task.device)
        answer, _ = sample(net, prompt, per_prompt)
        logp = answer_logp(net, prompt, answer, group)
        u = grouped_advantage(reward_of(answer, target_of(prompt, variant, vocab)[group]), per_prompt)[:, None]
        w = torch.sigmoid(u * -logp.detach() / eta)
        loss = -(w * u * logp).sum() / logp.numel()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def step_fns(task, cfg, keep_rates, bf16: bool = True) -> dict:
    """Every step timed for a case, by name."""
    eta = cfg.method.eta
    fns = {"plain": (plain_mnist_step(task, cfg.task.batch_size, eta) if cfg.task.name == "mnist"
                     else plain_reversal_step(task, eta)),
           "dg": step_fn(task, Method("dg", eta=eta))}
    for p in keep_rates:
        fns[f"dgk@{p}"] = step_fn(task, Method("dgk", gate="topk", keep_rate=p))
        if task.units_per_row == "many":
            fns[f"seq@{p}"] = step_fn(task, Method("dgk", gate="topk", keep_rate=p, unit="sequence"))
    if bf16:
        fns["bf16"] = step_fn(task, Method("dgk", gate="topk", keep_rate=BF16_AT), bf16_screen=True)
    return fns


def span(xs: list[float], scale: float = 1e3, digits: int = 3) -> tuple:
    return round(med(xs) * scale, digits), round(min(xs) * scale, digits), round(max(xs) * scale, digits)


def bench(task_args: list[str], label: str, batch: int, device_name: str, rounds: int, calls: int,
          keep_rates=KEEP_RATES, bf16: bool = True) -> list[dict]:
    cfg = compose_cfg([*task_args, f"task.batch_size={batch}", f"device={device_name}"])
    device = resolve_device(cfg.device.name)
    torch.manual_seed(0)
    task = make_task(cfg, device)
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    fns = {**part_fns(task), **step_fns(task, cfg, keep_rates, bf16)}
    if not calls:  # about 0.2 s of ungated steps a visit: long enough to span the scheduler's slices
        calls = max(3, min(200, round(0.2 / med(interleaved({"dg": fns["dg"]}, 1, 3)["dg"]["cpu"]))))
    t = interleaved(fns, rounds, calls, sync=sync)
    rows = []
    for clock in ("wall", "cpu"):
        c = {k: v[clock] for k, v in t.items()}
        a, f, o = med(c["A"]), med(c["F"]), med(c["O"])
        b = max(med(c["FB"]) - f, 1e-9)
        for name in [k for k in fns if k.startswith(("dgk@", "seq@"))]:
            p = float(name.split("@")[1])
            floor = a + p * (f + b) + o
            per_round = [d / g for d, g in zip(c["dg"], c[name])]
            ms, lo, hi = span(c[name])
            row = {"task": cfg.task.name, "model": label, "batch": batch, "device": str(device), "clock": clock,
                   "gate_unit": "sequence" if name.startswith("seq") else "token", "keep_rate": p,
                   "A_ms": round(a * 1e3, 3), "F_ms": round(f * 1e3, 3), "B_ms": round(b * 1e3, 3),
                   "O_ms": round(o * 1e3, 3),
                   "plain_ms": span(c["plain"])[0], "dg_ms": span(c["dg"])[0],
                   "dg_min_ms": span(c["dg"])[1], "dg_max_ms": span(c["dg"])[2],
                   "dg_vs_plain": round(med([d / q for d, q in zip(c["dg"], c["plain"])]), 3),
                   "dgk_ms": ms, "dgk_min_ms": lo, "dgk_max_ms": hi,
                   "speedup": round(med(per_round), 3), "speedup_min": round(min(per_round), 3),
                   "speedup_max": round(max(per_round), 3),
                   "ideal": round(med(c["dg"]) / floor, 3),
                   "realised_over_ideal": round(floor / med(c[name]), 3),
                   "ideal_fb": round((f + b) / (f + p * b), 3),
                   "dgk_bf16_screen_ms": span(c["bf16"])[0] if "bf16" in c and p == BF16_AT and name.startswith("dgk") else None,
                   "rounds": rounds, "calls": calls, **machine()}
            rows.append(row)
            print(" ".join(f"{k}={v}" for k, v in row.items() if k not in ("cpu", "torch", "date")), flush=True)
    return rows


MNIST, WIDE = ["task=mnist"], ["task=mnist", "task.hidden=[512,512]"]
REV, REV_BIG = ["task=reversal"], ["task=reversal", "task.d_model=256", "task.layers=4", "task.heads=8", "task.ffn=1024"]


def cases(quick: bool, device: str):
    if device == "cuda":
        return [(WIDE, "mlp512", 16384), (WIDE, "mlp512", 131072), (REV_BIG, "tf256x4", 4096),
                (["task=reversal", "task.d_model=1024", "task.layers=8", "task.heads=16", "task.ffn=4096",
                  "task.horizon=32"], "tf1024x8", 4096)]
    out = [(MNIST, "mlp100", 100), (MNIST, "mlp100", 1000), (WIDE, "mlp512", 1000), (REV, "tf64x3", 100)]
    if not quick:
        out += [(WIDE, "mlp512", 4096)]
    return out


KEYS = ["task", "model", "batch", "gate_unit", "keep_rate", "A_ms", "F_ms", "B_ms", "O_ms", "plain_ms", "dg_ms",
        "dg_vs_plain", "dgk_ms", "speedup", "ideal", "realised_over_ideal", "ideal_fb", "dgk_bf16_screen_ms",
        "load_avg_1m"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=0, help="steps per fn per round (0: about 0.2 s of DG steps)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument("--quick", action="store_true", help="fewer cases")
    ap.add_argument("--out", default=None, help="CSV file for the table")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    register()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    rows = []
    for task_args, label, batch in cases(args.quick, args.device):
        rows += bench(task_args, label, batch, args.device, args.rounds, args.calls)
    print_table([r for r in rows if r["clock"] == "wall"], KEYS)
    write_csv(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
