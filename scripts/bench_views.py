"""What TensorBoard event files cost a run: per evaluation, and per step with and without.

    python scripts/bench_views.py [--steps 1000] [--eval-every 10] [--repeats 3]

Per evaluation: `TensorBoardView.log` on a real metrics row (every scalar, then a flush).
Per step: the same bandit run (`time_train`: act + screen + learn, the timed phases of a
step; and the wall-clock of the whole run, evaluations and event writing included) with
logger.tensorboard=true and =false, alternated, best of --repeats. Evaluations every 10
steps is the worst case: the tasks' defaults evaluate every 10 to 500 steps.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import make_cfg  # noqa: E402  the real composed config

from kondo_bench.loggers import TensorBoardView  # noqa: E402
from kondo_bench.results import read_metrics  # noqa: E402
from kondo_bench.train import run_experiment  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    base = ("task=bandit", f"task.steps={args.steps}", f"task.eval_every={args.eval_every}", "method=dgk",
            "keep_rate=0.1", "progress=false", "device=cpu", "device.threads=1")
    with tempfile.TemporaryDirectory() as tmp:
        best = {}
        for r in range(args.repeats):
            for tb in ("false", "true"):
                out = Path(tmp) / f"{tb}{r}"
                started = time.perf_counter()
                s = run_experiment(make_cfg(*base, f"logger.tensorboard={tb}"), out)
                wall = time.perf_counter() - started
                step = s["time_train"] / s["steps"]
                old = best.get(tb, (float("inf"), float("inf")))
                best[tb] = (min(old[0], step), min(old[1], wall / s["steps"]))
        rows = read_metrics(Path(tmp) / "true0")
        cfg = make_cfg(*base)
        view = TensorBoardView(cfg, Path(tmp) / "view", {"task": "bandit"})
        n = 200
        started = time.perf_counter()
        for i in range(n):
            view.log({**rows[i % len(rows)], "step": i + 1})
        per_eval = (time.perf_counter() - started) / n
        view.close(None)
    print(f"TensorBoardView.log, one metrics row ({len(rows[0])} keys) with flush: {per_eval * 1e3:.2f} ms per evaluation")
    for tb, (step, wall) in best.items():
        print(f"logger.tensorboard={tb:5s}: {step * 1e3:.3f} ms per step (act+screen+learn), "
              f"{wall * 1e3:.3f} ms per step all in (evaluation every {args.eval_every} steps), best of {args.repeats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
