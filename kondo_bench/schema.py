"""The range framework every schema uses: a numeric key declares its default, valid range and
meaning once (`num`), and one generic check (`check_ranges`) enforces them on a composed config.

Common to every config group; knows no task, method or Hydra (only OmegaConf's node types).
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import List

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from .errors import UserError


def need(ok: bool, msg: str) -> None:
    """Refuse with one line naming the fix."""
    if not ok:
        raise UserError(msg)


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric key: `lo`/`hi` bounds (None: unbounded), each open or closed."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, x) -> bool:
        if isinstance(x, float) and not math.isfinite(x):
            return False
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        return self.hi is None or (x < self.hi if self.hi_open else x <= self.hi)

    def __str__(self) -> str:
        def g(x: float) -> str:
            return str(int(x)) if float(x).is_integer() else f"{x:g}"

        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{g(self.lo)}, {g(self.hi)}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {g(self.lo)}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {g(self.hi)}"
        return "finite"


def _parse_range(spec: str) -> Range:
    """'>= 1', '> 0', '[0, 1]', '(0, 1]', 'finite' (any finite number)."""
    spec = spec.strip()
    if spec == "finite":
        return Range()
    m = re.fullmatch(r"(>=|>|<=|<)\s*(\S+)", spec)
    if m:
        op, x = m.group(1), float(m.group(2))
        return Range(lo=x, lo_open=op == ">") if op.startswith(">") else Range(hi=x, hi_open=op == "<")
    m = re.fullmatch(r"([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])])", spec)
    if not m:
        raise ValueError(f"bad range spec {spec!r}")
    return Range(float(m.group(2)), float(m.group(3)), m.group(1) == "(", m.group(4) == ")")


def num(default, valid: str, means: str, *, factory=None):
    """A numeric key: its default, its valid range (see _parse_range) and what it means, once.

    For a list (task.hidden) the range applies to each element. `check_ranges` enforces it.
    """
    meta = {"range": _parse_range(valid), "means": means}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TaskConfig:
    """What every task has; a task's own schema subclasses it, beside the task."""

    name: str = MISSING
    steps: int = num(1000, "[1, 1000000000]", "optimiser steps (screened batches)")
    batch_size: int = num(100, "[1, 1000000]", "samples acted and screened per step")
    eval_every: int = num(100, "[1, 1000000000]", "steps between evaluations (and metrics rows)")


NUMERIC = (int, float)


def numeric_type(hint) -> type | None:
    """int or float for a numeric field (also Optional[...] and List[...] of one), else None."""
    if hint in NUMERIC:
        return hint
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, list, List) and len(args) == 1 and args[0] in NUMERIC:
        return args[0]
    return None


def numeric_fields(schema: type) -> dict[str, tuple[type, Range | None, str]]:
    """Every numeric field of a schema dataclass: name -> (int | float, its Range or None, meaning)."""
    hints = typing.get_type_hints(schema)
    out = {}
    for f in fields(schema):
        kind = numeric_type(hints[f.name])
        if kind is not None:
            out[f.name] = (kind, f.metadata.get("range"), f.metadata.get("means", ""))
    return out


def check_ranges(node, prefix: str = "") -> None:
    """The one generic check: every numeric key of every config group inside its declared range.

    Walks the composed config; each typed node (a schema dataclass) says which of its keys are
    numeric and what their range is. A numeric key without a range is a bug in the schema.
    """
    schema = OmegaConf.get_type(node)
    declared = numeric_fields(schema) if schema is not None and is_dataclass(schema) else {}
    for key in node:
        value = node[key]
        name = f"{prefix}{key}"
        if isinstance(value, DictConfig):
            check_ranges(value, f"{name}.")
            continue
        if key not in declared:
            continue
        kind, valid, means = declared[key]
        if valid is None:
            raise TypeError(f"schema bug: numeric key {name} declares no range; declare it with kondo_bench.schema.num(default, range, meaning)")
        for v in (value if isinstance(value, ListConfig) else [value]):
            if v is None:
                continue
            if v not in valid:
                finite = "a finite number " if kind is float else ""
                raise UserError(f"{name}={_show(value)} is out of range: it must be {finite}{valid} "
                                f"({name}: {means})")


def _show(value) -> str:
    return str(list(value)) if isinstance(value, ListConfig) else str(value)
