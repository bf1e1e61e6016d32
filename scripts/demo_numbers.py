"""The numbers README quotes for `make demo`, from the demo's own run folders.

Run it right after `make demo`: it reads runs/demo/*/summary.json and writes one CSV row per
run with the machine it ran on (CPU model, cores, torch threads) and the machine's load
average when it ran (the 15-minute figure, read when the script runs, covers most of the
demo). README's demo table is this CSV; tests/test_readme.py checks that it quotes it.

    python scripts/demo_numbers.py [runs/demo] [--out results/demo.csv] [--commit SHA]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
from pathlib import Path

LABELS = {"pg": "PG", "dg": "DG", "dgk": "DG-K ρ = 0.03"}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    except OSError:
        return ""


def rows(folder: Path, code: str, load: float | None) -> list[dict]:
    load = os.getloadavg()[2] if load is None else load
    out = []
    for path in sorted(folder.glob("*/summary.json")):
        s = json.loads(path.read_text())
        if s.get("status") != "complete":  # an interrupted or failed run has no final numbers
            print(f"left out {path.parent}: status {s.get('status')}")
            continue
        cfg = s.get("config", {})
        threads = (cfg.get("device") or {}).get("threads")
        out.append({
            "run": path.parent.name,
            "configuration": LABELS.get(s["method"], s["method"]),
            "status": s["status"],
            "final_test_error": s["final_quality"],
            "backward_samples": s["backward_samples"],
            "forward_samples": s["forward_samples"],
            "cost_c2": int(s["cost"]) if float(s["cost"]).is_integer() else s["cost"],
            "train_s": round(s["time_train"], 1),
            "data": f"{s.get('data_source')}, {s.get('train_images')} / {s.get('eval_images')}",
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "torch_threads": threads if threads is not None else "torch default (one per core)",
            "load_avg_15min": round(load, 1),
            "commit": code,
        })
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default="runs/demo")
    ap.add_argument("--out", default="results/demo.csv")
    ap.add_argument("--commit", default=None, help="the commit the runs ran on (default: this checkout's HEAD)")
    ap.add_argument("--load-avg", type=float, default=None, help="the 15-minute load average read while the "
                    "demo ran, if noted (default: the one now, which covers the demo's last 15 minutes)")
    args = ap.parse_args()
    found = rows(Path(args.folder), args.commit or commit(), args.load_avg)
    if not found:
        raise SystemExit(f"no run with summary.json under {args.folder}: run `make demo` first")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(found[0]))
        w.writeheader()
        w.writerows(found)
    print("| configuration | final test error | backward samples | forward samples | cost (c = 2) | train_s |")
    print("|---|---|---|---|---|---|")
    for r in found:
        print(f"| {r['configuration']} | {r['final_test_error']:.4f} | {r['backward_samples']:,} | "
              f"{r['forward_samples']:,} | {r['cost_c2']:,} | {r['train_s']} |")
    r = found[0]
    print(f"\n{r['cpu']}, {r['cores']} cores, torch threads: {r['torch_threads']}; "
          f"load average over the last 15 minutes: {r['load_avg_15min']}; commit {r['commit']}; wrote {args.out}")


if __name__ == "__main__":
    main()
