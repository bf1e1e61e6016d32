"""Tasks: contexts, a policy, a reward and an evaluation. They know nothing of gates.

A task implements four things the training loop calls:
- `act()` samples actions for a batch without autograd and returns a `Batch` with the
  log-probabilities of the taken actions (detached), rewards and advantages. Its `data`
  holds the taken actions as `action` and, where the task has one, the correct action
  as `target` (the `ce` oracle trains on it: see `supervised`, no task code needed).
- `logp(batch, rows)` re-runs the forward pass *with* autograd on the kept rows only,
  compacted into a smaller batch: this is where a gated step saves compute.
- `act_with_grad()` (optional) is the ungated one-pass shortcut: act and keep the autograd
  graph of the taken actions' log pi (`logp_grad`). The default acts, then runs `logp` on
  every row; a task whose acting forward pass can keep its graph (MNIST) overrides it so
  an ungated step pays one forward pass, as a plain PyTorch loop would.
- `learn(loss)` takes one optimiser step (tasks own their update rule).
- `own_loss(batch, rows)` (optional): per-row terms of a loss of the task's own (a
  decoder's reconstruction), added beside the estimator's; `own_loss_rows` says which
  rows it needs: "kept" (those the gate kept) or "all" (every row then runs backward).
- Baselines live in `tasks/baselines.py`, shared by every task.
- `evaluate()` returns quality metrics; `quality` names the main one (lower is better).
- `pathwise_step(step, timer, guard)` (optional): a whole training step for an estimator that
  differentiates through the sample (a VAE's reparam, gumbel, silent). Such an estimator has
  no per-sample score term to screen or gate, so the loop hands it the step; the task
  returns a `steps.Stepped` (rewards, units screened, what it learned) for the same accounting
  (kondo_bench/steps.py, kondo_bench/vae/pathwise.py).
- `from_config(cfg, device)` builds the task; the default reads `cfg.task` only, a task whose
  step or metrics depend on the method (the VAE) reads `cfg.method` too.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field

import torch

from ..errors import UserError


def sample_categorical(probs: torch.Tensor) -> torch.Tensor:
    """One action per row of `probs` [..., K], by inverse CDF: the first action whose cumulative
    probability exceeds a uniform draw. The same distribution as torch.multinomial(probs, 1),
    at one random number per row instead of one per action (about 8x faster on CPU at K = 10).

    The draw is scaled by the row's last cumulative value: a float32 cumulative sum can end
    just below 1, and an unscaled draw above it would hand that leftover mass to the last
    action (even one of probability 0). The clamp only guards a draw that rounds up to it."""
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.shape[:-1] + (1,), device=probs.device, dtype=probs.dtype) * cdf[..., -1:]
    return (cdf <= u).sum(-1).clamp_(max=probs.shape[-1] - 1)


def rows_of(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x[idx] along the first dimension; index_select is several times faster than advanced
    indexing on CPU for wide rows (e.g. 1,000 MNIST images: 0.19 ms against 1.2 ms)."""
    return torch.index_select(x, 0, idx)


@dataclass
class Batch:
    logp: torch.Tensor  # log pi(a|h) of the taken actions, detached: [B] or [B, T] per unit
    advantage: torch.Tensor  # U = R - b, same shape as logp (broadcast to tokens)
    reward: torch.Tensor  # [B]
    logp_grad: torch.Tensor | None = None  # logp with its autograd graph, when acted with grad
    data: dict = field(default_factory=dict)  # task-private: contexts, actions, ...


class Task:
    quality: str = "error"
    quality_labels: dict = {}  # metric -> axis label, for the plots (else the metric's name)
    units_per_row: str = "one"  # "many": a row is a sequence of units (tokens) a gate may take whole
    quality_log: bool = True  # plot the quality metric on a log axis (False: it can be 0 or negative)
    own_loss_rows: str = "kept"  # rows `own_loss` needs: "kept" (by the gate) or "all"
    checkpoint_attrs: tuple[str, ...] = ()  # extra attributes a checkpoint must carry
    schema: type | None = None  # its config dataclass (a kondo_bench.schema.TaskConfig subclass)

    @classmethod
    def validate(cls, cfg) -> None:
        """The task's own rules beyond one key's range (cfg: the whole config); UserError to refuse."""

    @classmethod
    def from_config(cls, cfg, device: torch.device) -> "Task":
        return cls(cfg.task, device)

    @classmethod
    def memory_terms(cls, cfg) -> list[tuple[str | None, float, str]]:
        """The run's big tensors, before any is allocated: (the key to lower, bytes, what) for
        each (kondo_bench/memory.py adds them up); a term named "parameters" counts weights,
        gradients and Adam's two moments. cfg is the full config."""
        return []

    def parameters(self) -> list[torch.Tensor]:
        """What the optimiser updates: the policy, for staleness, checkpoints and NaN checks."""
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def state_dict(self) -> dict:
        return {"params": [p.detach().clone() for p in self.parameters()],
                "optimizer": self.optimizer.state_dict(),
                "extra": {k: getattr(self, k) for k in self.checkpoint_attrs}}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for p, saved in zip(self.parameters(), state["params"]):
                p.copy_(saved)
        self.optimizer.load_state_dict(state["optimizer"])
        for k, v in state["extra"].items():
            setattr(self, k, v)

    def act(self) -> Batch:
        """Sample a batch without autograd: data["action"] the taken actions, data["target"] the
        correct ones where the task has them."""
        raise NotImplementedError

    def act_with_grad(self) -> Batch:
        """act(), with `logp_grad` the taken actions' log pi and its autograd graph: every row re-run."""
        batch = self.act()
        return with_grad(self, batch)

    def logp(self, batch: Batch, rows: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def own_loss(self, batch: Batch, rows: torch.Tensor) -> torch.Tensor | None:
        """Per-row terms [len(rows)] of a loss of the task's own, with autograd; None: no such loss.
        The loop adds their sum / all screened rows to the estimator's loss, as it does the terms."""
        return None

    def learn(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def evaluate(self) -> dict:
        raise NotImplementedError

    def info(self) -> dict:
        """Facts a run's summary should carry (data source, notices)."""
        return {}


def all_rows(batch: Batch) -> torch.Tensor:
    return torch.arange(batch.reward.shape[0], device=batch.reward.device)


def with_grad(task: Task, batch: Batch) -> Batch:
    """The batch with `logp_grad` from `task.logp` over every row; `logp` becomes its detached copy."""
    batch.logp_grad = task.logp(batch, all_rows(batch))
    batch.logp = batch.logp_grad.detach()
    return batch


def supervised(task: Task, batch: Batch, grad: bool) -> Batch:
    """The `ce` oracle's batch: the correct action (data["target"]) in place of the sampled one.

    Its log pi is the task's own `logp` on the relabelled rows (with autograd when `grad`), its
    advantage 1 (every target is right; a gate then screens on the target's surprisal), and its
    reward the sampled actions' (train_reward stays the policy's own)."""
    if "target" not in batch.data:
        raise UserError(f"{type(task).__name__} has no correct action, so method=ce (the supervised oracle) "
                        "cannot run on it; use another method")
    sup = Batch(batch.logp, torch.ones_like(batch.advantage), batch.reward,
                data={**batch.data, "action": batch.data["target"]})
    if grad:
        return with_grad(task, sup)
    with torch.no_grad():
        sup.logp = task.logp(sup, all_rows(sup)).reshape(batch.logp.shape)
    return sup


def draw(task: Task, grad: bool, oracle: bool = False) -> Batch:
    """The loop's act step: `task.act()`, or its one-pass form when `grad` (ungated); the
    oracle relabels a sampled batch with the correct actions."""
    if oracle:
        return supervised(task, task.act(), grad)
    return task.act_with_grad() if grad else task.act()


# The package's own tasks: name -> (its class, its schema), each "module:Name" imported only when
# asked. A task of one's own needs no entry: its YAML names its class with `_target_`.
TASKS = {
    "bandit": ("kondo_bench.tasks.bandit:BanditTask", "kondo_bench.tasks.bandit_config:BanditConfig"),
    "mnist": ("kondo_bench.tasks.mnist:MnistTask", "kondo_bench.tasks.mnist_config:MnistConfig"),
    "reversal": ("kondo_bench.tasks.reversal:ReversalTask", "kondo_bench.tasks.reversal_config:ReversalConfig"),
    "vae": ("kondo_bench.vae.task:VaeTask", "kondo_bench.vae.config:VaeConfig"),
    "lm": ("kondo_bench.tasks.lm.task:LmTask", "kondo_bench.tasks.lm.config:LmConfig"),
}


def _load(path: str, what: str):
    module, _, name = path.replace(":", ".").rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise UserError(f"cannot import {what} {path!r} ({e}); put its package on PYTHONPATH "
                        "(e.g. PYTHONPATH=. kondo-bench run ...)") from None


def register_builtin_schemas() -> None:
    """Register the package's task schemas (torch-free modules beside the tasks) with Hydra."""
    for _, schema in TASKS.values():
        importlib.import_module(schema.split(":")[0]).register()


def task_class(task) -> type[Task]:
    """The class of a task: its config node's `_target_` (a task of one's own), else the
    package's task of that name. `task` is the task node, or a name."""
    target = task.get("_target_") if hasattr(task, "get") else None
    if target:
        cls = _load(target, "task._target_")
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise UserError(f"task._target_={target} is not a kondo_bench.tasks.Task subclass")
        return cls
    name = task.get("name") if hasattr(task, "get") else task
    if name not in TASKS:
        raise UserError(f"unknown task '{name}': use one of {', '.join(f'task={t}' for t in TASKS)}, "
                        "or give your task's YAML a _target_ naming its class")
    return _load(TASKS[name][0], "task")


def task_schema(name: str) -> type | None:
    """The schema dataclass of a package task (None for another name)."""
    return _load(TASKS[name][1], "task schema") if name in TASKS else None


def make_task(cfg, device: torch.device) -> Task:
    return task_class(cfg.task).from_config(cfg, device)


@functools.cache
def quality_labels() -> dict[str, str]:
    """Axis labels of every registered task's metrics, from the tasks themselves."""
    labels = {}
    for name in TASKS:
        labels.update(task_class(name).quality_labels)
    return labels


@functools.cache
def linear_quality() -> frozenset[str]:
    """The quality metrics that plots draw on a linear axis (a VAE's negative ELBO can be negative)."""
    return frozenset(task_class(name).quality for name in TASKS if not task_class(name).quality_log)
