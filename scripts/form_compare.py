"""Fig 8's series in our default network and in the official code's form, at one step (figures,
not a test).

Reads two figure runs' curve tables (`<figure>_curves.csv`, written by `kondo-bench figures`)
of the same sweeps and seeds, one run with the default network and one with
`task.init=flax task.final_ln=false`, and compares them where both have an evaluation: each
run's 1 − E[R] (`expected_error`) and cumulative training error at that step, and per series
the median over seeds and the series' rank within its form. Training does not depend on the
step budget (constant learning rate, evaluation on its own generator), so the default's
paper-scale curves at step 3,000 are the runs a 3,000-step budget would have made.

    python scripts/form_compare.py [--default results/figures/paper/reversal_curves.csv]
        [--official results/figures/official-form/report/reversal_curves.csv] [--step 3000] [--out MD]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from perf_tables import table  # noqa: E402  (the Markdown table the performance pages use)


def at_step(path: Path, step: int) -> dict[str, dict]:
    """run -> its curve row at `step` (runs without an evaluation there are left out)."""
    with open(path, newline="") as f:
        return {r["run"]: r for r in csv.DictReader(f) if int(r["step"]) == step}


def series_of(run: str) -> str:
    """The run's sweep and its overrides but the seed: `reversal-ungated/method=dg`."""
    sweep, _, over = run.partition("/")
    rest = [o for o in over.split(",") if not o.startswith("seed=")]
    return sweep + ("/" + ",".join(rest) if rest else "")


def compare(default: dict[str, dict], official: dict[str, dict]) -> tuple[list[list], list[list]]:
    runs = sorted(set(default) & set(official))
    if not runs:
        raise SystemExit("no run has an evaluation at that step in both tables: check --step and the paths")
    per_run = [[r, f"{float(default[r]['expected_error']):.2e}", f"{float(official[r]['expected_error']):.2e}",
                f"{float(default[r]['cumulative_error']):.4f}", f"{float(official[r]['cumulative_error']):.4f}"]
               for r in runs]
    by_series: dict[str, list[str]] = {}
    for r in runs:
        by_series.setdefault(series_of(r), []).append(r)
    med = {form: {s: statistics.median(float(t[r]["expected_error"]) for r in rs) for s, rs in by_series.items()}
           for form, t in (("default", default), ("official", official))}
    rank = {form: {s: i + 1 for i, s in enumerate(sorted(m, key=m.get))} for form, m in med.items()}
    per_series = [[s, len(rs), f"{med['default'][s]:.2e}", rank["default"][s], f"{med['official'][s]:.2e}",
                   rank["official"][s]] for s, rs in sorted(by_series.items())]
    return per_run, per_series


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--default", type=Path, default=REPO / "results/figures/paper/reversal_curves.csv")
    ap.add_argument("--official", type=Path, default=REPO / "results/figures/official-form/report/reversal_curves.csv")
    ap.add_argument("--step", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=None, help="also write the tables to this Markdown file")
    args = ap.parse_args(argv)
    for p in (args.default, args.official):
        if not p.is_file():
            raise SystemExit(f"no curve table at {p}: run the figure first (kondo-bench figures ...)")
    per_run, per_series = compare(at_step(args.default, args.step), at_step(args.official, args.step))
    text = (f"At step {args.step:,}: 1 − E[R] and cumulative training error, default network against the "
            "official code's form (`task.init=flax task.final_ln=false`).\n\n"
            + table(["series", "seeds", "default: median 1 − E[R]", "rank", "official form: median 1 − E[R]", "rank"],
                    per_series)
            + "\n" + table(["run", "default 1 − E[R]", "official 1 − E[R]", "default cumulative", "official cumulative"],
                           per_run))
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
