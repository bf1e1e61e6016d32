"""Process CPU time per training step of task=reversal, by horizon and method: the figures a
compute plan for H* is estimated from (a busy machine inflates them alike; quote ratios).

    python scripts/step_times.py --horizons 4 8 16 32 --steps 10 method=dg
    python scripts/step_times.py --horizons 16 method=dgk method.gate=quantile keep_rate=0.03 method.eta=0.3

Prints acting and learning CPU milliseconds per step (median over steps, after a warm-up
step), one thread, the load average. This prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from kondo_bench.compose import compose
from kondo_bench.methods import Method
from kondo_bench.tasks import draw, make_task
from kondo_bench.train import learn_step, seed_everything


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--horizons", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.2f}; overrides {' '.join(args.overrides) or '(none)'}")
    for h in args.horizons:
        cfg = compose(["task=reversal", f"task.horizon={h}", *args.overrides])
        seed_everything(0)
        task, method = make_task(cfg, torch.device("cpu")), Method.from_config(cfg)
        acts, learns = [], []
        for step in range(args.steps + 1):
            t0 = time.process_time()
            batch = draw(task, not method.gated, oracle=method.supervised)
            t1 = time.process_time()
            sel = method.select(batch.advantage, batch.logp)
            learn_step(task, batch, sel, method)
            t2 = time.process_time()
            if step:  # the first step warms up
                acts.append(t1 - t0)
                learns.append(t2 - t1)
        act, learn = statistics.median(acts) * 1e3, statistics.median(learns) * 1e3
        print(f"H = {h:3d}: act {act:7.1f} ms, screen + learn {learn:7.1f} ms, step {act + learn:7.1f} ms "
              f"(CPU, median of {args.steps})", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
