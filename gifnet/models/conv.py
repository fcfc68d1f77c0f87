"""The model's 3×3 reflect-padded convolution, with the weight gradient taken in the layout that is fast here.

:class:`ReflectConv2d` is an ``nn.Conv2d`` (same parameters, same state-dict keys, same forward) whose
backward, for a float32 (or float64) channels-last input on a CPU whose kernels torch dispatches at AVX2 (no
AVX-512), computes the weight and bias gradients from NCHW copies of the input and of the output gradient; the
input gradient stays channels-last. On such CPUs the backward of the wide convolutions (98→98, 128→64 at
8×128²) is 1.1–1.4× faster so; on AVX-512 CPUs both layouts are about as fast, so there nothing changes. In
isolation the narrow convolutions (2→32, 34→32) lose to the NCHW copies, yet a whole training step alternating
the layouts in one process was fastest with every convolution in NCHW (1.09× over native, 1.02× over
wide-only; 1.33× over native once the encoder ran channels-last; docs/performance.md), so the rule does not
look at the width. The gradients are those of ``nn.Conv2d`` up to float round-off (the order of summation
differs; ``tests/test_conv.py``). Written by hand because no library chooses the layout per gradient.

``WEIGHT_GRAD_LAYOUT`` selects it: ``"auto"`` (the rule above), ``"nchw"`` (every convolution whose input
qualifies, whatever the CPU), ``"native"`` (never).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

WEIGHT_GRAD_LAYOUT = "auto"
_LAYOUTS = ("auto", "nchw", "native")


# Read once: a plain constant is traced by torch.compile without a graph break (``get_cpu_capability`` is not,
# and ``torch.compiler.assume_constant_result`` would import torch._dynamo, ~3 s of start-up, into every command).
_AVX2_ONLY = torch.backends.cpu.get_cpu_capability() == "AVX2"


def _cpu_without_avx512() -> bool:
    return _AVX2_ONLY


def strictly_channels_last(t: torch.Tensor) -> bool:
    """Channels-last and not also NCHW-contiguous (a 1-channel or 1×1 tensor is both at once)."""
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def nchw_weight_grad() -> bool:
    """Whether qualifying convolutions take their weight gradient in NCHW (``WEIGHT_GRAD_LAYOUT``)."""
    if WEIGHT_GRAD_LAYOUT not in _LAYOUTS:
        raise ValueError(f"WEIGHT_GRAD_LAYOUT must be one of {', '.join(_LAYOUTS)}, got {WEIGHT_GRAD_LAYOUT!r}")
    if WEIGHT_GRAD_LAYOUT == "auto":
        return _cpu_without_avx512()
    return WEIGHT_GRAD_LAYOUT == "nchw"


class _ConvNCHWWeightGrad(torch.autograd.Function):
    """``conv2d(x, weight, bias)`` (stride 1, no padding, one group) with the weight gradient taken in NCHW."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        args = ([weight.shape[0]] if ctx.has_bias else None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.convolution_backward(grad, x, weight, *args, [True, False, False])[0]
        need_b = ctx.has_bias and ctx.needs_input_grad[2]
        if ctx.needs_input_grad[1] or need_b:
            _, gw, gb = torch.ops.aten.convolution_backward(
                grad.contiguous(), x.contiguous(), weight.contiguous(), *args, [False, True, need_b]
            )
            if not ctx.needs_input_grad[1]:
                gw = None
        return gx, gw, gb


class ReflectConv2d(nn.Conv2d):
    """``nn.Conv2d(cin, cout, k, padding=k // 2, padding_mode="reflect")`` with the layout-chosen weight gradient."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, bias: bool = True):
        super().__init__(cin, cout, kernel_size, padding=kernel_size // 2, padding_mode="reflect", bias=bias)

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        p = self.padding[0]
        x = F.pad(x, (p, p, p, p), mode="reflect")
        if (
            torch.is_grad_enabled()
            and weight.requires_grad
            and x.device.type == "cpu"
            and x.dtype == weight.dtype
            and x.dtype in (torch.float32, torch.float64)
            and not torch.is_autocast_enabled("cpu")
            and x.dim() == 4
            and strictly_channels_last(x)
            and nchw_weight_grad()
        ):
            return _ConvNCHWWeightGrad.apply(x, weight, bias)
        return F.conv2d(x, weight, bias)


__all__ = ["ReflectConv2d", "WEIGHT_GRAD_LAYOUT", "nchw_weight_grad", "strictly_channels_last"]
