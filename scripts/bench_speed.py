"""Benchmark: does the gate save wall-clock, and how close to the ideal bound? (figures, not a test)

For each task, model size and batch size, in one process so machine noise cancels:
  F, B      forward (with autograd) and backward time of the full batch
  plain     a plain PyTorch loop doing full-batch DG (MNIST only): sample, one forward, DG loss, step
  dg        kondo-bench's ungated DG step (act with autograd, select, learn)
  dgk@p     kondo-bench's DG-K step at keep rate p (screen without autograd, top-k, compacted learn)
  speedup   t(dg) / t(dgk@p);  ideal = (F + B) / (F + p B);  realised / ideal
  bf16      the DG-K step with the speculative bf16 screening forward (screen_precision=bf16)
Timings are medians over repeated steps after warm-up, synchronised on CUDA.

    python scripts/bench_speed.py [--device cpu|cuda] [--quick] [--out results/bench_speed_cpu.csv]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hydra import compose, initialize_config_module  # noqa: E402

from kondo_bench.config import register  # noqa: E402
from kondo_bench.methods import Method  # noqa: E402
from kondo_bench.tasks import make_task, sample_categorical  # noqa: E402
from kondo_bench.train import learn_step, resolve_device  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchtable import print_table, write_csv  # noqa: E402

KEEP_RATES = (1.0, 0.3, 0.1, 0.03)


def compose_cfg(overrides: list[str]):
    with initialize_config_module("kondo_bench.conf", version_base="1.3"):
        return compose("config", overrides=overrides)


def timed(fn, device, repeats: int, warmup: int = 3) -> float:
    """Median seconds of fn() over `repeats` calls, after warm-up."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def forward_backward(task, device, repeats):
    """F and B of the full batch, with the task's own compacted-forward path on every row."""
    batch = task.act()
    rows = torch.arange(batch.logp.shape[0], device=device)
    state = {}

    def fwd():
        state["loss"] = -task.logp(batch, rows).sum()

    def bwd():
        fwd()
        task.optimizer.zero_grad(set_to_none=True)
        state["loss"].backward()

    f = timed(fwd, device, repeats)
    fb = timed(bwd, device, repeats)
    return f, max(fb - f, 1e-9)


def step_fn(task, method, bf16_screen: bool = False):
    from contextlib import nullcontext

    def step():
        cast = torch.autocast(task.device.type, dtype=torch.bfloat16) if bf16_screen else nullcontext()
        with cast:
            batch = task.act() if method.gated else task.act_with_grad()
        sel = method.select(batch.advantage, batch.logp)
        learn_step(task, batch, sel, method)
    return step


def plain_mnist_step(task, batch_size):
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
        w = torch.sigmoid(u * -logp.detach())
        loss = -(w * u * logp).sum() / batch_size
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def bench(task_args: list[str], label: str, batch: int, device_name: str, repeats: int) -> list[dict]:
    cfg = compose_cfg([*task_args, f"task.batch_size={batch}", f"device={device_name}"])
    device = resolve_device(cfg.device.name)
    torch.manual_seed(0)
    task = make_task(cfg, device)
    f, b = forward_backward(task, device, repeats)
    # plain and kondo-bench DG alternate, three rounds, best median each: noise hits both alike
    dg_fn = step_fn(task, Method("dg"))
    plain_fn = plain_mnist_step(task, batch) if cfg.task.name == "mnist" else None
    t_dg, t_plain = float("inf"), (float("inf") if plain_fn else None)
    for _ in range(3):
        t_dg = min(t_dg, timed(dg_fn, device, repeats))
        if plain_fn:
            t_plain = min(t_plain, timed(plain_fn, device, repeats))
    rows = []
    for p in KEEP_RATES:
        gated = step_fn(task, Method("dgk", gate="topk", keep_rate=p))
        t = min(timed(gated, device, repeats) for _ in range(2))
        t_bf16 = timed(step_fn(task, Method("dgk", gate="topk", keep_rate=p), bf16_screen=True), device, repeats)
        ideal = (f + b) / (f + p * b)
        rows.append({
            "task": cfg.task.name, "model": label, "batch": batch, "device": str(device), "keep_rate": p,
            "F_ms": round(f * 1e3, 3), "B_ms": round(b * 1e3, 3),
            "plain_ms": None if t_plain is None else round(t_plain * 1e3, 3),
            "dg_ms": round(t_dg * 1e3, 3), "dgk_ms": round(t * 1e3, 3), "dgk_bf16_screen_ms": round(t_bf16 * 1e3, 3),
            "dg_vs_plain": None if t_plain is None else round(t_dg / t_plain, 3),
            "speedup": round(t_dg / t, 3), "ideal": round(ideal, 3), "realised_over_ideal": round(t_dg / t / ideal, 3),
        })
        print(" ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
    return rows


def cases(quick: bool, device: str):
    small = ["task=mnist"]
    wide = ["task=mnist", "task.hidden=[512,512]"]
    rev_small = ["task=reversal"]
    rev_big = ["task=reversal", "task.d_model=256", "task.layers=4", "task.heads=8", "task.ffn=1024"]
    if device == "cuda":
        return [(wide, "mlp512", 16384), (wide, "mlp512", 131072), (rev_big, "tf256x4", 4096),
                (["task=reversal", "task.d_model=1024", "task.layers=8", "task.heads=16", "task.ffn=4096",
                  "task.horizon=32"], "tf1024x8", 4096)]
    out = [(small, "mlp100", 1000), (wide, "mlp512", 1000), (wide, "mlp512", 4096), (rev_small, "tf64x3", 100)]
    if not quick:
        out += [(rev_small, "tf64x3", 1000), (rev_big, "tf256x4", 400)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="fewer cases")
    ap.add_argument("--out", default=None, help="CSV file for the table")
    args = ap.parse_args()
    register()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    rows = []
    for task_args, label, batch in cases(args.quick, args.device):
        rows += bench(task_args, label, batch, args.device, args.repeats)
    keys = ["task", "model", "batch", "keep_rate", "F_ms", "B_ms", "plain_ms", "dg_ms", "dg_vs_plain", "dgk_ms",
            "speedup", "ideal", "realised_over_ideal", "dgk_bf16_screen_ms"]
    print_table(rows, keys)
    write_csv(rows, args.out)


if __name__ == "__main__":
    main()
