"""One run from its config to its summary: validate, set up the device, take the folder's
lock, skip a finished run of the same config or resume from its checkpoint, build the task and
method, run the loop (`train.py`), and write the summary last.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from . import __version__, loggers
from .accounting import Counters
from .checkpoint import CHECKPOINT, load_checkpoint, remove_stale_temporaries, set_aside
from .config import resolve_estimator, resolve_gate
from .core import gate_class
from .folderlock import FolderLock
from .memory import check_memory
from .methods import Method
from .resultconfig import result_config, upgraded
from .results import SUMMARY, RunWriter, incomplete_reason, is_finished, read_metrics, read_summary
from .runsetup import check_bf16_screen, resolve_device, seed_everything, set_deterministic
from .tasks import Task, make_task
from .validation import validate
from .errors import UserError

log = logging.getLogger(__name__)


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
    from .train import train  # here, not at the top: train.py imports this module for run_experiment

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
