"""`kondo-bench summarize`: a sweep's tidy table printed, and written as CSV beside Parquet
(or JSON lines without pyarrow), with its incomplete jobs listed apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from .results import SUMMARY
from .sweeps import CONFIG_COLUMNS, DATA_COLUMNS, META_COLUMNS, RESULT_COLUMNS, SweepTables, load_sweep


def write_table(df: pd.DataFrame, stem: str | Path) -> list[Path]:
    """CSV always; Parquet too, or JSON lines when pyarrow (or fastparquet) is missing."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + ".csv")]
    df.to_csv(paths[0], index=False)
    try:
        df.to_parquet(stem.with_name(stem.name + ".parquet"), index=False)
        paths.append(stem.with_name(stem.name + ".parquet"))
    except ImportError:
        df.to_json(stem.with_name(stem.name + ".jsonl"), orient="records", lines=True)
        paths.append(stem.with_name(stem.name + ".jsonl"))
    return paths


SHOW = ["run", "task", "method", "gate", "price", "keep_rate", "eta", "seed", "final_quality",
        "best_quality", "backward_samples", "forward_samples", "cost", "train_seconds"]


def show(tables: SweepTables, file=None) -> None:
    """Print the results table (the columns that tell jobs apart) and the incomplete jobs."""
    runs = tables.runs
    if runs.empty:
        print("no complete jobs", file=file)
    else:
        extra = [c for c in runs.columns if c not in CONFIG_COLUMNS + RESULT_COLUMNS + META_COLUMNS + DATA_COLUMNS
                 and runs[c].nunique(dropna=False) > 1]
        cols = [c for c in SHOW if c in runs.columns and (c in ("run", "final_quality", "seed")
                                                          or runs[c].notna().any())]
        cols = cols[:8] + extra + cols[8:]
        with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200,
                               "display.float_format", _fmt):
            print(runs[cols].to_string(index=False), file=file)
    if not tables.incomplete.empty:
        print(f"\n{len(tables.incomplete)} incomplete job(s), not in the table above:", file=file)
        for r in tables.incomplete.itertuples():
            print(f"  {r.run}: {r.reason}", file=file)


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def summarize_main(argv: list[str]) -> int:
    """`kondo-bench summarize SWEEP_DIR [--out FILE_STEM]`."""
    parser = argparse.ArgumentParser(prog="kondo-bench summarize",
                                     description="One tidy table of every job in a sweep folder.")
    parser.add_argument("sweep_dir", help="a multirun folder (or any folder of run folders)")
    parser.add_argument("--out", help="file stem for the tables (default: SWEEP_DIR/sweep): writes STEM.csv, "
                        "STEM.parquet (STEM.jsonl without pyarrow) and STEM_incomplete.csv")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    root = Path(args.sweep_dir)
    if not root.is_dir():
        print(f"kondo-bench: error: no folder {root}", file=sys.stderr)
        return 2
    tables = load_sweep(root, curves=False)
    if tables.runs.empty and tables.incomplete.empty:
        print(f"kondo-bench: error: no run folders under {root} (looked for {SUMMARY} and .hydra/)", file=sys.stderr)
        return 2
    show(tables)
    stem = Path(args.out) if args.out else root / "sweep"
    try:
        written = write_table(tables.runs, stem)
        if not tables.incomplete.empty:
            written += write_table(tables.incomplete, stem.with_name(stem.name + "_incomplete"))[:1]
    except OSError as e:
        from .faults import describe

        why = (describe(e, stem.parent) or f"{e.strerror or e}: {e.filename or stem}").split(": choose")[0]
        print(f"kondo-bench: error: cannot write the tables to {stem}.*: {why}; give --out a writable "
              "FILE_STEM", file=sys.stderr)
        return 2
    print(f"\n{len(tables.runs)} complete, {len(tables.incomplete)} incomplete; wrote "
          + ", ".join(str(p) for p in written))
    return 0
