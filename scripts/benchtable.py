"""Shared by the benchmark scripts: the machine a row was measured on, interleaved timing,
printing a table of dict rows, and writing it as CSV.

Every benchmark row carries `machine()`: the torch thread count, the CPU model, the 1-minute
load average when the row was taken, torch's version and the date. On a shared machine the
load average says how far to trust a figure; ratios of timings taken in one interleaved
run (the same rounds, alternating) are what survive the load.
"""

from __future__ import annotations

import csv
import os
import platform
import statistics
import time
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux; platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What a benchmark row must say about where and when it was measured."""
    import torch

    return {"threads": torch.get_num_threads(), "cpu": cpu_model(), "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2), "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d")}


def interleaved(fns: dict, rounds: int, calls: int, warmup: int = 2, sync=lambda: None) -> dict:
    """Seconds per call of each fn, measured in `rounds` rounds that visit every fn in turn
    (the order rotated each round), each visit `calls` calls after `warmup`: load that comes
    and goes during the run hits every fn alike. Returns {name: {"wall": [...], "cpu": [...]}},
    one value per round: wall-clock, and this thread's CPU time (which a busy neighbour
    disturbs less, as it does not count the time the thread waited for a core)."""
    names, out = list(fns), {name: {"wall": [], "cpu": []} for name in fns}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = fns[name]
            for _ in range(warmup):
                fn()
            sync()
            t0, c0 = time.perf_counter(), time.thread_time()
            for _ in range(calls):
                fn()
            sync()
            out[name]["wall"].append((time.perf_counter() - t0) / calls)
            out[name]["cpu"].append((time.thread_time() - c0) / calls)
    return out


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def ratio_rounds(a: list[float], b: list[float]) -> list[float]:
    """a / b round by round: the ratio of two fns measured side by side in the same round."""
    return [x / y for x, y in zip(a, b)]


def print_table(rows: list[dict], keys: list[str]) -> None:
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    print("\n" + "  ".join(k.rjust(widths[k]) for k in keys))
    for r in rows:
        print("  ".join(str(r[k]).rjust(widths[k]) for k in keys))


def write_csv(rows: list[dict], path: str | Path | None) -> None:
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))  # the union, in first-seen order
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        w.writerows(rows)
