"""What a run is set up on before its task is built: the device (`device.name`, and whether
this CPU can run the bf16 screen), deterministic kernels, and the seeds of every generator.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from .errors import UserError


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
    a DG-K step with the bf16 screen is 1.7-3.6x slower than with the fp32 one it is meant to undercut
    (docs/performance.md, scripts/bench_bf16.py)."""
    if cfg.screen_precision == "bf16" and device.type == "cpu" and not cfg.device.force_bf16 and not cpu_has_bf16():
        raise UserError("screen_precision=bf16 on a CPU without bf16 instructions (AVX512-BF16 or AMX) makes a gated "
                        "step 1.7-3.6x slower than fp32 screening; drop it, or pass device.force_bf16=true to run it anyway")


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
