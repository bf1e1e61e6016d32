"""Which knobs an estimator-through-gate combination reads, and a one-line refusal of the rest.

A knob set away from its default that the run would never read is an error, not silence:
`method=dg keep_rate=0.03` would otherwise run ungated DG, and PPO's `method.epochs` on PG
would do nothing. The estimators' and gates' knobs are derived from what each class declares
(`knobs`, `reads`) where it is defined; the selection's own knobs (what a gate screens on)
are listed below.
"""

from __future__ import annotations

from dataclasses import fields

from .core import ESTIMATORS, GATES, estimator_class, gate_class
from .errors import UserError

TOP_LEVEL = ("price", "keep_rate")  # gate knobs that are top-level keys (the rest are method.*)

# The selection's knobs, read by any gate: (key, default, reads(estimator class, gate, method config), who)
SELECTION = (
    ("method.signal", "delight", lambda e, g, m: g != "none", "a gate"),
    ("method.unit", "token", lambda e, g, m: g != "none", "a gate"),
    ("method.unit_reduce", "mean", lambda e, g, m: g != "none" and m.unit == "sequence",
     "a gate deciding on whole sequences (method.unit=sequence)"),
    ("method.signal_alpha", 0.5, lambda e, g, m: g != "none" and m.signal == "additive",
     "a gate screening on method.signal=additive"),
    ("method.delight_noise", 0.0, lambda e, g, m: e.reads("delight_noise", m) or e.uses_delight
     or g != "none" and m.signal == "delight", "the dg estimator's weight and a gate screening on delight"),
    ("method.kept_weight", "one", lambda e, g, m: g != "none", "a gate (kept_weight=dg is estimator=dg)"),
)


def _value(v):
    return getattr(v, "value", v)  # enums compare by their name


def _who(key: str) -> str:
    """The registered estimators and gates that declare `key`, for the message."""
    ests = [n for n, c in ESTIMATORS.items() if key in c.knobs]
    gates = [n for n, c in GATES.items() if key in c.knobs]
    parts = ([f"the {' and '.join(ests)} estimator{'s' * (len(ests) > 1)}"] if ests else []) + \
            ([f"the {' and '.join(gates)} gate{'s' * (len(gates) > 1)}"] if gates else [])
    return " and ".join(parts) or "no estimator or gate"


def method_knobs() -> dict[str, object]:
    """Every method.* knob some registered estimator or gate declares, with the schema's default."""
    from .config import MethodConfig

    declared = {k for c in [*ESTIMATORS.values(), *GATES.values()] for k in c.knobs} - set(TOP_LEVEL)
    return {f.name: _value(f.default) for f in fields(MethodConfig) if f.name in declared}


def refuse_ignored_knobs(cfg, estimator: str, gate: str) -> None:
    """Raise a UserError naming the first knob that `estimator` through `gate` would ignore."""
    combo = f"method={cfg.method.name} (estimator {estimator}, gate {gate})"
    m = cfg.method
    est = estimator_class(estimator)
    g = gate_class(gate)
    if cfg.keep_rate is not None and not g.reads("keep_rate", m):
        raise UserError(f"keep_rate={cfg.keep_rate:g} is ignored by {combo}: add method.gate=topk (or quantile), "
                        "or drop keep_rate")
    if cfg.price != 0 and not g.reads("price", m):
        raise UserError(f"price={cfg.price:g} is ignored by {combo}: add method.gate=price, or drop price")
    for key, default in method_knobs().items():
        value = _value(m[key])
        if value != default and not (est.reads(key, m) or g.reads(key, m)):
            raise UserError(f"method.{key}={value} is ignored by {combo}: only {_who(key)} read it; drop it or "
                            "change the method")
    for key, default, reads, who in SELECTION:
        value = _value(m[key.split(".", 1)[1]])
        if value != default and not reads(est, gate, m):
            raise UserError(f"{key}={value} is ignored by {combo}: only {who} read it; drop it or change the method")
    if m.kept_weight != "one" and estimator not in ("pg", "dg"):
        raise UserError(f"method.kept_weight=dg gives PG's kept terms DG's weight; {combo} has no PG terms: drop it")
    if cfg.screen_precision == "bf16" and gate == "none" and not est.ratio_based and cfg.staleness == 0:
        raise UserError(f"screen_precision=bf16 is ignored by {combo}: an ungated run screens and learns in one "
                        "fp32 pass; add a gate, or drop screen_precision")
