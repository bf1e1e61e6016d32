"""`kondo-bench figures`: one module per paper figure, and the registry that lists them.

Each figure module defines `FIGURE = Figure(name, about, sweeps, draw)`:
`sweeps(scale)` lists the Hydra multiruns it needs (`Sweep(name, overrides)`, the
overrides exactly as on the command line) and `draw(data)` draws from the loaded tables.
`hstar.py` is the example to follow; adding a figure is one module like it and one entry
in MODULES below. The machinery lives apart and never imports a figure:

- `core.py`: scales (`test`, `quick`, `report`, `paper`), `Sweep`, `Figure`, `FigureData`;
- `jobs.py`: expand a sweep into jobs, launch those not finished, record them;
- `done.py`: check which jobs are finished, and load their tables;
- `store.py`: the committed records of finished jobs (`finished/<sweep>.jsonl`);
- `parked.py`: the committed checkpoints of unfinished ones (`parked/`), to continue elsewhere;
- `command.py`: the command line, over the registry it is given;
- `stop.py`: a stop signal to `figures` passed on to the sweep it is running;
- `common.py`: helpers the figure modules share (panels, seed counts, mean curves);
- `hsearch.py`: a sweep that searches its grid (H*'s horizons) instead of running all of it.
"""

from __future__ import annotations

from . import bandit, gambling, gateform, hstar, lm, mnist, noise, reversal, screening, speedup, vae_anneal, vae_gate, vae_linear
from .common import first_reach
from .core import SCALES, Budget, Figure, FigureData, Scale, Sweep, default_budget
from .done import is_done, resolved_config
from .jobs import expand, job_folder
from .speedup import COST_RATIOS

# The figures, in the order `kondo-bench figures` makes them.
MODULES = (bandit, mnist, speedup, reversal, hstar, screening, noise, gambling, gateform, vae_linear, vae_anneal,
           vae_gate, lm)
FIGURES: dict[str, Figure] = {m.FIGURE.name: m.FIGURE for m in MODULES}


def figures_main(argv: list[str]) -> int:
    """`kondo-bench figures ...` over the figures above."""
    from .command import main

    return main(argv, FIGURES)


__all__ = ["COST_RATIOS", "FIGURES", "MODULES", "SCALES", "Budget", "Figure", "FigureData", "Scale", "Sweep",
           "default_budget", "expand", "figures_main", "first_reach", "is_done", "job_folder", "resolved_config"]
