"""The rules that tie several keys together, checked before a run (and by the pre-run check).

The schema's ranges first, then the common rules; then the task's own hook (`Task.validate`),
which lives beside the task. A task composed from a YAML with `_target_` (a task of one's own)
is typed here against the schema its class declares (`Task.schema`), so that a misspelt or
mistyped key of it is one line too.
"""

from __future__ import annotations

from omegaconf import OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from .config import METHODS, PATHWISE, Unit, resolve_estimator, resolve_gate
from . import methods  # noqa: F401  (registers the pathwise estimators)
from .core import estimator_class, gate_class
from .errors import UserError
from .knobs import refuse_ignored_knobs
from .schema import check_ranges, need


def validate(cfg) -> None:
    """Refuse bad values with one message that names the fix."""
    from .tasks import task_class

    cls = task_class(cfg.task)
    type_task(cfg, cls)
    need(cfg.method.name in METHODS or cfg.method.estimator is not None,
         f"unknown method '{cfg.method.name}': use one of {', '.join(METHODS)}, or name its estimator "
         "(method.estimator=...)")
    check_ranges(cfg)
    need(cfg.checkpoint_every % cfg.task.eval_every == 0,
         f"checkpoint_every must be a multiple of task.eval_every ({cfg.task.eval_every}), or 0 for none "
         f"(got {cfg.checkpoint_every})")
    need(cfg.screen_precision in ("fp32", "bf16"),
         f"screen_precision must be fp32 or bf16 (got '{cfg.screen_precision}')")
    need(cfg.logger.wandb_mode in (None, "online", "offline"),
         f"logger.wandb_mode must be online, offline or null (got '{cfg.logger.wandb_mode}')")
    gate = resolve_gate(cfg)
    for kind, name, find in (("method.gate", gate, gate_class), ("method.estimator", resolve_estimator(cfg),
                                                                  estimator_class)):
        try:
            find(name)
        except ValueError as e:
            raise UserError(f"{kind}={name}: {e}") from None
    if gate_class(gate).fixed_rate:
        need(cfg.keep_rate is not None, f"method.gate={gate} needs keep_rate, e.g. keep_rate=0.03")
    estimator = resolve_estimator(cfg)
    need(estimator not in PATHWISE or (gate == "none" and cfg.keep_rate is None and cfg.price == 0),
         f"method={cfg.method.name} differentiates through the sampled code: there is no per-sample score term "
         "for a gate to keep; drop keep_rate, price and method.gate (gated VAE encoders: method=dgk, or "
         "method=pg with method.gate)")
    refuse_ignored_knobs(cfg, estimator, gate)
    if estimator in PATHWISE and cfg.task.name != "vae":
        raise UserError(f"method={cfg.method.name} (estimator {estimator}) trains a VAE's encoder through its "
                        f"sampled code: it runs on task=vae only (kondo-bench run task=vae method={estimator})")
    if cfg.method.unit == Unit.sequence:
        need(cls.units_per_row == "many",
             f"method.unit=sequence is the same gate as method.unit=token on task={cfg.task.name}, whose rows are "
             "one unit each; drop method.unit (it matters where a row has many units: task=reversal's tokens)")
    cls.validate(cfg)


def type_task(cfg, cls) -> None:
    """Merge an untyped task node (a YAML of one's own, with `_target_`) into its class's schema,
    in place: unknown keys and wrong types become one line, the schema's defaults fill the rest."""
    node = cfg.task
    schema = getattr(cls, "schema", None)
    if schema is None or OmegaConf.get_type(node) is not dict:
        return
    own = OmegaConf.to_container(node, resolve=True)
    target = own.pop("_target_", None)
    try:
        typed = OmegaConf.merge(OmegaConf.structured(schema), own)
    except OmegaConfBaseException as e:
        key = f"task.{e.key}" if getattr(e, "key", None) else "task"
        raise UserError(f"{key}: {str(e).splitlines()[0]} (the schema of {cls.__module__}.{cls.__name__}: "
                        f"{schema.__name__})") from None
    if target is not None:
        with open_dict(typed):
            typed["_target_"] = target
    with open_dict(cfg):
        cfg.task = typed
