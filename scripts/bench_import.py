"""Benchmark: how long `import kondo_bench.core` takes in a fresh interpreter (figures, not a test).

Interleaves the core with the runner's `kondo_bench.methods` (which pulls in Hydra and
OmegaConf) and with bare `import torch`, each in its own subprocess, and prints the median
and min-max of each, with the CPU model, thread count and load average.

    python scripts/bench_import.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys

MODULES = ("torch", "kondo_bench.core", "kondo_bench.methods")


def once(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    times = {m: [] for m in MODULES}
    for _ in range(args.repeats):  # interleaved, so drifting load touches every module alike
        for m in MODULES:
            times[m].append(once(m))
    print(f"cpu: {cpu_model()}; cores: {os.cpu_count()}; load average: {os.getloadavg()}; "
          f"python {platform.python_version()}; repeats: {args.repeats}")
    for m, t in times.items():
        print(f"import {m:22s} median {statistics.median(t):.3f} s (min {min(t):.3f}, max {max(t):.3f})")


if __name__ == "__main__":
    main()
