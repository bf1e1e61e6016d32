"""kondo-bench: an experiment runner for delight-gated policy gradients (DG and the Kondo gate)."""

__version__ = "0.1.0"
