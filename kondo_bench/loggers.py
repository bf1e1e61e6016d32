"""Live views of a run's metrics rows: TensorBoard event files and, optionally, Weights & Biases.

Both are fed the rows `RunWriter` writes to metrics.jsonl, so they cost nothing between
evaluations. Each row becomes scalars, namespaced as in CleanRL:

    quality/<key>   the task's quality metrics and train_reward                 x: step
    gate/<key>      keep_rate (kept / screened units) and the mean price         x: step
    counts/<key>    forward, backward, re-forward samples, backward units       x: step
    cost/<key>      modelled cost (F + c B) and cost with re-forward            x: step
    time/<phase>    cumulative wall-clock seconds per phase                     x: step
    by_forward_samples/<key>, by_backward_samples/<key>
                    the quality keys again, against forward or backward samples

TensorBoard plots every scalar against its step, so the two `by_*` groups carry the sample
counts as their step. Event files go in the run folder itself, so `tensorboard --logdir`
on a sweep folder names each job by its folder (the overrides). A rerun or a resumed run
starts a fresh event file and replays the rows it keeps, as metrics.jsonl is rewritten.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path

from omegaconf import OmegaConf

from .errors import UserError

log = logging.getLogger(__name__)
COUNTS = ("optimizer_steps", "forward_samples", "backward_samples", "backward_units", "reforward_samples")
COSTS = ("cost", "cost_with_reforward")
GATE = ("keep_rate", "price")
NOT_SCALARS = ("step", "steps")  # the x-axis itself, and `steps` (equal to step)


def scalars(row: dict) -> list[tuple[str, float, int]]:
    """(tag, value, x) for every numeric value of a metrics row."""
    out = []
    for key, value in row.items():
        if key in NOT_SCALARS or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue  # None (no price on an ungated run), strings
        if key in COUNTS:
            out.append((f"counts/{key}", value, row["step"]))
        elif key in COSTS:
            out.append((f"cost/{key}", value, row["step"]))
        elif key in GATE:
            out.append((f"gate/{key}", value, row["step"]))
        elif key.startswith("time_"):
            out.append((f"time/{key[5:]}", value, row["step"]))
        else:
            out.append((f"quality/{key}", value, row["step"]))
            out.append((f"by_forward_samples/{key}", value, row["forward_samples"]))
            out.append((f"by_backward_samples/{key}", value, row["backward_samples"]))
    return out


def _tensorboard_available() -> bool:
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401  raises ImportError without tensorboard
    except ImportError:
        return False
    return True


def requested(cfg) -> list[str]:
    """The views this run writes: checked now, so a missing package stops the run before it starts."""
    views, want_tb = [], cfg.logger.tensorboard
    if want_tb is not False:
        if _tensorboard_available():
            views.append("tensorboard")
        elif want_tb:
            raise UserError("logger.tensorboard=true needs the tensorboard package: "
                            "pip install 'kondo-bench[tensorboard]' (or logger.tensorboard=false)")
    if cfg.logger.wandb:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise UserError("logger=wandb needs the wandb package: pip install 'kondo-bench[wandb]'") from None
        views.append("wandb")
    return views


def sweep_names(out_dir) -> tuple[str | None, str]:
    """(group, name) of a job: its sweep folder's name and its folder under it in a multirun;
    (None, its folder's name) for a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    out = Path(out_dir).absolute()
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        sweep = Path(HydraConfig.get().sweep.dir).absolute()
        if out.is_relative_to(sweep) and out != sweep:
            return sweep.name, str(out.relative_to(sweep))
    return None, out.name


def job_overrides() -> list[str]:
    """The command line's KEY=VALUE of this job (a multirun's job gets its own), [] outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def open_views(views: list[str], cfg, out_dir) -> list:
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    return [{"tensorboard": TensorBoardView, "wandb": WandbView}[v](cfg, out_dir, config) for v in views]


def _quiet_writer_thread(args) -> None:
    """TensorBoard's writer thread keeps a disk fault (full, read-only) for the main thread, then
    re-raises it, and Python prints the thread's traceback. The run's next write or close raises
    the same fault in the main thread, which says it in one line (kondo_bench/faults.py): the
    thread's traceback is left unprinted, every other thread's exception printed as ever."""
    if isinstance(args.exc_value, OSError) and type(args.thread).__name__ == "_AsyncWriterThread":
        return
    _THREAD_HOOK(args)


_THREAD_HOOK = threading.excepthook


class TensorBoardView:
    def __init__(self, cfg, out_dir, config: dict):
        from torch.utils.tensorboard import SummaryWriter

        threading.excepthook = _quiet_writer_thread
        for old in Path(out_dir).glob("events.out.tfevents.*"):
            old.unlink()  # a rerun replaces them, as it replaces metrics.jsonl
        self.writer = SummaryWriter(log_dir=str(out_dir))
        text = "    " + OmegaConf.to_yaml(OmegaConf.create(config)).replace("\n", "\n    ")  # a code block
        overrides = " ".join(job_overrides())
        self.writer.add_text("config", (f"overrides: `{overrides}`\n\n" if overrides else "") + text, 0)

    def log(self, row: dict) -> None:
        for tag, value, x in scalars(row):
            self.writer.add_scalar(tag, value, x)
        self.writer.flush()  # at an evaluation: a live `tensorboard` sees the row now

    def close(self, status: str | None) -> None:
        if status:
            self.writer.add_text("status", status, 0)
        self.writer.close()


def wandb_mode(setting: str | None, env: dict, has_key: bool, reachable) -> str:
    """online | offline: the key's value, else WANDB_MODE, else online only with an API key and
    a reachable server (`reachable` is called only then)."""
    if setting:
        return setting
    if env.get("WANDB_MODE"):
        return env["WANDB_MODE"]
    return "online" if has_key and reachable() else "offline"


def _wandb_reachable(timeout: float = 2.0) -> bool:
    try:
        socket.create_connection(("api.wandb.ai", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


class WandbView:
    def __init__(self, cfg, out_dir, config: dict):
        import wandb

        has_key = bool(os.environ.get("WANDB_API_KEY")) or (Path.home() / ".netrc").is_file()
        mode = wandb_mode(cfg.logger.wandb_mode, os.environ, has_key, _wandb_reachable)
        group, name = sweep_names(out_dir)
        self.run = wandb.init(project=cfg.logger.wandb_project, group=group, name=name, config=config,
                              dir=str(out_dir), mode=mode, reinit="create_new")
        for x in ("forward", "backward"):
            self.run.define_metric(f"by_{x}_samples/*", step_metric=f"counts/{x}_samples")
        if mode == "offline":
            log.info("W&B run written offline to %s; upload it with `wandb sync %s/wandb/offline-run-*`",
                     out_dir, out_dir)

    def log(self, row: dict) -> None:
        self.run.log({tag: value for tag, value, _ in scalars(row)}, step=row["step"])

    def close(self, status: str | None) -> None:
        self.run.finish(exit_code=0 if status in (None, "complete", "solved") else 1)
