"""The one loop every task and method runs through: act, screen, gate, learn, account.

1. Act     the policy samples actions for a batch of contexts.
2. Screen  log-probabilities of the taken actions, advantages, surprisal, delight
           (no autograd graph for gated methods).
3. Gate    the method turns them into per-unit coefficients and a keep mask.
4. Learn   re-run the forward pass with autograd on the kept rows only, compacted into
           a smaller batch, and take one optimiser step. No kept row: no backward, no step.
5. Account forward/backward counts, modelled cost, wall-clock per phase; evaluate on
           schedule and append a metrics row.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections import deque
from contextlib import contextmanager, nullcontext

import torch
from tqdm import tqdm

from .accounting import Counters, PhaseTimer
from .methods import Method, Selection
from .results import RunWriter
from .tasks import Batch, Task

log = logging.getLogger(__name__)
PLAIN = Method("pg")  # one pass, loss -coef * log pi: what every method but PPO uses


def learn_step(task: Task, batch: Batch, sel: Selection, method: Method | None = None) -> tuple[int, int]:
    """Backward passes on the kept rows only. Returns (backward rows, backward units), summed
    over PPO's epochs (each epoch runs every kept row backward once more).

    The loss is the sum of the method's per-unit terms over kept units, divided by *all*
    screened units (a constant, as in the official code), so gating changes which terms
    exist, not their scale. A minibatch is divided by its share of that count.
    """
    method = method or PLAIN
    n_rows, n_units = sel.keep.shape[0], sel.keep.numel()
    if batch.logp_grad is not None:  # ungated: the acting forward pass already has its graph
        task.learn(method.loss(sel.coef, batch.logp_grad, batch.logp).sum() / n_units)
        return n_rows, n_units
    row_kept = sel.keep.reshape(n_rows, -1).any(1)
    idx = row_kept.nonzero()[:, 0]
    rows = idx.numel()
    if rows == 0:
        return 0, 0
    kept_units = int(sel.keep.sum())
    for _ in range(method.epochs):
        order = idx[torch.randperm(rows, device=idx.device)] if method.minibatches > 1 else idx
        for mb in order.chunk(method.minibatches):
            logp = task.logp(batch, mb)  # the compacted forward pass, with autograd
            terms = method.loss(sel.coef[mb], logp, batch.logp[mb])
            task.learn(terms.sum() / (n_units * mb.numel() / rows))
    return rows * method.epochs, kept_units * method.epochs


class StalePolicy:
    """Acting with the parameters of D steps ago, as a distributed actor would.

    The task's own parameters (those its optimiser updates) are swapped in place for the
    stale copy while it acts, then restored; the learner's re-forward uses the current ones.
    """

    def __init__(self, task: Task, staleness: int):
        self.params = [p for g in task.optimizer.param_groups for p in g["params"]]
        self.history = deque([self._snapshot()], maxlen=staleness + 1)

    def _snapshot(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.params]

    @contextmanager
    def acting(self):
        current = self._snapshot()
        with torch.no_grad():
            for p, old in zip(self.params, self.history[0]):
                p.copy_(old)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, now in zip(self.params, current):
                    p.copy_(now)

    def after_step(self) -> None:
        self.history.append(self._snapshot())


class StopFlag:
    """Ctrl-C or SIGTERM asks the loop to stop at the next step boundary."""

    def __init__(self):
        self.signal: str | None = None

    @contextmanager
    def installed(self):
        def handler(signum, _frame):
            self.signal = signal.Signals(signum).name

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def train(cfg, task: Task, method: Method, writer: RunWriter, device: torch.device) -> dict:
    """Run the loop for cfg.task.steps steps; returns what the summary needs."""
    steps, eval_every = cfg.task.steps, cfg.task.eval_every
    counters, timer = Counters(), PhaseTimer(device)
    interval = {"reward": 0.0, "screened_units": 0, "kept_units": 0, "price": [], "steps": 0}
    stop = StopFlag()
    stale = StalePolicy(task, cfg.staleness) if cfg.staleness > 0 else None
    acts_with_grad = not method.gated and stale is None  # else: screen, then re-forward kept rows
    show = cfg.progress and sys.stderr.isatty()
    with stop.installed(), tqdm(total=steps, disable=not show, unit="step", dynamic_ncols=True) as bar:
        for step in range(1, steps + 1):
            with timer.phase("act"), (stale.acting() if stale else nullcontext()):
                batch = task.act(grad=acts_with_grad, supervised=method.supervised)
            with timer.phase("screen"):
                sel = method.select(batch.advantage, batch.logp)
            with timer.phase("learn"):
                rows, units = learn_step(task, batch, sel, method)
            if stale:
                stale.after_step()
            counters.record(batch.reward.numel(), rows, units, reforward=not acts_with_grad)
            interval["reward"] += batch.reward.sum()  # a tensor: no host sync per step
            interval["screened_units"] += sel.keep.numel()
            interval["kept_units"] += units
            interval["steps"] += 1
            if sel.price is not None:
                interval["price"].append(sel.price)
            last = step == steps or stop.signal is not None
            if step % eval_every == 0 or last:
                with timer.phase("eval"):
                    quality = task.evaluate()
                writer.append(_row(step, counters, timer, interval, quality, cfg.cost_ratio, batch.reward.numel()))
                bar.set_postfix({task.quality: quality.get(task.quality)}, refresh=False)
                interval = {"reward": 0.0, "screened_units": 0, "kept_units": 0, "price": [], "steps": 0}
            bar.update()
            if stop.signal is not None:
                log.warning("stopped by %s after step %d of %d", stop.signal, step, steps)
                break
    status = "complete" if stop.signal is None else "interrupted"
    return {"status": status, "counters": counters.as_dict(cfg.cost_ratio), "time": timer.as_dict()}


def _row(step, counters, timer, interval, quality, cost_ratio, batch_rows) -> dict:
    n = max(interval["steps"], 1)
    prices = interval["price"]
    return {
        "step": step,
        **counters.as_dict(cost_ratio),
        **timer.as_dict(),
        "train_reward": float(interval["reward"]) / (n * batch_rows),
        "keep_rate": interval["kept_units"] / max(interval["screened_units"], 1),
        "price": sum(prices) / len(prices) if prices else None,
        **quality,
    }


def resolve_device(name: str) -> torch.device:
    from .errors import UserError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device={name} but PyTorch sees no CUDA GPU here "
                            f"(torch {torch.__version__}, cuda available: False); use device=cpu or device=auto")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise UserError(f"unknown device '{name}': use device=auto, device=cpu or device=cuda")


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def run_experiment(cfg, out_dir) -> dict:
    """Validate, build the task and method, train, and write the summary last."""
    import time

    from omegaconf import OmegaConf

    from . import __version__
    from .config import resolve_gate, validate
    from .tasks import make_task

    validate(cfg)
    device = resolve_device(cfg.device.name)
    writer = RunWriter(out_dir)  # fails now, not after hours, if the folder is not writable
    seed_everything(cfg.seed)
    task = make_task(cfg, device)
    method = Method.from_config(cfg)
    gate = resolve_gate(cfg)
    log.info("task=%s method=%s gate=%s price=%s keep_rate=%s eta=%s seed=%d device=%s -> %s",
             cfg.task.name, method.name, gate, cfg.price, cfg.keep_rate, cfg.method.eta, cfg.seed, device, out_dir)
    started = time.time()
    result = train(cfg, task, method, writer, device)
    final = writer.rows[-1] if writer.rows else {}
    values = [r[task.quality] for r in writer.rows if r.get(task.quality) is not None]
    summary = {
        "status": result["status"],
        "task": cfg.task.name, "method": method.name, "gate": gate,
        "price": cfg.price if gate == "price" else None,
        "keep_rate": cfg.keep_rate if gate in ("quantile", "topk") else None,
        "eta": cfg.method.eta, "seed": cfg.seed, "cost_ratio": cfg.cost_ratio,
        "device": str(device), "steps_planned": cfg.task.steps,
        "quality_metric": task.quality,
        "final_quality": final.get(task.quality), "best_quality": min(values) if values else None,
        "final": final, **result["counters"], **result["time"],
        "wall_seconds": round(time.time() - started, 3),
        **task.info(),
        "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "versions": {"kondo_bench": __version__, "torch": torch.__version__},
    }
    writer.finish(summary)
    return summary
