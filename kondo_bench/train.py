"""The one loop every task and method runs through: act, screen, gate, learn, account.

1. Act     the policy samples actions for a batch of contexts.
2. Screen  log-probabilities of the taken actions, advantages, surprisal, delight
           (no autograd graph for gated methods).
3. Gate    the method turns them into per-unit coefficients and a keep mask.
4. Learn   re-run the forward pass with autograd on the kept rows only, compacted into
           a smaller batch, and take one optimiser step. No kept row: no backward, no step.
5. Account forward/backward counts, modelled cost, wall-clock per phase; evaluate on
           schedule and append a metrics row.

A run around the loop, from its config to its summary, is `experiment.py`; the device and
seeds it is set up on, `runsetup.py`.
"""

from __future__ import annotations

import logging
import sys
from collections import deque
from contextlib import contextmanager
from dataclasses import asdict

import torch
from tqdm import tqdm

from .accounting import Counters, PhaseTimer
from .checkpoint import rng_state, save_checkpoint, set_rng_state
from .core import Learned  # noqa: F401  (Learned: also imported from here)
from .methods import Method
from .resultconfig import result_config
from .stopping import NumericsError, NumericsGuard, StopFlag, Stopped
from .results import RunWriter
from .steps import PathwiseStep, ScoreStep, learn_step  # noqa: F401  (learn_step: also imported from here)
from .tasks import Task
# A run from config to summary (experiment.py) and its setup (runsetup.py) stay importable from here.
from .experiment import run_experiment  # noqa: F401
from .runsetup import resolve_device, seed_everything  # noqa: F401

log = logging.getLogger(__name__)


class StalePolicy:
    """Acting with the parameters of D steps ago, as a distributed actor would.

    The task's own parameters (those its optimiser updates) are swapped in place for the
    stale copy while it acts, then restored; the learner's re-forward uses the current ones.
    """

    def __init__(self, task: Task, staleness: int):
        self.params = task.parameters()
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


def new_interval() -> dict:
    return {"reward": 0.0, "screened_units": 0, "kept_units": 0, "price": [], "steps": 0}


def train(cfg, task: Task, method: Method, writer: RunWriter, device: torch.device,
          resume: dict | None = None) -> dict:
    """Run the loop to cfg.task.steps (from a checkpoint's step when resuming).

    Returns what the summary needs: status (complete | solved | interrupted | failed), counters,
    times, and why it stopped early (`stop_reason`) when it did.
    """
    steps, eval_every = cfg.task.steps, cfg.task.eval_every
    counters, timer, guard, stop = Counters(), PhaseTimer(device), NumericsGuard(device), StopFlag()
    stale = StalePolicy(task, cfg.staleness) if cfg.staleness > 0 else None
    do_step = PathwiseStep(task, timer, guard) if method.pathwise else \
        ScoreStep(task, method, timer, guard, device, stale, screen_bf16=cfg.screen_precision == "bf16")
    start = 0
    if resume is not None:
        start = resume["step"]
        task.load_state_dict(resume["task"])
        counters = Counters(**resume["counters"])
        timer.seconds.update(resume["seconds"])
        if stale:
            stale.history.extend(resume["stale"])
        set_rng_state(resume["rng"])
        log.info("resumed from the checkpoint at step %d", start)
    interval, status, error, stop_reason = new_interval(), "complete", None, None
    show = cfg.progress and sys.stderr.isatty()
    with stop.installed(), tqdm(total=steps, initial=start, disable=not show, unit="step", dynamic_ncols=True) as bar:
        try:
            for step in range(start + 1, steps + 1):
                guard.step = step
                try:
                    stepped = do_step(step)  # act-screen-gate-learn, or a pathwise step (steps.py)
                except RuntimeError:  # e.g. sampling from NaN probabilities: name the cause if numeric
                    guard.check(task.parameters(), {})
                    raise
                if stale:
                    stale.after_step()
                counters.record(stepped.reward.numel(), stepped.learned)
                interval["reward"] += stepped.reward.sum()  # a tensor: no host sync per step
                interval["screened_units"] += stepped.screened_units
                interval["kept_units"] += stepped.learned.kept_units
                interval["steps"] += 1
                if stepped.price is not None:
                    interval["price"].append(stepped.price)
                if step % eval_every == 0 or step == steps or stop.signal is not None:
                    with timer.phase("eval"):
                        quality = task.evaluate()
                    guard.check(task.parameters(), quality)
                    writer.append(_row(step, counters, timer, interval, quality, cfg.cost_ratio, stepped.reward.numel()))
                    bar.set_postfix({task.quality: quality.get(task.quality)}, refresh=False)
                    interval = new_interval()
                    if (reason := solved(quality.get(task.quality), cfg.solved_below, task.quality)) is not None:
                        status, stop_reason = "solved", reason
                        log.info("solved at step %d of %d: %s", step, steps, reason)
                        bar.update()
                        break
                    if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < steps:
                        save_checkpoint(writer.dir, {
                            "step": step, "task": task.state_dict(), "counters": asdict(counters),
                            "seconds": dict(timer.seconds), "stale": list(stale.history) if stale else [],
                            "rng": rng_state(), "rows": len(writer.rows), "result_config": result_config(cfg)})
                bar.update()
                if stop.signal is not None:
                    status = "interrupted"
                    log.warning("stopped by %s after step %d of %d", stop.signal, step, steps)
                    break
        except NumericsError as e:
            status, error = "failed", str(e)
            log.error("run failed: %s", e)
        except Stopped as e:  # inside a step: the step is dropped, the rows so far are kept
            status = "interrupted"
            log.warning("stopped by %s in step %d of %d", e, counters.steps + 1, steps)
    return {"status": status, "error": error, "stop_reason": stop_reason,
            "counters": counters.as_dict(cfg.cost_ratio), "time": timer.as_dict()}


def solved(quality, threshold: float | None, metric: str) -> str | None:
    """Why a run stops as solved at this evaluation (its quality below the threshold), else None.
    A quality that is missing or NaN never counts."""
    if threshold is None or quality is None or not quality < threshold:
        return None
    return f"{metric} {quality:.4g} < solved_below {threshold:g}"


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
