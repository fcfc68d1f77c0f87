"""Inference of a GIFNet on luma tensors: the engine is chosen here, on the inference side (the model module knows
nothing of it).

:func:`fuse_tensors` returns what ``GIFNet.forward`` returns (fp32: within float round-off), without autograd state:
``engine="banded"`` (default) runs :func:`~gifnet.inference.banded.banded_fuse` (band by band, bounded memory,
cache-sized kernels); ``engine="full"`` runs the whole image through the model's stage modules at once
(channels-last; bf16 through autocast), as training does.
"""

from __future__ import annotations

import torch

from gifnet.devices import check_precision
from gifnet.inference.banded import banded_fuse
from gifnet.models.gifnet import GIFNet, check_unit_range

ENGINES = ("banded", "full")


@torch.inference_mode()
def fuse_tensors(
    model: GIFNet, a: torch.Tensor, b: torch.Tensor, step: str | None = None, precision: str = "fp32",
    engine: str = "banded",
) -> torch.Tensor:  # fmt: skip
    """Fused luma ``B×1×H×W`` in (0, 1) of the luma pair ``a``, ``b`` (``B×1×H×W`` in [0, 1], H, W ≥ 5).

    ``step``: the CFGM stream (default the model's ``inference_stream``); ``precision``: ``fp32`` or ``bf16``;
    ``engine``: ``banded`` or ``full`` (see the module docstring).
    """
    check_precision(precision)
    model._check_inputs(a, b)
    for name, x in (("a", a), ("b", b)):
        check_unit_range(x, name)
    if engine == "banded":
        band = 1 << 15 if a.device.type == "cpu" else 1 << 22
        return banded_fuse(model, a, b, step, precision=precision, band_pixels=band)
    if engine != "full":
        raise ValueError(f"engine must be {' or '.join(map(repr, ENGINES))}, got {engine!r}")
    if not model.is_channels_last():
        model.to_channels_last()
    with torch.autocast(a.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        return model(a, b, step).float().contiguous()
