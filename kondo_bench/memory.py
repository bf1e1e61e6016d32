"""Will the run fit? Its peak memory, estimated from the config before anything is allocated.

Each task class says what its big tensors are (`Task.memory_terms(cfg)`: the key to lower,
bytes, and what it is), from the same sizes its code allocates; a run whose estimate exceeds
the memory available on its device is refused with one line naming the estimate, what is
available, and the key whose term is largest. The estimates count the tensors that scale with
the config (activations kept for the backward pass, logits, KV caches, evaluation batches,
parameters with their gradients and Adam's moments), not the interpreter or torch itself, so
they are lower bounds: a run refused here could not have run; one let through may still be
too big, and then fails with one line (kondo_bench/faults.py).
"""

from __future__ import annotations

import os

from .errors import UserError

FLOAT = 4  # bytes of a float32


def terms(cfg) -> list[tuple[str | None, float, str]]:
    """(key to lower, bytes, what) of each big tensor group of the run `cfg` (key None: a fixed size)."""
    from .tasks import task_class

    out = list(task_class(cfg.task).memory_terms(cfg))
    params = sum(b for k, b, what in out if what == "parameters") / (4 * FLOAT)  # 4 copies: weights, grad, 2 moments
    if cfg.staleness:
        out.append(("staleness", params * FLOAT * (cfg.staleness + 1), f"{cfg.staleness + 1} copies of the parameters"))
    return out


def available(device_name: str) -> tuple[float, str] | None:
    """(bytes, where) the run can use: the GPU's memory, or the machine's available memory."""
    if device_name.startswith("cuda") or device_name == "auto":
        try:
            import torch

            if torch.cuda.is_available():
                index = int(device_name.split(":")[1]) if ":" in device_name else 0
                return float(torch.cuda.get_device_properties(index).total_memory), f"on cuda:{index}"
        except Exception:  # noqa: BLE001 - no CUDA details: no GPU check
            return None
        if device_name != "auto":
            return None
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return float(info["MemAvailable"].split()[0]) * 1024, "available in this machine's memory"
    except (OSError, KeyError, ValueError):
        try:
            return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")), "available in memory"
        except (ValueError, OSError, AttributeError):
            return None


def gb(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"


def check_memory(cfg, device_name: str | None = None) -> None:
    """UserError when the run's estimated peak exceeds the memory its device has."""
    parts = terms(cfg)
    total = sum(b for _, b, _ in parts)
    have = available(device_name or cfg.device.name)
    if have is None or total <= have[0]:
        return
    key, largest, what = max((t for t in parts if t[0]), key=lambda t: t[1])  # None: fixed, no key lowers it
    raise UserError(f"this run needs about {gb(total)} of memory, {gb(have[0])} {have[1]}: lower {key} "
                    f"({key}={_value(cfg, key)}; {what} alone needs about {gb(largest)})")


def _value(cfg, key: str):
    from omegaconf import OmegaConf

    v = OmegaConf.select(cfg, key)
    return list(v) if hasattr(v, "__len__") and not isinstance(v, str) else v
