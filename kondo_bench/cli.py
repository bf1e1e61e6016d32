"""`kondo-bench run|data ...`: thin; parses, dispatches.

`run` hands the rest of the command line to Hydra, so every Hydra feature works as usual:
`kondo-bench run task=mnist price=0.1`, `kondo-bench run -m price=0,0.1,1 seed=0,1`,
`kondo-bench run --cfg job`, `hydra/launcher=joblib`, ...
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from .config import register
from .errors import UserError

USAGE = """usage: kondo-bench COMMAND [ARGS]

commands:
  run [-m] [KEY=VALUE ...]   train one run, or a Hydra multirun sweep with -m
                             (e.g. kondo-bench run task=mnist method=dgk keep_rate=0.03)
  data mnist [--root DIR]    download and verify the MNIST IDX files
  summarize SWEEP_DIR [--out FILE_STEM]
                             one tidy table (CSV + Parquet) of every job in a sweep folder
  plot SWEEP_DIR [--out DIR] quality-cost trade-off (Pareto frontier) and learning curves, PNG + PDF
  figures [--scale test|quick|report|paper] [--only NAME] [--out DIR] [--jobs N] [KEY=VALUE ...]
                             run each paper figure's sweeps (skipping finished jobs) and draw it

options:
  -h, --help                 this message (COMMAND --help: that command's options)
  --version                  the kondo-bench version

`kondo-bench run --help` lists the config groups and keys; README.md documents them.
"""

register()
log = logging.getLogger("kondo_bench")


def _report(error: UserError) -> None:
    print(f"kondo-bench: error: {error}", file=sys.stderr)
    sys.exit(2)


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def _hydra_run(cfg) -> float | None:
    from .train import run_experiment

    out_dir = HydraConfig.get().runtime.output_dir
    shown = _shown(out_dir)
    try:
        summary = run_experiment(cfg, out_dir, task_config=HydraConfig.get().runtime.choices.get("task"))
    except UserError as e:
        _report(e)
    if summary.get("skipped"):
        print(f"skipped: {shown} already holds a complete run of this config (resume=false reruns it)")
        return summary["final_quality"]
    if summary["status"] == "failed":
        print(f"kondo-bench: error: run failed: {summary['error']}; partial metrics and a failed summary "
              f"are in {shown}", file=sys.stderr)
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            sys.exit(1)
        return None  # a sweep goes on to its next job
    q = summary["final_quality"]
    print(f"{summary['status']}: {summary['quality_metric']}={q if q is None else f'{q:.4g}'} "
          f"after {summary['steps']} steps; backward samples {summary['backward_samples']:,} "
          f"of {summary['forward_samples']:,} screened; {summary['wall_seconds']:.1f} s; results in {shown}")
    if summary["status"] == "interrupted":
        sys.exit(130)
    return q


def _shown(path: str) -> str:
    """A result folder as the user named it: relative to the current directory when inside it."""
    rel = Path(os.path.relpath(path))
    return str(rel) if not rel.parts or rel.parts[0] != ".." else str(path)


def check_choices(args: list[str]) -> None:
    """One-line errors for `task=nope` (Hydra's own message lists its whole search path)."""
    conf = Path(__file__).parent / "conf"
    for arg in args:
        m = re.fullmatch(r"(task|method|device)=([\w,]+)", arg)
        if m:
            group, values = m.groups()
            options = sorted(p.stem for p in (conf / group).glob("*.yaml"))
            for value in values.split(","):
                if value not in options:
                    raise UserError(f"unknown {group} '{value}': choose one of {', '.join(options)}")


def check_output_dir(args: list[str]) -> None:
    """A result folder that cannot be written is an error now, not after the run."""
    dirs = [a.split("=", 1)[1] for a in args if a.startswith(("hydra.run.dir=", "hydra.sweep.dir="))]
    for d in dirs or ["."]:
        path = Path(d).expanduser().absolute()
        while not path.exists():
            path = path.parent
        if not path.is_dir() or not os.access(path, os.W_OK):
            raise UserError(f"cannot write results under {d}: {path} is not a writable folder; "
                            "choose another with hydra.run.dir=... or hydra.sweep.dir=...")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] in ("--version", "-V"):
        from . import __version__
        print(f"kondo-bench {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "run":
        if not any(a.startswith(("--config-dir", "-cd")) for a in rest):  # user configs may add options
            try:
                check_choices(rest)
                check_output_dir(rest)
            except UserError as e:
                _report(e)
        sys.argv = [sys.argv[0], *rest]
        _hydra_run()
        return 0
    if command == "data":
        from .data import data_main
        return data_main(rest)
    if command == "summarize":
        from .sweeps import summarize_main
        return summarize_main(rest)
    if command == "plot":
        from .plots import plot_main
        return plot_main(rest)
    if command == "figures":
        from .figures import figures_main
        return figures_main(rest)
    print(f"kondo-bench: error: unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
