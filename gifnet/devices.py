"""The one validation of the ``device`` and ``precision`` settings (training, fusion, evaluation, the model API).

A leaf module (torch only): the model, the inference side and the trainer all check these settings through it, so
every command gives the same message for the same mistake.
"""

from __future__ import annotations

import torch

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
