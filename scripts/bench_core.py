"""Benchmark: the default bandit and MNIST runs on this machine (figures, not a test).

Runs each default configuration through the real command line in a subprocess, one torch
thread (device.threads=1), and prints wall-clock (whole process and training loop), the
process's CPU time, steps per second and the peak resident memory of the process. Targets
(2-core CPU): MNIST 10,000 steps within 60 s, bandit within 10 s, peak memory under 1.5 GB.

Repeats are interleaved (round r runs every method of a task once before round r + 1), so
load that comes and goes hits every method alike. Cells are medians over the repeats with
min and max; `train_vs_pg` is the median of the per-round ratios of each method's training
loop to PG's in the same round (wall-clock), `train_cpu_vs_pg` the same in the process's CPU
seconds of the training loop (`time_train_cpu`), which load disturbs less. Every row records threads, CPU model and load average.

    python scripts/bench_core.py [--tasks bandit,mnist] [--methods pg,dg,dgk] [--repeats 3] [--out results/bench_core_cpu.csv] [KEY=VALUE ...]

Extra KEY=VALUE arguments are Hydra overrides for every run (e.g. task.steps=20 for a smoke test).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchtable import machine, print_table, write_csv

CASES = {
    "bandit": ["task=bandit"],
    "mnist": ["task=mnist"],
}
METHOD_ARGS = {"pg": ["method=pg"], "dg": ["method=dg"], "dgk": ["method=dgk", "keep_rate=0.03"],
               "dgk-price": ["method=dgk", "price=0"]}


def run_one(task: str, method: str, workdir: Path, overrides: list[str] = (), threads: int = 1) -> dict:
    out = workdir / f"{task}_{method}"
    cmd = [sys.executable, "-m", "kondo_bench.cli", "run", *CASES[task], *METHOD_ARGS[method],
           "progress=false", f"device.threads={threads}", *overrides, f"hydra.run.dir={out}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = machine()["load_avg_1m"]
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"{task}/{method} failed:\n{res.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    s = json.loads((out / "summary.json").read_text())
    return {
        "task": task, "method": method, "steps": s["steps"],
        "process_s": wall, "cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        "train_s": s["time_train"], "train_cpu_s": s["time_train_cpu"], "eval_s": s["time_eval"],
        "peak_rss_mb": round(after.ru_maxrss / 1024, 0) if after.ru_maxrss > before.ru_maxrss else "<= previous",
        "backward_samples": s["backward_samples"], "quality": s["quality_metric"],
        "final": s["final_quality"], "load": load,
    }


def summarise(runs: list[dict], pg: list[dict] | None, threads: int) -> dict:
    """One row from a method's repeats: medians with min-max, the per-round ratios to PG."""
    first, train = runs[0], [r["train_s"] for r in runs]

    def vs_pg(key):
        return round(statistics.median(r[key] / p[key] for r, p in zip(runs, pg)), 3) if pg else None

    med = lambda key: round(statistics.median(r[key] for r in runs), 2)  # noqa: E731
    peak = [r["peak_rss_mb"] for r in runs if r["peak_rss_mb"] != "<= previous"]
    return {
        "task": first["task"], "method": first["method"], "steps": first["steps"],
        "process_s": med("process_s"), "cpu_s": med("cpu_s"), "train_s": med("train_s"),
        "train_min_s": round(min(train), 2), "train_max_s": round(max(train), 2), "eval_s": med("eval_s"),
        "steps_per_s": round(first["steps"] / statistics.median(train), 1),
        "train_cpu_s": med("train_cpu_s"), "train_vs_pg": vs_pg("train_s"), "train_cpu_vs_pg": vs_pg("train_cpu_s"),
        "peak_rss_mb": max(peak) if peak else "<= previous",
        "backward_samples": first["backward_samples"], "quality": first["quality"], "final": first["final"],
        "repeats": len(runs), **machine(), "threads": threads,
        "load_avg_1m": round(statistics.median(r["load"] for r in runs), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="bandit,mnist")
    ap.add_argument("--methods", default="pg,dg,dgk")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds; cells are medians")
    ap.add_argument("--threads", type=int, default=1, help="device.threads of every run (default 1)")
    ap.add_argument("--out", default=None, help="CSV file for the table")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for every run, e.g. task.steps=20")
    args = ap.parse_args()
    import torch
    print(f"torch {torch.__version__}, {args.threads} thread(s) per run, {args.repeats} interleaved repeats")
    rows, methods = [], args.methods.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks.split(","):
            runs = {m: [] for m in methods}
            for r in range(args.repeats):
                for method in methods[r % len(methods):] + methods[:r % len(methods)]:
                    runs[method].append(run_one(task, method, Path(tmp) / str(r), args.overrides, args.threads))
                    print(" ".join(f"{k}={v}" for k, v in runs[method][-1].items()), flush=True)
            rows += [summarise(runs[m], runs.get("pg"), args.threads) for m in methods]
    keys = ["task", "method", "steps", "process_s", "cpu_s", "train_s", "train_min_s", "train_max_s",
            "train_vs_pg", "train_cpu_s", "train_cpu_vs_pg", "steps_per_s", "peak_rss_mb", "backward_samples", "final", "load_avg_1m"]
    print_table(rows, keys)
    write_csv(rows, args.out)


if __name__ == "__main__":
    main()
