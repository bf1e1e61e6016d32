"""The Kondo gate as a library: torch only (no Hydra, OmegaConf, pandas or matplotlib).

    from kondo_bench.core import Method, backward

    method = Method("dgk", keep_rate=0.03)            # DG-K: PG's terms on the top 3 % by delight
    sel = method.select(advantage, logp)              # screen: no autograd graph
    learned = backward(sel, lambda rows: policy_logp(rows), optimizer, method.estimator)
    learned.backward_rows                             # rows that paid a backward pass

The runner (`kondo-bench run`) calls this same code.
"""

from .backward import Learned, backward, optimizer_step
from .estimators import (CE, DG, ESTIMATORS, PG, PMPO, PPO, Estimator, estimator_class, make_estimator,
                         register_estimator)
from .gates import (GATES, Gate, PriceGate, QuantileGate, TopKGate, gate_class, make_gate, price_for_keep_rate, price_gate,
                    register_gate, topk_count, topk_gate)
from .select import PRESETS, Method, Selection
from .signals import (KeptWeight, Reduce, Signal, Ties, Unit, delight, screening_score, sequence_score,
                      sigmoid_weight)

__all__ = [
    "Learned", "backward", "optimizer_step",
    "CE", "DG", "ESTIMATORS", "PG", "PMPO", "PPO", "Estimator", "estimator_class", "make_estimator", "register_estimator",
    "GATES", "Gate", "PriceGate", "QuantileGate", "TopKGate", "gate_class", "make_gate", "price_for_keep_rate", "price_gate",
    "register_gate", "topk_count", "topk_gate",
    "PRESETS", "Method", "Selection",
    "KeptWeight", "Reduce", "Signal", "Ties", "Unit", "delight", "screening_score", "sequence_score",
    "sigmoid_weight",
]
