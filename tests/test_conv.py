"""The 3×3 convolution's NCHW weight gradient (gifnet/models/conv.py) against nn.Conv2d's own."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import gifnet.models.conv as conv_mod
from gifnet.engine.steps import LossConfig, compute_step_loss, parse_steps
from gifnet.losses import FixedWeighting
from gifnet.models import GIFNet
from gifnet.models.conv import ReflectConv2d


@pytest.fixture
def layout(monkeypatch):
    def set_(value: str) -> None:
        monkeypatch.setattr(conv_mod, "WEIGHT_GRAD_LAYOUT", value)

    return set_


def _grads(conv, x):
    conv.zero_grad()
    x = x.detach().clone().requires_grad_(True)
    y = conv(x)
    g = torch.Generator().manual_seed(5)
    (y * torch.randn(y.shape, generator=g, dtype=y.dtype)).sum().backward()
    return y.detach(), x.grad, conv.weight.grad.clone(), None if conv.bias is None else conv.bias.grad.clone()


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("bias", [True, False])
def test_nchw_weight_gradient_equals_nn_conv2d(layout, dtype, tol, bias):
    torch.manual_seed(0)
    ours = ReflectConv2d(6, 5, 3, bias=bias).to(dtype)
    plain = nn.Conv2d(6, 5, 3, padding=1, padding_mode="reflect", bias=bias).to(dtype)
    plain.load_state_dict(ours.state_dict())
    x = torch.randn(2, 6, 9, 11, dtype=dtype).contiguous(memory_format=torch.channels_last)
    layout("nchw")
    y = ours(x)
    assert type(y.grad_fn).__name__ == "_ConvNCHWWeightGradBackward"  # the path under test is taken
    got = _grads(ours.to(memory_format=torch.channels_last), x)
    want = _grads(plain.to(memory_format=torch.channels_last), x)
    assert torch.equal(got[0], want[0])  # same forward
    for a, b in zip(got[1:], want[1:]):
        if b is None:
            assert a is None
            continue
        assert a.shape == b.shape
        assert ((a - b).norm() / b.norm()).item() <= tol


def test_layout_rule(layout, monkeypatch):
    conv = ReflectConv2d(3, 4, 3)
    cl = torch.randn(1, 3, 6, 7).contiguous(memory_format=torch.channels_last)
    layout("native")
    assert type(conv(cl).grad_fn).__name__ != "_ConvNCHWWeightGradBackward"
    layout("nchw")
    assert type(conv(cl).grad_fn).__name__ == "_ConvNCHWWeightGradBackward"
    assert type(conv(cl.contiguous()).grad_fn).__name__ != "_ConvNCHWWeightGradBackward"  # NCHW input: native
    with torch.no_grad():
        assert conv(cl).grad_fn is None
    layout("auto")
    monkeypatch.setattr(conv_mod, "_cpu_without_avx512", lambda: True)
    assert conv_mod.nchw_weight_grad()
    assert type(conv(cl).grad_fn).__name__ == "_ConvNCHWWeightGradBackward"
    monkeypatch.setattr(conv_mod, "_cpu_without_avx512", lambda: False)
    assert not conv_mod.nchw_weight_grad()
    assert type(conv(cl).grad_fn).__name__ != "_ConvNCHWWeightGradBackward"
    layout("nchw")
    assert conv_mod.nchw_weight_grad()
    layout("sideways")
    with pytest.raises(ValueError, match="WEIGHT_GRAD_LAYOUT"):
        conv_mod.nchw_weight_grad()


def test_model_keeps_its_state_dict_keys():
    keys = set(GIFNet().state_dict())
    assert "fusion.embed.mm.weight" in keys and "fusion.unembed.bias" in keys
    assert sum(isinstance(m, ReflectConv2d) for m in GIFNet().modules()) >= 10


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-11), (torch.float32, 1e-4)])
def test_training_step_gradients_equal_the_native_layout(layout, monkeypatch, dtype, tol):
    """One IVIF step of a whole channels-last model: every parameter's gradient with the NCHW weight gradient
    equals the native one."""
    (spec,) = parse_steps([{"task": "ivif", "inputs": ["ir", "vis"], "stream": "mm", "loss": "ivif",
                            "other": ["near", "far"]}])  # fmt: skip
    torch.manual_seed(0)
    base = GIFNet().to(dtype).to_channels_last()
    g = torch.Generator().manual_seed(1)
    batch = {k: torch.rand(2, 1, 19, 22, generator=g, dtype=dtype) for k in ("ir", "vis", "near", "far")}
    calls = []
    apply = conv_mod._ConvNCHWWeightGrad.apply
    monkeypatch.setattr(conv_mod._ConvNCHWWeightGrad, "apply", lambda *a: calls.append(1) or apply(*a))
    grads = {}
    for value in ("native", "nchw"):
        layout(value)
        m = copy.deepcopy(base)
        loss, _, _ = compute_step_loss(m, batch, spec, LossConfig(), FixedWeighting(0.7, 0.3))
        loss.backward()
        grads[value] = {n: p.grad for n, p in m.named_parameters() if p.grad is not None}
    assert len(calls) >= 8  # S-Enc, embedding, unembedding, G-Dec and R-Dec convolutions took the NCHW path
    assert grads["native"].keys() == grads["nchw"].keys()
    assert any("embed" in n for n in grads["nchw"])
    for n, want in grads["native"].items():
        got = grads["nchw"][n]
        scale = want.norm().item()
        if scale < 1e-12:
            continue
        assert ((got - want).norm() / scale).item() <= tol, n


@pytest.mark.parametrize("value", ["auto", "nchw"])
def test_torch_compile_traces_the_training_forward_as_one_graph(layout, value):
    """The layout rule is a constant to ``torch.compile`` (no graph break per convolution; it used to break at
    ``get_cpu_capability`` and recompile per convolution), the NCHW-gradient function included."""
    layout(value)
    torch.manual_seed(0)
    model = GIFNet(enc_width=6, window=4, mlp_ratio=1.0).to_channels_last()
    a, b = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)

    def forward(a, b):
        f = model.encode(a, b)
        return model.decode(f, model.cfgm(f, f.detach(), "mm")).mean() + model.reconstruct(f).mean()

    try:
        explained = torch._dynamo.explain(forward)(a, b)
    finally:
        torch._dynamo.reset()
    assert explained.graph_break_count == 0 and explained.graph_count == 1
