"""Benchmark: the default bandit and MNIST runs on this machine (figures, not a test).

Runs each default configuration through the real command line in a subprocess and
prints wall-clock (whole process and training loop), steps per second and the peak
resident memory of the process. Targets (2-core CPU): MNIST 10,000 steps
within 60 s, bandit within 10 s, peak memory under 1.5 GB.

    python scripts/bench_core.py [--tasks bandit,mnist] [--methods pg,dg,dgk] [--out results/bench_core_cpu.csv] [KEY=VALUE ...]

Extra KEY=VALUE arguments are Hydra overrides for every run (e.g. task.steps=20 for a smoke test).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchtable import print_table, write_csv

CASES = {
    "bandit": ["task=bandit"],
    "mnist": ["task=mnist"],
}
METHOD_ARGS = {"pg": ["method=pg"], "dg": ["method=dg"], "dgk": ["method=dgk", "keep_rate=0.03"],
               "dgk-price": ["method=dgk", "price=0"]}


def run_one(task: str, method: str, workdir: Path, overrides: list[str] = ()) -> dict:
    out = workdir / f"{task}_{method}"
    cmd = [sys.executable, "-m", "kondo_bench.cli", "run", *CASES[task], *METHOD_ARGS[method],
           "progress=false", *overrides, f"hydra.run.dir={out}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"{task}/{method} failed:\n{res.stderr}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    s = json.loads((out / "summary.json").read_text())
    return {
        "task": task, "method": method, "steps": s["steps"],
        "process_s": round(wall, 2), "train_s": round(s["time_train"], 2),
        "eval_s": round(s["time_eval"], 2),
        "steps_per_s": round(s["steps"] / s["time_train"], 1),
        "peak_rss_mb": round(max(peak_kib, before) / 1024, 0) if peak_kib > before else "<= previous",
        "backward_samples": s["backward_samples"], "quality": s["quality_metric"],
        "final": s["final_quality"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="bandit,mnist")
    ap.add_argument("--methods", default="pg,dg,dgk")
    ap.add_argument("--out", default=None, help="CSV file for the table")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for every run, e.g. task.steps=20")
    args = ap.parse_args()
    import torch
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks.split(","):
            for method in args.methods.split(","):
                rows.append(run_one(task, method, Path(tmp), args.overrides))
                print(" ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
    keys = list(rows[0])
    print_table(rows, keys)
    write_csv(rows, args.out)


if __name__ == "__main__":
    main()
