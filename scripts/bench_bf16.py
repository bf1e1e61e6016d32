"""Benchmark: bf16 screening against fp32 screening, with and without bf16 instructions (figures, not a test).

The DG-K step (top-p gate, p = 0.1) on MNIST with `screen_precision=bf16` (act and screen
under bfloat16 autocast, learn in fp32) against the same step in fp32, interleaved, one
thread, in a fresh process per instruction set: `native` (what this CPU offers), and oneDNN
limited by ONEDNN_MAX_CPU_ISA to AVX512_CORE and to AVX2, which have no bf16 instructions:
what a CPU without AVX512-BF16 or AMX runs (bf16 products emulated in fp32 with conversions).
`bf16_over_fp32` is the median of the per-round ratios (above 1: bf16 is slower).

    python scripts/bench_bf16.py [--rounds 5] [--out results/bench_bf16_cpu.csv]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchtable import machine, med, print_table, write_csv  # noqa: E402

ISAS = ("native", "AVX512_CORE", "AVX2")
CASES = ((["task=mnist"], "mlp100", 1000), (["task=mnist", "task.hidden=[512,512]"], "mlp512", 1000))


def child(rounds: int) -> None:
    import torch

    torch.set_num_threads(1)
    import bench_speed as b
    from benchtable import interleaved
    from kondo_bench.config import register
    from kondo_bench.methods import Method
    from kondo_bench.tasks import make_task

    register()
    out = []
    for args, label, batch in CASES:
        cfg = b.compose_cfg([*args, f"task.batch_size={batch}", "device=cpu"])
        torch.manual_seed(0)
        task = make_task(cfg, torch.device("cpu"))
        m = Method("dgk", gate="topk", keep_rate=0.1)
        t = interleaved({"fp32": b.step_fn(task, m), "bf16": b.step_fn(task, m, bf16_screen=True)}, rounds, 10)
        ratio = [x / y for x, y in zip(t["bf16"]["cpu"], t["fp32"]["cpu"])]
        out.append({"model": label, "batch": batch, "fp32_ms": round(med(t["fp32"]["cpu"]) * 1e3, 3),
                    "bf16_ms": round(med(t["bf16"]["cpu"]) * 1e3, 3), "bf16_over_fp32": round(med(ratio), 3),
                    "bf16_over_fp32_min": round(min(ratio), 3), "bf16_over_fp32_max": round(max(ratio), 3)})
    print(json.dumps(out))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.rounds)
        return 0
    rows = []
    for isa in ISAS:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        if isa != "native":
            env["ONEDNN_MAX_CPU_ISA"] = isa
        res = subprocess.run([sys.executable, __file__, "--child", "--rounds", str(args.rounds)],
                             capture_output=True, text=True, env=env)
        if res.returncode != 0:
            raise SystemExit(f"{isa} failed:\n{res.stderr[-2000:]}")
        for r in json.loads(res.stdout.strip().splitlines()[-1]):
            rows.append({"isa": isa, **r, "clock": "cpu", "rounds": args.rounds, **machine(), "threads": 1})
    print_table(rows, ["isa", "model", "batch", "fp32_ms", "bf16_ms", "bf16_over_fp32", "load_avg_1m"])
    write_csv(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
