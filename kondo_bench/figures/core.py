"""What a figure is: its scales, its sweeps and the data its `draw` gets.

A figure module (one per paper figure, listed in `figures/__init__.py`) builds a
`Figure(name, about, sweeps, draw)` from these types: `sweeps(scale)` lists the Hydra
multiruns it needs (`Sweep(name, overrides)`, the overrides exactly as on the command
line), `draw(data)` draws from the loaded tables (`FigureData`). Nothing here runs a job:
`jobs.py` expands and launches them, `done.py` checks which are finished, `command.py` is
`kondo-bench figures`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from ..errors import UserError


@dataclass(frozen=True)
class Budget:
    steps: int
    eval_every: int
    seeds: int
    extra: tuple = ()  # more overrides at this scale (test: a cheaper evaluation)


def default_budget(task: str) -> Budget:
    """A task's own budget: steps and eval_every of conf/task/<task>.yaml (else its schema's), one seed."""
    import yaml

    from ..schema import TaskConfig
    from ..tasks import task_schema

    path = Path(__file__).parents[1] / "conf" / "task" / f"{task}.yaml"
    if not path.exists():
        raise UserError(f"no task '{task}': conf/task/ has {', '.join(sorted(p.stem for p in path.parent.glob('*.yaml')))}")
    own = yaml.safe_load(path.read_text()) or {}
    schema = (task_schema(own.get("name", task)) or TaskConfig)()
    return Budget(own.get("steps", schema.steps), own.get("eval_every", schema.eval_every), 1)


@dataclass(frozen=True)
class Scale:
    """How big each task's runs are: `test` (a smoke test of every figure's pipeline: tiny runs,
    but 43 sweeps that each start a process, so minutes), `quick` (CPU minutes), `report` (CPU
    hours: what results/REPORT.md ran), `paper` (the paper's setting: a GPU or a cluster)."""

    name: str
    budgets: dict
    max_seeds: int | None = None  # `figures --seeds N`: the first N seeds of each sweep only

    def task(self, task: str, seeds: int | None = None, steps: int | None = None,
             eval_every: int | None = None) -> tuple[str, ...]:
        """Overrides for `task` at this scale: steps, evaluation interval and the seeds (each
        replaceable). A task this scale does not list runs its own config's steps and
        eval_every with one seed."""
        b = self.budgets[task] if task in self.budgets else default_budget(task)
        n = min(seeds or b.seeds, self.max_seeds) if self.max_seeds else seeds or b.seeds
        return (f"task={task}", f"task.steps={steps or b.steps}", f"task.eval_every={eval_every or b.eval_every}",
                "seed=" + ",".join(str(i) for i in range(n)), *b.extra)

    def pick(self, **by_scale):
        """A per-scale constant: s.pick(paper=0.05, quick=0.08, default=None)."""
        return by_scale.get(self.name, by_scale.get("default"))


SCALES = {
    "test": Scale("test", {"bandit": Budget(20, 5, 2), "bandit_multi": Budget(20, 5, 2),
                           "mnist": Budget(40, 20, 2),
                           "reversal": Budget(10, 5, 2, ("task.eval_prompts=20",)),
                           "lm": Budget(4, 2, 2, ("task.batch_size=16", "task.eval_prompts=16")),
                           "vae": Budget(4, 2, 2, ("task.hidden=[16]", "task.var_draws=2", "task.var_images=16"))}),
    "quick": Scale("quick", {"bandit": Budget(150, 5, 3), "bandit_multi": Budget(150, 5, 3),
                             "mnist": Budget(2000, 100, 3), "reversal": Budget(300, 25, 2), "lm": Budget(300, 25, 2),
                             "vae": Budget(1000, 100, 2)}),
    # The largest scale run on a 2-core CPU for results/REPORT.md: the paper's MNIST steps with
    # fewer seeds, a third of its reversal steps with 3 seeds; the VAE's 2,000 steps (its claim 2: 5 seeds).
    "report": Scale("report", {"bandit": Budget(300, 5, 30), "bandit_multi": Budget(300, 5, 30),
                               "mnist": Budget(10_000, 100, 5), "reversal": Budget(3000, 100, 3),
                               "lm": Budget(1000, 50, 3),
                               "vae": Budget(2000, 200, 3)}),
    "paper": Scale("paper", {"bandit": Budget(300, 5, 30), "bandit_multi": Budget(300, 5, 30),
                             "mnist": Budget(10_000, 100, 30), "reversal": Budget(10_000, 100, 10),
                             # task=lm (beyond the paper): sized for a GPU, as figures/lm.py says
                             "lm": Budget(10_000, 250, 10),
                             # the VAE paper's budget is not known: 10x the report's steps, 5 seeds
                             "vae": Budget(20_000, 1000, 5)}),
}


@dataclass(frozen=True)
class Sweep:
    name: str  # its folder under runs/ (and its file under finished/); unique per set of overrides
    overrides: tuple[str, ...]
    # A search over the grid rather than the whole grid (H*'s horizons, figures/hsearch.py):
    # select(jobs, finished) gets every grid job as (its overrides {key: value}, its folder
    # name) and the sweep's finished summaries by folder name, and returns the folder names
    # of the jobs to run and draw now. Folders are named as for the whole grid, so a job keeps
    # its folder and record from one stage of the search to the next.
    select: Callable[[list, dict], set] | None = None


@dataclass
class FigureData:
    """What a figure's `draw` gets: the tables of all its jobs, and where to write."""

    name: str
    scale: Scale
    out: Path
    runs: pd.DataFrame
    curves: pd.DataFrame
    incomplete: pd.DataFrame
    notes: list = field(default_factory=list)  # key numbers to print

    def stem(self, suffix: str = "") -> Path:
        return self.out / f"{self.name}{suffix}"


@dataclass(frozen=True)
class Figure:
    name: str
    about: str
    sweeps: Callable[[Scale], list]
    draw: Callable[[FigureData], list]
    # A metric the figure draws by name (not the task's `quality`): its runs count as finished
    # whatever quality metric their task reported then, e.g. reversal runs from before
    # `expected_error` still give `gateform` its `seq_error`.
    metric: str | None = None
