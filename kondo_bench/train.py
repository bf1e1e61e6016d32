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
import math
import os
import random
import sys
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from . import __version__, loggers

from .accounting import Counters, PhaseTimer
from .config import resolve_estimator, resolve_gate
from .validation import validate
from .errors import UserError
from .core import Learned, gate_class  # noqa: F401  (Learned: also imported from here)
from .memory import check_memory
from .methods import Method
from .checkpoint import (CHECKPOINT, load_checkpoint, remove_stale_temporaries, rng_state, save_checkpoint, set_aside,
                         set_rng_state)
from .folderlock import FolderLock
from .resultconfig import result_config, upgraded
from .stopping import NumericsError, NumericsGuard, StopFlag, Stopped
from .results import SUMMARY, RunWriter, incomplete_reason, is_finished, read_metrics, read_summary
from .steps import PathwiseStep, ScoreStep, learn_step  # noqa: F401  (learn_step: also imported from here)
from .tasks import Task, make_task

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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device={name} but PyTorch sees no CUDA GPU here "
                            f"(torch {torch.__version__}, cuda available: False); use device=cpu or device=auto")
        device, count = torch.device(name), torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UserError(f"device={name} but this machine has {count} CUDA GPU{'s' * (count != 1)} "
                            f"(cuda:0 to cuda:{count - 1}); give each job one of them, e.g. a sweep of at most "
                            f"{count} jobs with device.name=cuda:${{hydra:job.num}}")
        return device
    if name == "cpu":
        return torch.device("cpu")
    raise UserError(f"unknown device '{name}': use device=auto, device=cpu or device=cuda")


def cpu_has_bf16() -> bool:
    """Does this CPU have bf16 instructions (AVX512-BF16 or AMX)? Without them oneDNN emulates
    bf16 matrix products in fp32 with conversions around them. Unknown (an older torch): True."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    probes = [p for p in probes if p is not None]
    return not probes or any(p() for p in probes)


def check_bf16_screen(cfg, device: torch.device) -> None:
    """screen_precision=bf16 is refused on a CPU without bf16 instructions unless forced: there
    a DG-K step with the bf16 screen is 1.5-3x slower than with the fp32 one it is meant to undercut
    (docs/performance.md, scripts/bench_bf16.py)."""
    if cfg.screen_precision == "bf16" and device.type == "cpu" and not cfg.device.force_bf16 and not cpu_has_bf16():
        raise UserError("screen_precision=bf16 on a CPU without bf16 instructions (AVX512-BF16 or AMX) makes a gated "
                        "step 1.5-3x slower than fp32 screening; drop it, or pass device.force_bf16=true to run it anyway")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def set_deterministic(on: bool) -> None:
    """torch.use_deterministic_algorithms, warn-only: an op without a deterministic kernel warns
    once instead of failing. Free on CPU, where the same seed already gives the same metrics;
    on CUDA it picks sorted (slower) kernels for the atomics of row-gather backward passes and
    needs cuBLAS's fixed workspace, set here unless the environment already chose one."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on, warn_only=True)


def run_experiment(cfg, out_dir, task_config: str | None = None) -> dict:
    """Validate, build the task and method, train, and write the summary last.

    With resume=true (the default), a folder that already holds a complete run of the same
    config is skipped, and a folder with a checkpoint of the same config continues from it.
    """
    validate(cfg)
    views = loggers.requested(cfg)  # a missing package stops the run now, naming the install
    device = resolve_device(cfg.device.name)
    check_bf16_screen(cfg, device)
    check_memory(cfg, str(device))  # before anything is allocated: one line naming the key to lower
    if cfg.device.threads:
        torch.set_num_threads(cfg.device.threads)
    set_deterministic(cfg.device.deterministic)
    with FolderLock(out_dir):  # one writer per folder, from here until the summary is written
        return _run_locked(cfg, out_dir, device, task_config, views)


def refuse_other_config(out_dir, cfg) -> dict | None:
    """The folder's finished (complete or solved) summary if it is a run of this config;
    UserError if of another."""
    prior = read_summary(out_dir) if (Path(out_dir) / SUMMARY).is_file() else None
    if is_finished(prior) and cfg.resume and (why := incomplete_reason(out_dir, prior)):
        log.warning("%s: %s; running it again", out_dir, why)
        return None
    if is_finished(prior) and cfg.resume:
        if upgraded(prior.get("result_config") or {}) == result_config(cfg):
            return prior
        raise UserError(f"{out_dir} already holds a complete run of a different config; choose another "
                        "folder (hydra.run.dir=... or hydra.sweep.dir=...) or pass resume=false to overwrite it")
    return None


def _fits(task: Task, checkpoint: dict) -> bool:
    """Whether the checkpoint's task state loads into this task (train() loads it again)."""
    try:
        task.load_state_dict(checkpoint["task"])
        Counters(**checkpoint["counters"])
        return True
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError):
        return False


def _run_locked(cfg, out_dir, device: torch.device, task_config: str | None = None,
                views: list[str] = ()) -> dict:
    config = result_config(cfg)
    if prior := refuse_other_config(out_dir, cfg):
        log.debug("%s already holds a complete run of this config", out_dir)
        return {**prior, "skipped": True}
    remove_stale_temporaries(out_dir)
    checkpoint = load_checkpoint(out_dir, config) if cfg.resume else None
    kept_rows = read_metrics(out_dir)[:checkpoint["rows"]] if checkpoint else []
    if checkpoint and len(kept_rows) < checkpoint["rows"]:  # rows lost (e.g. power): recompute them all
        log.warning("%s holds %d metrics rows but its checkpoint counts %d; starting over from step 0",
                    out_dir, len(kept_rows), checkpoint["rows"])
        checkpoint, kept_rows = None, []
    seed_everything(cfg.seed)
    task = make_task(cfg, device)  # a data problem is refused before any result file is written
    if checkpoint is not None and not _fits(task, checkpoint):  # e.g. a key missing from its task state
        set_aside(Path(out_dir) / CHECKPOINT, "does not fit this run's task (a key is missing or has another shape)")
        checkpoint, kept_rows = None, []
        seed_everything(cfg.seed)
        task = make_task(cfg, device)  # built afresh: the failed load may have changed some of its state
    method = Method.from_config(cfg)
    writer = RunWriter(out_dir, kept_rows)
    (Path(out_dir) / SUMMARY).unlink(missing_ok=True)  # a rerun is incomplete until it finishes
    gate = resolve_gate(cfg)
    gate_knobs = gate_class(gate).knobs
    knob = "".join(f" {k}={cfg[k]}" for k in ("price", "keep_rate") if k in gate_knobs)  # only what this gate uses
    # the task config's name (`bandit_multi`) tells the two bandits apart; task.name (`bandit`
    # for both) stays the `task` column of the tables
    task_name = task_config or cfg.task.name
    log.info("task=%s method=%s estimator=%s gate=%s%s eta=%s seed=%d device=%s -> %s", task_name,
             method.name, method.estimator.name, gate, knob, cfg.method.eta, cfg.seed, device, out_dir)
    writer.attach(loggers.open_views(views, cfg, out_dir))
    started = time.time()
    try:
        result = train(cfg, task, method, writer, device, checkpoint)
    except BaseException:
        writer.close_views("failed")
        raise
    final = writer.rows[-1] if writer.rows else {}
    values = [r[task.quality] for r in writer.rows if r.get(task.quality) is not None]
    summary = {
        "status": result["status"], "error": result["error"], "stop_reason": result["stop_reason"],
        "task": cfg.task.name, "task_config": task_name, "method": method.name,
        "estimator": resolve_estimator(cfg), "gate": gate,
        "price": cfg.price if "price" in gate_knobs else None,
        "keep_rate": cfg.keep_rate if "keep_rate" in gate_knobs else None,
        "eta": cfg.method.eta, "seed": cfg.seed, "cost_ratio": cfg.cost_ratio,
        "device": str(device), "steps_planned": cfg.task.steps,
        "resumed_from_step": checkpoint["step"] if checkpoint else None,
        "quality_metric": task.quality,
        "final_quality": final.get(task.quality), "best_quality": min(values) if values else None,
        "final": final, **result["counters"], **result["time"],
        "wall_seconds": round(time.time() - started, 3),
        **task.info(),
        "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "result_config": config,
        "versions": {"kondo_bench": __version__, "torch": torch.__version__},
    }
    if is_finished(summary) and (bad := overflowed(summary)):
        summary["status"] = "failed"
        summary["error"] = (f"{bad} overflowed (not a finite number), so the run's result cannot be recorded; "
                            "lower cost_ratio or the run's size")
        log.error("run failed: %s", summary["error"])
    writer.finish(summary)
    return summary


RESULT_FIELDS = ("forward_samples", "backward_samples", "backward_units", "reforward_samples", "cost",
                 "cost_with_reforward", "optimizer_steps", "steps", "final_quality")


def overflowed(summary: dict) -> str | None:
    """The first result field that is not a finite number (JSON would store it as null)."""
    for key in RESULT_FIELDS:
        v = summary.get(key)
        if isinstance(v, float) and not math.isfinite(v):
            return key
    for key, v in (summary.get("final") or {}).items():
        if isinstance(v, float) and (math.isinf(v) or key == summary.get("quality_metric") and math.isnan(v)):
            return f"final.{key}"
    return None
