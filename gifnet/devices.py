"""The one validation of the ``device`` and ``precision`` settings (training, fusion, evaluation, the model API).

A leaf module (torch only): the model, the inference side and the trainer all check these settings through it, so
every command gives the same message for the same mistake.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

INFERENCE_PRECISIONS = ("fp32", "bf16")
TRAINING_PRECISIONS = ("fp32", "bf16", "fp16")  # fp16: CUDA autocast only


def check_precision(precision: str, allowed: tuple[str, ...] = INFERENCE_PRECISIONS) -> str:
    """``precision`` if it is one of ``allowed``, else ``ValueError`` listing them."""
    if precision not in allowed:
        raise ValueError(f"precision must be {', '.join(allowed[:-1])} or {allowed[-1]}, got {precision!r}")
    return precision


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` → CUDA when available, else CPU; an explicit ``cuda[:N]`` without CUDA is a ``ValueError``."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} requested but CUDA is not available")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}") from e


def cpu_has_bf16_kernels() -> bool:
    """Whether oneDNN has bfloat16 kernels for this CPU (AVX-512 or Arm BF16; torch's own check).

    Without them (an AVX2-only x86 CPU) bfloat16 convolutions and products are emulated: a 640×480 fusion ran
    7.3–7.7× slower in bf16 than in fp32 on a 2-core AVX2 EPYC (2026-12-07, two runs, ``docs/performance.md``).
    Unknown (the private check missing in another torch) counts as present, so that nothing warns by mistake.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


_warned_slow_bf16 = False


def warn_if_slow_precision(precision: str, device: torch.device) -> bool:
    """Warn (once per process) when ``bf16`` is asked of a CPU without bfloat16 kernels.

    The setting is kept (the results are valid, only slow); returns whether this call warned.
    """
    global _warned_slow_bf16
    if _warned_slow_bf16 or precision != "bf16" or torch.device(device).type != "cpu" or cpu_has_bf16_kernels():
        return False
    _warned_slow_bf16 = True
    log.warning(
        "precision=bf16 on a CPU without bfloat16 kernels (torch dispatches at %s): bfloat16 is emulated here and "
        "runs several times slower than fp32 (7-8x for a 640x480 fusion on an AVX2 CPU, docs/performance.md); "
        "precision=fp32 is faster on this machine",
        torch.backends.cpu.get_cpu_capability(),
    )
    return True
