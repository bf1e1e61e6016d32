"""Shared by the benchmark scripts: print a table of dict rows, and write it as CSV."""

from __future__ import annotations

import csv
from pathlib import Path


def print_table(rows: list[dict], keys: list[str]) -> None:
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    print("\n" + "  ".join(k.rjust(widths[k]) for k in keys))
    for r in rows:
        print("  ".join(str(r[k]).rjust(widths[k]) for k in keys))


def write_csv(rows: list[dict], path: str | Path | None) -> None:
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
