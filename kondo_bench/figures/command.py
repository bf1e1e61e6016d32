"""`kondo-bench figures`: run each figure's missing jobs, then draw it from the tables.

Extra KEY=VALUE arguments go to every job: `hydra/launcher=joblib` to run jobs in
parallel, `device=cuda`, ... The figures themselves are the registry of
`kondo_bench/figures/__init__.py`; this module takes them as an argument.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..progress import Progress
from ..summarize import write_table
from .core import SCALES, Figure, FigureData, Scale
from .done import is_done, load_jobs
from .jobs import Plan, Watch, plan_sweeps, record_finished, run_sweeps
from .parked import PARKED, park, step_of
from .stop import Stopped


def cheapest(plans: list[Plan], extra: list[str]) -> list[Plan]:
    """The pending jobs of least cost (a searching sweep's `cost`, e.g. H*'s horizon; 0 for a
    plain sweep), each plan cut to them; [] when nothing is pending."""
    def cost(p: Plan, j) -> float:
        return p.sweep.select.cost(j.overrides) if hasattr(p.sweep.select, "cost") else 0

    pending = [(p, j) for p in plans for j in p.jobs if not is_done(j, extra)]
    if not pending:
        return []
    low = min(cost(p, j) for p, j in pending)
    cut = {}
    for p, j in pending:
        if cost(p, j) == low:
            cut.setdefault(id(p), replace(p, jobs=[])).jobs.append(j)
    return list(cut.values())


def make_figure(fig: Figure, scale: Scale, out: Path, extra: list[str], verbose: bool,
                plans: list[Plan], watch: Watch, launch: bool = True,
                drawn: Callable[[], list[Plan]] | None = None) -> tuple[list, int]:
    """Launch the plans' missing jobs (unless not `launch`), then draw the figure from the jobs of
    `drawn()` (planned once these have run; by default the same plans); returns the jobs it
    was drawn from and the number of failed launches."""
    started, say = time.time(), watch.progress.write  # lines above the progress bar on a terminal
    say(f"[{fig.name}] {fig.about} (scale {scale.name})")
    if launch:
        jobs, failed = run_sweeps(fig, plans, extra, verbose, watch)
    else:  # --no-launch: draw what is finished; the rest is listed in <figure>_incomplete.csv
        jobs, failed = [j for p in plans for j in p.jobs], 0
        for p in plans:  # jobs finished in folders (by hand, or before an interrupt) kept for the next session
            record_finished(p, extra)
    if drawn is not None:
        jobs = [j for p in drawn() for j in p.jobs]
    data = load_jobs(fig.name, scale, out, jobs, extra)
    written = []
    for stale in data.stem("_incomplete").parent.glob(data.stem("_incomplete").name + ".*"):
        stale.unlink()  # an earlier attempt's list; rewritten below if jobs are still missing
    if not data.incomplete.empty:
        written += write_table(data.incomplete, data.stem("_incomplete"))[:1]
        say(f"[{fig.name}] {len(data.incomplete)} job(s) not complete, left out: see {written[-1]}")
    if data.runs.empty:
        print(f"[{fig.name}] no complete runs: nothing to draw", file=sys.stderr)
        return jobs, failed + 1
    written += write_table(data.runs, data.stem("_runs"))
    written += write_table(data.curves, data.stem("_curves"))  # the metrics rows: figures redrawable from tables
    from ..labels import key_numbers

    for task, runs in data.runs.groupby("task", sort=False):
        say(f"[{fig.name}] {task}, final values (mean ± s.e. over seeds):")
        say("    " + key_numbers(runs).to_string(index=False).replace("\n", "\n    "))
    written += fig.draw(data)
    for note in data.notes:
        say(f"[{fig.name}] {note}")
    say(f"[{fig.name}] done in {time.time() - started:.0f} s: " + ", ".join(str(p) for p in written
                                                                           if p.suffix != ".pdf"))
    return jobs, failed


def main(argv: list[str], figures: dict[str, Figure]) -> int:
    """`kondo-bench figures [--scale test|quick|report|paper] [--only NAME] [--out DIR] [KEY=VALUE ...]`,
    over `figures` (name -> Figure, in the order they are made)."""
    parser = argparse.ArgumentParser(
        prog="kondo-bench figures", description="Run each paper figure's sweeps (skipping finished jobs) and draw it.",
        epilog="figures: " + "; ".join(f"{f.name}: {f.about}" for f in figures.values()))
    parser.add_argument("--scale", choices=list(SCALES), default="quick",
                        help="test: every figure's pipeline on tiny runs (minutes: each sweep starts a process); "
                        "quick: CPU minutes (default); report: CPU hours; paper: the full setting")
    parser.add_argument("--only", action="append", choices=list(figures), help="this figure only (repeatable)")
    parser.add_argument("--out", default="results/figures", help="output folder (default results/figures); "
                        "figures and tables go to OUT/SCALE/, runs to OUT/SCALE/runs/ and the records of "
                        "finished jobs (to commit) to OUT/SCALE/finished/")
    parser.add_argument("--dry-run", "-n", action="store_true", help="say how many jobs each sweep has done and "
                        "to run, and stop: launch, draw and write nothing")
    parser.add_argument("--no-launch", action="store_true", help="launch nothing: draw each figure from its "
                        "finished jobs (run folders and finished/ records) and list the missing ones in "
                        "<figure>_incomplete.csv, e.g. between the runs of a figure built up in pieces")
    parser.add_argument("--redraw", action="store_true", help="only draw again, from the tables already in "
                        "OUT/SCALE (<figure>_runs.csv and _curves.csv): launch nothing, read no run")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="jobs at once on this machine, through "
                        "Hydra's joblib launcher (pip install kondo-bench[joblib]); default 1")
    parser.add_argument("--seeds", type=int, default=None, metavar="N", help="run and draw only the first N seeds "
                        "of each sweep at this scale (build a big figure up in pieces: a later run without it "
                        "finds these jobs done)")
    parser.add_argument("--sweep", action="append", metavar="GLOB", help="launch only the sweeps whose name "
                        "matches (repeatable), e.g. --sweep 'hstar-dgk-*': two commands over disjoint sweeps keep two "
                        "cores busy where each sweep runs one job at a time; the figure is still drawn from all its "
                        "sweeps' finished jobs")
    parser.add_argument("--park", action="store_true", help="launch nothing: copy the latest checkpoint of each "
                        "unfinished job (with the metrics rows it counts) to OUT/SCALE/parked/, to commit beside "
                        "finished/; the same command on another machine continues those jobs from there")
    parser.add_argument("--verbose", "-v", action="store_true", help="show the runs' full output")
    parser.add_argument("overrides", nargs="*", help="extra KEY=VALUE for every job, e.g. hydra/launcher=joblib")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    scale = SCALES[args.scale]
    if args.seeds is not None:
        if args.seeds < 1:
            print(f"kondo-bench figures: error: --seeds must be at least 1 (got {args.seeds})", file=sys.stderr)
            return 2
        scale = replace(scale, max_seeds=args.seeds)
    out = Path(args.out) / scale.name
    extra = list(args.overrides)
    if args.jobs > 1:
        extra = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.jobs}", *extra]
    started, failed = time.time(), 0
    figs = [figures[name] for name in args.only or list(figures)]
    if args.redraw:
        return redraw(figs, scale, out)
    from ..errors import UserError
    from ..preflight import check_out, check_run

    try:
        check_out(out)
    except UserError as e:
        print(f"kondo-bench figures: error: {e}", file=sys.stderr)
        return 2

    def plan(fig: Figure) -> list[Plan]:  # --sweep: only the sweeps named (e.g. two commands on two cores)
        return plan_sweeps(fig, scale, out, extra, args.sweep)

    def whole(fig: Figure) -> Callable[[], list[Plan]] | None:
        """What a figure is drawn from: all its sweeps, also under --sweep (which limits only what
        is launched), so a command over some sweeps never writes a figure missing the others."""
        return (lambda: plan_sweeps(fig, scale, out, extra)) if args.sweep else None

    plans = {f.name: plan(f) for f in figs}
    first = next((j for ps in plans.values() for p in ps for j in p.jobs), None)
    if first is not None and not args.no_launch and not args.dry_run:
        try:  # a misspelt or out-of-range extra KEY=VALUE: one line now, before any sweep launches
            check_run(["-m", *first.overrides, *[o for o in extra if not o.startswith("hydra")]], lock=False)
        except UserError as e:
            print(f"kondo-bench figures: error: {e}", file=sys.stderr)
            return 2
    jobs = {j.folder: j for ps in plans.values() for p in ps for j in p.jobs}  # figures share sweeps
    skipped = sum(is_done(j, extra) for j in jobs.values())
    if args.park:
        return park_all([p for ps in plans.values() for p in ps], extra, out)
    if args.dry_run:
        for p in (p for ps in plans.values() for p in ps if p.sweep.select is not None):
            todo = [j.folder.name for j in p.jobs if not is_done(j, extra)]
            print(f"[figures] {p.sweep.name}: next " + ("; ".join(todo) if todo else "nothing: its search is done"))
        for p in (p for ps in plans.values() for p in ps):
            for j in (j for j in p.jobs if not is_done(j, extra)):
                if (step := step_of(p.parked / j.folder.name, j)) > step_of(j.folder, j):
                    print(f"[figures] {p.sweep.name}/{j.folder.name}: would continue from its parked checkpoint "
                          f"(step {step})")
        print(f"[figures] {len(jobs)} jobs, {skipped} done, {len(jobs) - skipped} to run (dry run: nothing launched)")
        return 0
    watch = Watch(Progress(len(jobs), skipped=skipped, label="[figures] jobs"), skipped)
    try:
        for fig in figs:
            if args.no_launch or not any(p.sweep.select for p in plans[fig.name]):
                drawn, f = make_figure(fig, scale, out, extra, args.verbose, plans[fig.name], watch,
                                       not args.no_launch, whole(fig))
                jobs.update((j.folder, j) for j in drawn)
                failed += f
                continue
            # a searching figure (H*): run its cheapest proposed jobs, propose again from what
            # finished, until nothing is proposed; then draw it once. A series whose launch
            # failed is left alone for the rest of this command (its failed job would only be
            # proposed again), and the other series go on: one series' fault costs only it.
            broken: set[str] = set()
            while batch := cheapest([p for p in plans[fig.name] if p.sweep.name not in broken], extra):
                jobs.update((j.folder, j) for p in batch for j in p.jobs)
                watch.progress.close()
                watch = Watch(Progress(sum(len(p.jobs) for p in batch), label=f"[{fig.name}] next jobs"), 0)
                _, f = run_sweeps(fig, batch, extra, args.verbose, watch, broken)
                failed += f
                plans[fig.name] = plan(fig)
            drawn, f = make_figure(fig, scale, out, extra, args.verbose, plans[fig.name], watch, launch=False,
                                   drawn=whole(fig))
            jobs.update((j.folder, j) for j in drawn)
            failed += f
    except Stopped as e:  # the sweep running then has ended its jobs (stop.py)
        watch.progress.close()
        print(f"kondo-bench figures: stopped by {e}: the running jobs ended 'interrupted' and the rest did not "
              "start; run the same command again to continue (finished jobs are skipped)", file=sys.stderr)
        return 130
    watch.progress.close()
    missing = sum(not is_done(j, extra) for j in jobs.values())
    print((f"figures drawn from {len(jobs) - missing} of {len(jobs)} jobs ({missing} not finished, listed in each "
           "figure's _incomplete.csv)" if missing else "all figures done")
          + f" in {time.time() - started:.0f} s" + (f"; {failed} launch(es) failed" if failed else ""))
    return 1 if failed else 0




def park_all(plans: list[Plan], extra: list[str], out: Path) -> int:
    """`--park`: the unfinished jobs' checkpoints to OUT/SCALE/parked/ (parked.py)."""
    seen, n = set(), 0
    for p in plans:
        if p.sweep.name in seen:  # figures share sweeps
            continue
        seen.add(p.sweep.name)
        for name, step in park(p.parked, [j for j in p.jobs if not is_done(j, extra)]):
            print(f"[figures] parked {p.sweep.name}/{name} at step {step}")
            n += 1
    print(f"[figures] {n} job(s) parked in {out / PARKED}" + (": commit it, and the same command on any machine "
          "continues them from there" if n else " (no unfinished job has a checkpoint later than its parked one)"))
    return 0


def redraw(figs: list[Figure], scale: Scale, out: Path) -> int:
    """Draw each figure from its committed tables (after a change to the drawing code)."""
    import pandas as pd

    failed = 0
    for fig in figs:
        runs, curves = out / f"{fig.name}_runs.csv", out / f"{fig.name}_curves.csv"
        if not runs.exists():
            print(f"[{fig.name}] no {runs}: run `kondo-bench figures --scale {scale.name} --only {fig.name}` first",
                  file=sys.stderr)
            failed += 1
            continue
        data = FigureData(fig.name, scale, out, pd.read_csv(runs),
                          pd.read_csv(curves) if curves.exists() else pd.DataFrame(), pd.DataFrame())
        written = fig.draw(data)
        for note in data.notes:
            print(f"[{fig.name}] {note}")
        print(f"[{fig.name}] redrawn from {runs.name}: " + ", ".join(str(p) for p in written if p.suffix != ".pdf"))
    return 1 if failed else 0
