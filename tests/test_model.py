"""GIFNet architecture: parameter count, shapes, ablation switches, stop-gradient semantics, config errors."""

from __future__ import annotations

import pytest
import torch
from conftest import random_pair

from gifnet.inference.engine import fuse_tensors
from gifnet.models import GIFNet, GIFNetConfig
from gifnet.models.cfgm import relative_log_positions

_pair = random_pair


def test_default_parameter_count_matches_release():
    assert GIFNet().num_parameters() == 822_780


def test_component_parameter_counts():
    m = GIFNet()

    def n(mod):
        return sum(p.numel() for p in mod.parameters())

    assert n(m.encoder) == 29_472
    assert n(m.fusion) == 584_786
    assert n(m.decoder) == 128_777
    assert n(m.reconstructor) == 79_745


@pytest.mark.parametrize("hw", [(37, 53), (5, 5), (8, 8), (13, 29), (64, 40)])
def test_any_size_keeps_shape_and_range(hw):
    a, b = _pair(*hw, batch=1)
    m = GIFNet().eval()
    y = fuse_tensors(m, a, b)
    assert y.shape == a.shape
    assert torch.isfinite(y).all() and (y > 0).all() and (y < 1).all()


def test_too_small_or_bad_inputs_raise():
    m = GIFNet()
    with pytest.raises(ValueError, match="at least 5"):
        fuse_tensors(m, torch.rand(1, 1, 4, 9), torch.rand(1, 1, 4, 9))
    with pytest.raises(ValueError, match="differ"):
        fuse_tensors(m, torch.rand(1, 1, 9, 9), torch.rand(1, 1, 9, 10))
    with pytest.raises(ValueError, match="luma"):
        fuse_tensors(m, torch.rand(1, 3, 9, 9), torch.rand(1, 3, 9, 9))


def test_relative_positions_formula():
    pos = relative_log_positions(8)
    assert pos.shape == (64, 64, 2)
    # token 0 = (0,0), token 9 = (1,1): d = (0-1, 0-1) → -ln 2
    assert torch.allclose(pos[0, 9], torch.tensor([-0.6931472, -0.6931472]))
    assert torch.equal(pos[9, 0], -pos[0, 9])
    assert torch.all(pos[torch.arange(64), torch.arange(64)] == 0)


def test_inference_paths_differ_and_streams_are_used():
    a, b = _pair(24, 24, batch=1)
    m = GIFNet().eval()
    y_dp, y_mm = fuse_tensors(m, a, b, step="dp"), fuse_tensors(m, a, b, step="mm")
    assert not torch.allclose(y_dp, y_mm)
    assert torch.equal(fuse_tensors(m, a, b), y_dp)  # default inference reads the dp stream
    m_mm = GIFNet(inference_stream="mm").eval()
    m_mm.load_state_dict(m.state_dict())
    assert torch.equal(fuse_tensors(m_mm, a, b), y_mm)


def test_model_is_not_symmetric_in_inputs():
    a, b = _pair(20, 20, batch=1)
    m = GIFNet().eval()
    assert not torch.allclose(fuse_tensors(m, a, b), fuse_tensors(m, b, a))


ABLATIONS = [
    {},
    {"gating": "off"},
    {"gating": "fixed", "gate_value": 0.3},
    {"cross_attention": False},
    {"reconstruction": False},
    {"dual_stream": False},
    {"dual_stream": False, "inference_stream": "mm"},
    {"inference_stream": "mm"},
    {"depth": 3},
    {"depth": 1},
    {"enc_width": 16, "heads": 1},
    {"heads": 7, "window": 4},
    {"mlp_ratio": 1.0},
    {"stop_gradient": False},
    {"official_dwconv_quirk": False},
]


@pytest.mark.parametrize("overrides", ABLATIONS, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()) or "default")
def test_every_switch_runs_forward_and_backward(overrides):
    torch.manual_seed(0)
    m = GIFNet(**overrides)
    a, b = _pair()
    for step in ("mm", "dp"):
        f = m.encode(a, b)
        with torch.no_grad():
            f_other = m.encode(b, a)
        g = m.cfgm(f, f_other, step) if step == "mm" else m.cfgm(f_other, f, step)
        y = m.decode(f, g)
        loss = y.square().mean()
        if m.reconstructor is not None:
            loss = loss + m.reconstruct(f).abs().mean()
        m.zero_grad(set_to_none=True)
        loss.backward()
        assert y.shape == a.shape
        grads = [p.grad for p in m.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(gr).all() for gr in grads)
        assert m.encoder.convs[0].weight.grad.abs().sum() > 0
    if overrides.get("reconstruction") is False:
        with pytest.raises(RuntimeError, match="reconstruction=False"):
            m.reconstruct(f)


def test_gating_off_makes_output_independent_of_other_stream():
    m = GIFNet(gating="off").eval()
    a, b = _pair(16, 24, batch=1)
    with torch.no_grad():
        f = m.encode(a, b)
        g1 = m.cfgm(f, f, "dp")
        g2 = m.cfgm(torch.zeros_like(f), f, "dp")
    assert torch.equal(g1, g2)


def test_gating_learned_depends_on_other_stream():
    m = GIFNet().eval()
    a, b = _pair(16, 24, batch=1)
    with torch.no_grad():
        f = m.encode(a, b)
        assert not torch.allclose(m.cfgm(f, f, "dp"), m.cfgm(f * 0.5, f, "dp"))


def test_fixed_gate_is_not_trainable():
    m = GIFNet(gating="fixed", gate_value=0.25)
    names = [n for n, _ in m.named_parameters()]
    assert not any("alpha" in n for n in names)
    assert torch.allclose(m.fusion.alpha_fixed, torch.full((2,), 0.25))


def test_single_stream_has_fewer_parameters_and_ignores_other_features():
    m = GIFNet(dual_stream=False).eval()
    assert m.num_parameters() < GIFNet().num_parameters()
    assert not any(".dp." in n or n.endswith(".dp") for n, _ in m.named_parameters())
    a, b = _pair(16, 16, batch=1)
    with torch.no_grad():
        f = m.encode(a, b)
        assert torch.equal(m.cfgm(f, torch.zeros_like(f), "mm"), m.cfgm(f, f, "mm"))


def _grad_names(model, step):
    a, b = _pair(16, 16, batch=1)
    f = model.encode(a, b)
    with torch.no_grad():
        f_other = model.encode(b, a)
    g = model.cfgm(f, f_other, "mm") if step == "mm" else model.cfgm(f_other, f, "dp")
    model.zero_grad(set_to_none=True)
    model.decode(f, g).mean().backward()
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


@pytest.mark.parametrize("step", ["mm", "dp"])
def test_stop_gradient_semantics_match_release(step):
    """GIFNET.md 3.7: the other stream's attention path gets no gradient; its embed, RLN meta, MLP do."""
    torch.manual_seed(1)
    m = GIFNet()
    names = _grad_names(m, step)
    other = "dp" if step == "mm" else "mm"
    b0 = f"fusion.blocks.0.streams.{other}."
    for part in ("qk.weight", "v.weight", "proj.weight", "dwconv.weight", "norm.weight", "norm.bias"):
        assert b0 + part not in names, part
    for part in ("norm.meta1.weight", "norm.meta2.weight", "mlp.0.weight", "mlp.2.weight"):
        assert b0 + part in names, part
    assert f"fusion.embed.{other}.weight" in names
    assert f"fusion.alpha.{step}" in names
    assert f"fusion.alpha.{other}" not in names
    # block 1 of the other stream is never computed for the returned output
    assert not any(n.startswith(f"fusion.blocks.1.streams.{other}.") for n in names)
    # without the stop-gradient, the other stream's attention path trains too
    torch.manual_seed(1)
    names_free = _grad_names(GIFNet(stop_gradient=False), step)
    assert b0 + "qk.weight" in names_free


def test_config_validation_errors():
    with pytest.raises(ValueError, match="gating"):
        GIFNet(gating="sigmoid")
    with pytest.raises(ValueError, match="not divisible by heads"):
        GIFNet(heads=4)
    with pytest.raises(ValueError, match="unknown keys"):
        GIFNet(windw=8)
    with pytest.raises(ValueError, match="inference_stream"):
        GIFNet(inference_stream="ivif")
    with pytest.raises(ValueError, match="window must be even"):
        GIFNet(window=7)
    with pytest.raises(ValueError, match="depth"):
        GIFNet(depth=0)
    with pytest.raises(ValueError, match="step"):
        fuse_tensors(GIFNet(), *_pair(8, 8, batch=1), step="ivif")


def test_config_roundtrip():
    cfg = GIFNetConfig(gating="fixed", gate_value=0.2, depth=3)
    assert GIFNetConfig.from_dict(cfg.to_dict()) == cfg
    assert GIFNet.from_config(cfg).config == cfg


def test_initialisation_follows_release_rules():
    torch.manual_seed(0)
    m = GIFNet()
    p = m.fusion.blocks[0].streams["mm"]
    assert torch.all(p.norm.meta1.bias == 1) and torch.all(p.norm.meta2.bias == 0)
    assert torch.all(p.v.bias == 0) and torch.all(p.qk.bias == 0)
    assert abs(p.qk.weight.std().item() - 0.0825) < 0.006
    assert abs(p.v.weight.std().item() - 0.0505) < 0.004
    assert abs(p.mlp[0].weight.std().item() - 0.0412) < 0.003
    alpha = m.fusion.alpha["mm"]
    assert alpha.shape == (2,) and torch.all((alpha >= 0) & (alpha < 1))


def test_chunked_inference_attention_equals_unchunked():
    torch.manual_seed(0)
    m = GIFNet().eval()
    a, b = _pair(45, 70, batch=2)
    block_cls = type(m.fusion.blocks[0])
    with torch.inference_mode():
        whole = m.decode(m.encode(a, b), m.cfgm(m.encode(a, b), m.encode(a, b), "dp"))
        old = block_cls.inference_chunk_windows
        try:
            block_cls.inference_chunk_windows = 1  # one strip of window rows at a time
            f = m.encode(a, b)
            chunked = m.decode(f, m.cfgm(f, f, "dp"))
        finally:
            block_cls.inference_chunk_windows = old
    assert torch.allclose(whole, chunked, atol=1e-6)


def test_channels_last_gives_same_output():
    torch.manual_seed(0)
    m = GIFNet().eval()
    a, b = _pair(30, 41, batch=1)
    with torch.no_grad():
        ref = m(a, b)
    m.to_channels_last()
    assert m.is_channels_last()
    with torch.no_grad():
        assert torch.allclose(m(a, b), ref, atol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
def test_encoder_features_take_the_model_layout(channels_last):
    """1-channel inputs are NCHW and channels-last at once; the features must follow the weights' layout, or
    the encoder and the CFGM embedding run in NCHW against channels-last weights (slow)."""
    m = GIFNet()
    if channels_last:
        m.to_channels_last()
    a, b = _pair(12, 14, batch=2)
    f = m.encode(a, b)
    assert f.shape == (2, 98, 12, 14)
    assert f.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert f.is_contiguous() != channels_last


def test_rln_meta_terms_equal_the_released_convolutions():
    """RLN computes meta1/meta2 as addcmul (fast); values and gradients are those of the 1x1 convolutions."""
    from gifnet.models.cfgm import RLN

    torch.manual_seed(3)
    rln = RLN(6)
    torch.nn.init.normal_(rln.meta1.weight)
    torch.nn.init.normal_(rln.meta2.bias)
    x = torch.randn(3, 6, 5, 7, requires_grad=True)
    _, gamma, beta = rln(x)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = torch.sqrt((x - mean).pow(2).mean(dim=(1, 2, 3), keepdim=True) + rln.eps)
    g_ref, b_ref = rln.meta1(std), rln.meta2(mean)
    torch.testing.assert_close(gamma, g_ref, rtol=2e-7, atol=0)  # one rounding at most
    torch.testing.assert_close(beta, b_ref, rtol=2e-7, atol=1e-7)
    up = torch.randn_like(gamma)
    wrt = [x, rln.meta1.weight, rln.meta1.bias, rln.meta2.weight, rln.meta2.bias]
    grads = torch.autograd.grad((gamma * up + beta * up.flip(0)).sum(), wrt)
    grads_ref = torch.autograd.grad((g_ref * up + b_ref * up.flip(0)).sum(), wrt)
    for got, ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, gamma16, _ = rln(x)
        assert gamma16.dtype == rln.meta1(std).dtype == torch.bfloat16


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rln_sample_mean_gradient_is_autograds_and_keeps_the_layout(dtype):
    """RLN's per-sample mean: autograd's values and gradients, the gradient a broadcast view (no dense map)."""
    from gifnet.models.cfgm import RLN, sample_mean

    torch.manual_seed(4)
    x = torch.randn(2, 6, 9, 11, dtype=dtype).contiguous(memory_format=torch.channels_last).requires_grad_()
    up = torch.randn(2, 6, 9, 11, dtype=dtype).contiguous(memory_format=torch.channels_last)
    got = sample_mean(x)
    ref = x.mean(dim=(1, 2, 3), keepdim=True)
    assert torch.equal(got, ref)
    (g_got,) = torch.autograd.grad((got * 3.0).sum(), x)
    (g_ref,) = torch.autograd.grad((ref * 3.0).sum(), x)
    assert torch.equal(g_got, g_ref)
    assert g_got.stride()[1:] == (0, 0, 0)  # a broadcast view: no dense map in either layout
    # the whole RLN: values and input gradient as the plain formula (to round-off of the reduction order)
    rln = RLN(6).to(dtype)
    torch.nn.init.normal_(rln.weight)
    normed, gamma, beta = rln(x)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = torch.sqrt((x - mean).pow(2).mean(dim=(1, 2, 3), keepdim=True) + rln.eps)
    normed_ref = (x - mean) / std * rln.weight + rln.bias
    torch.testing.assert_close(normed, normed_ref, rtol=0, atol=0)
    loss = lambda n, g, b: (n * up).sum() + (g * b).sum()  # noqa: E731
    (gx,) = torch.autograd.grad(loss(normed, gamma, beta), x)
    (gx_ref,) = torch.autograd.grad(loss(normed_ref, rln.meta1(std), rln.meta2(mean)), x)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(gx, gx_ref, rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="B×C×H×W"):
        sample_mean(torch.zeros(3, 4))


@pytest.mark.parametrize("channels_last", [False, True])
def test_window_heads_layout_and_inverse(channels_last):
    """Windows row-major, tokens row-major in a window, head h = channels h*d...; the inverse restores NHWC."""
    from gifnet.models.cfgm import _window_heads, _window_unheads

    torch.manual_seed(0)
    b, c, h, w, ws, heads = 2, 6, 8, 12, 4, 2
    x = torch.randn(b, c, h, w)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    t = _window_heads(x, ws, heads)
    assert t.shape == (b * (h // ws) * (w // ws), heads, ws * ws, c // heads)
    n = 0
    for bi in range(b):
        for i in range(h // ws):
            for j in range(w // ws):
                win = x[bi, :, i * ws : (i + 1) * ws, j * ws : (j + 1) * ws].reshape(c, -1)  # C x tokens
                for hd in range(heads):
                    assert torch.equal(t[n, hd], win[hd * (c // heads) : (hd + 1) * (c // heads)].T)
                n += 1
    nhwc = x.permute(0, 2, 3, 1)
    assert torch.equal(_window_unheads(t.contiguous(), ws, b, h, w), nhwc)
    tokens_major = t.transpose(1, 2).contiguous().transpose(1, 2)  # the memory layout some kernels return
    assert torch.equal(_window_unheads(tokens_major, ws, b, h, w), nhwc)
