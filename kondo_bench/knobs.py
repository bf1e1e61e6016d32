"""Which knobs an estimator-through-gate combination reads, and a one-line refusal of the rest.

A knob set away from its default that the run would never read is an error, not silence:
`method=dg keep_rate=0.03` would otherwise run ungated DG, and PPO's `method.epochs` on PG
would do nothing. Each rule names who reads the knob and how to make it count.
"""

from __future__ import annotations

from .errors import UserError

# (key, default, reads(estimator, gate, method config) -> bool, who reads it)
RULES = (
    ("method.eta", 1.0, lambda e, g, m: e == "dg" or g in ("price", "quantile") or _into(m) == "dg",
     "the dg estimator's weight (also method=silent's method.into=dg) and the price and quantile gates"),
    ("method.ties", "random", lambda e, g, m: g == "topk" or g == "quantile" and m.eta == 0, "the topk gate"),
    ("method.signal", "delight", lambda e, g, m: g != "none", "a gate"),
    ("method.unit", "token", lambda e, g, m: g != "none", "a gate"),
    ("method.unit_reduce", "mean", lambda e, g, m: g != "none" and m.unit == "sequence",
     "a gate deciding on whole sequences (method.unit=sequence)"),
    ("method.signal_alpha", 0.5, lambda e, g, m: g != "none" and m.signal == "additive",
     "a gate screening on method.signal=additive"),
    ("method.delight_noise", 0.0, lambda e, g, m: e == "dg" or g != "none" and m.signal == "delight"
     or _into(m) == "dg", "the dg estimator's weight and a gate screening on delight"),
    ("method.kept_weight", "one", lambda e, g, m: g != "none", "a gate (kept_weight=dg is estimator=dg)"),
    ("method.epochs", 1, lambda e, g, m: e == "ppo", "the ppo estimator"),
    ("method.minibatches", 1, lambda e, g, m: e == "ppo", "the ppo estimator"),
    ("method.clip", 0.2, lambda e, g, m: e == "ppo", "the ppo estimator"),
    ("method.kl", 0.0, lambda e, g, m: e in ("ppo", "pmpo"), "the ppo and pmpo estimators"),
    ("method.alpha", 0.5, lambda e, g, m: e == "pmpo", "the pmpo estimator"),
)


def _into(m) -> str | None:
    """What method=silent anneals into, where it says (its schema alone has the key)."""
    into = m.get("into")
    return getattr(into, "value", into)


def _value(cfg, key: str):
    v = cfg.method[key.split(".", 1)[1]]
    return getattr(v, "value", v)  # enums compare by their name


def refuse_ignored_knobs(cfg, estimator: str, gate: str) -> None:
    """Raise a UserError naming the first knob that `estimator` through `gate` would ignore."""
    combo = f"method={cfg.method.name} (estimator {estimator}, gate {gate})"
    if cfg.keep_rate is not None and gate not in ("quantile", "topk"):
        raise UserError(f"keep_rate={cfg.keep_rate:g} is ignored by {combo}: add method.gate=topk (or quantile), "
                        "or drop keep_rate")
    if cfg.price != 0 and gate != "price":
        raise UserError(f"price={cfg.price:g} is ignored by {combo}: add method.gate=price, or drop price")
    m = cfg.method
    for key, default, reads, who in RULES:
        value = _value(cfg, key)
        if value != default and not reads(estimator, gate, m):
            raise UserError(f"{key}={value} is ignored by {combo}: only {who} read it; drop it or change the method")
    if m.kept_weight != "one" and estimator not in ("pg", "dg"):
        raise UserError(f"method.kept_weight=dg gives PG's kept terms DG's weight; {combo} has no PG terms: drop it")
    if cfg.screen_precision == "bf16" and gate == "none" and estimator != "ppo" and cfg.staleness == 0:
        raise UserError(f"screen_precision=bf16 is ignored by {combo}: an ungated run screens and learns in one "
                        "fp32 pass; add a gate, or drop screen_precision")
