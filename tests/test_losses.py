"""Tests of gifnet.losses: official MS-SSIM* parity/semantics, standard MS-SSIM, loss terms, IVIF weights."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gifnet import losses as L

PARITY_CASES = ["ivif", "mfif", "meif", "medical", "nirvis", "remote_band1"]
W = L.MSSSIM_WEIGHTS


def _textured(seed: int, shape=(2, 1, 32, 32)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g)


def _smooth(shape=(2, 1, 32, 32)) -> torch.Tensor:
    h, w = shape[-2:]
    ramp = torch.linspace(0.2, 0.8, w).view(1, 1, 1, w).expand(shape[0], shape[1], h, w)
    return ramp.contiguous()


# ---------------------------------------------------------------------------------------------------------
# Official MS-SSIM*
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.parametrize("case", PARITY_CASES)
def test_msssim_official_parity(shared, case):
    parity = shared / "official" / "parity"
    expected = json.loads((parity / "cases.json").read_text())[case]["official_msssim_rec_vs_b"]
    data = np.load(parity / f"{case}.npz")
    rec = torch.from_numpy(np.ascontiguousarray(data["rec"], dtype=np.float32))[None, None]
    b = torch.from_numpy(data["b"].astype(np.float32) / np.float32(255.0))[None, None]
    value = L.msssim_official(rec, b).item()
    assert abs(value - expected) <= 1e-5, (case, value, expected)
    # and the loss built on it is consistent
    loss = L.reconstruction_loss(rec, b).item()
    assert loss == pytest.approx(1 - value + F.mse_loss(rec, b).item(), abs=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_maps_one_grouped_filter_equals_separate_filters(channels):
    """The five moments filtered in one grouped call: the separate calls' maps and gradients."""
    torch.manual_seed(5)
    x = torch.rand(2, channels, 23, 19, dtype=torch.float64, requires_grad=True)
    y = torch.rand(2, channels, 23, 19, dtype=torch.float64)
    window = L.gaussian_window(11, dtype=torch.float64)
    c1, c2 = 1e-4, 9e-4

    def separate(x, y):
        f = lambda t: F.conv2d(t, window.expand(channels, 1, 11, 11), groups=channels)  # noqa: E731
        mu1, mu2 = f(x), f(y)
        s1, s2, s12 = f(x * x) - mu1**2, f(y * y) - mu2**2, f(x * y) - mu1 * mu2
        v1, v2 = 2 * s12 + c2, s1 + s2 + c2
        return ((2 * mu1 * mu2 + c1) * v1) / ((mu1**2 + mu2**2 + c1) * v2), v1 / v2

    got, ref = L._ssim_maps(x, y, window, c1, c2), separate(x, y)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)
    (g,) = torch.autograd.grad(got[0].sum() + got[1].square().sum(), x)
    (g_ref,) = torch.autograd.grad(ref[0].sum() + ref[1].square().sum(), x)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-14)


def test_msssim_official_identity():
    x = _textured(0, (2, 1, 40, 36))
    assert L.msssim_official(x, x).item() == pytest.approx(1.0, abs=1e-6)
    x3 = _textured(1, (1, 3, 20, 20))
    assert L.msssim_official(x3, x3).item() == pytest.approx(1.0, abs=1e-6)


def test_msssim_official_flat_closed_form():
    """Flat images: cs = 1 at every level and ssim = luminance term l, so the official value is
    ((l+1)/2)^(4 w5) while standard MS-SSIM gives l^w5 -- checks the 4·w5 exponent and the (v+1)/2 mapping."""
    a, b = 0.2, 0.6
    x = torch.full((1, 1, 176, 176), a)
    y = torch.full((1, 1, 176, 176), b)
    c1 = (0.01 * 1.0) ** 2
    lum = (2 * a * b + c1) / (a * a + b * b + c1)
    official = L.msssim_official(x, y).item()
    standard = L.msssim_standard(x, y).item()
    # tolerance: float32 cancellation in E[x^2] - mu^2 is ~1e-8, i.e. ~1e-5 relative to C2 = 9e-4
    assert official == pytest.approx(((lum + 1) / 2) ** (4 * W[4]), abs=2e-4)
    assert standard == pytest.approx(lum ** W[4], abs=2e-4)
    # the alternatives (mapping without the 4x exponent, exponent without mapping) are far away
    assert abs(official - ((lum + 1) / 2) ** W[4]) > 0.05
    assert abs(official - lum ** (4 * W[4])) > 0.05
    # the two differ clearly on this example
    assert abs(official - standard) > 0.01
    # without the mapping, the official combination is l^(4 w5)
    assert L.msssim_official(x, y, normalize=False).item() == pytest.approx(lum ** (4 * W[4]), abs=2e-4)


def test_msssim_official_composition_from_terms():
    x = _textured(2, (2, 1, 48, 52))
    y = (x + 0.1 * _textured(3, (2, 1, 48, 52))).clamp(0, 1)
    ssims, css, ranges = L.msssim_official_terms(x, y)
    assert ranges == [1.0] * 5
    s = (ssims + 1) / 2
    c = (css + 1) / 2
    expected = math.prod(c[j].item() ** W[j] for j in range(4)) * s[4].item() ** (4 * W[4])
    wang = math.prod(c[j].item() ** W[j] for j in range(4)) * s[4].item() ** W[4]
    value = L.msssim_official(x, y).item()
    assert value == pytest.approx(expected, rel=1e-6)
    assert abs(value - wang) > 1e-4


def test_msssim_official_batch_pooling():
    """Statistics are pooled over the whole batch (one value per batch), not averaged per sample."""
    x = _textured(4, (2, 1, 32, 32))
    y = x.clone()
    y[1] = _textured(5, (1, 1, 32, 32))[0]
    ssims, css, _ = L.msssim_official_terms(x, y)
    s0, c0, _ = L.msssim_official_terms(x[:1], y[:1])
    s1, c1, _ = L.msssim_official_terms(x[1:], y[1:])
    # equal-size samples: the pooled mean is the mean of the per-sample means, term by term
    assert torch.allclose(ssims, (s0 + s1) / 2, atol=1e-6)
    assert torch.allclose(css, (c0 + c1) / 2, atol=1e-6)


def test_msssim_official_data_range_inference():
    assert L.infer_data_range(torch.tensor([0.0, 1.0])) == 1.0
    assert L.infer_data_range(torch.tensor([-0.4, 1.0])) == 1.0
    assert L.infer_data_range(torch.tensor([-0.6, 1.0])) == 2.0
    assert L.infer_data_range(torch.tensor([0.0, 200.0])) == 255.0
    assert L.infer_data_range(torch.tensor([-0.6, 200.0])) == 256.0

    y = _textured(6, (1, 1, 64, 64))
    x = y.clone()
    x[0, 0, 10, 10] = -0.9  # prediction dips below -0.5 -> L = 2 at level 1 only
    _, _, ranges = L.msssim_official_terms(x, y)
    assert ranges[0] == 2.0
    assert ranges[1:] == [1.0] * 4  # after 2x2 pooling the minimum is above -0.5: L inferred per level
    # L is inferred from the first argument (the prediction) only
    _, _, ranges_swapped = L.msssim_official_terms(y, x)
    assert ranges_swapped == [1.0] * 5

    x_all = 0.3 * y - 0.9  # every pixel, hence every level, below -0.5
    inferred = L.msssim_official(x_all, y).item()
    assert inferred == pytest.approx(L.msssim_official(x_all, y, data_range=2.0).item(), abs=1e-7)
    assert abs(inferred - L.msssim_official(x_all, y, data_range=1.0).item()) > 1e-4


def test_msssim_official_shrinking_window():
    # 20x20: level sizes 20, 10, 5, 2, 1 -> windows 11, 10 (even, off-centre), 5, 2, 1
    x = _textured(7, (1, 1, 20, 20))
    y = _textured(8, (1, 1, 20, 20))
    v = L.msssim_official(x, y)
    assert torch.isfinite(v)
    w = L.gaussian_window(10)
    assert w.shape == (1, 1, 10, 10)
    assert w.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.argmax(w[0, 0, 5]).item() == 5  # centre at size // 2
    assert not torch.allclose(w, w.flip(-1))  # off-centre for even size


def test_msssim_official_gradients():
    y = _textured(9, (2, 1, 33, 31))
    noise = torch.randn(2, 1, 33, 31, generator=torch.Generator().manual_seed(0))
    x = (y + 0.05 * noise).requires_grad_(True)
    loss = L.reconstruction_loss(x, y, msssim="official")
    loss.backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------------------
# Standard MS-SSIM
# ---------------------------------------------------------------------------------------------------------


def test_msssim_standard_identity_and_range():
    x = _textured(10, (2, 1, 96, 96))
    assert L.msssim_standard(x, x, window_size=5).item() == pytest.approx(1.0, abs=1e-6)
    y = _textured(11, (2, 1, 96, 96))
    v = L.msssim_standard(x, y, window_size=5).item()
    assert 0.0 <= v < 0.5


def test_msssim_standard_per_sample_mean():
    x = _textured(12, (2, 1, 96, 96))
    y = x.clone()
    y[1] = _textured(13, (1, 1, 96, 96))[0]
    both = L.msssim_standard(x, y, window_size=5).item()
    first = L.msssim_standard(x[:1], y[:1], window_size=5).item()
    second = L.msssim_standard(x[1:], y[1:], window_size=5).item()
    assert both == pytest.approx((first + second) / 2, abs=1e-6)


def test_msssim_standard_too_small_raises():
    x = _textured(14, (1, 1, 128, 128))
    with pytest.raises(ValueError, match="too small"):
        L.msssim_standard(x, x)
    assert L.msssim_standard(x, x, window_size=7).item() == pytest.approx(1.0, abs=1e-6)


def test_msssim_standard_gradients_finite_for_anticorrelated():
    y = _textured(15, (1, 1, 80, 80))
    x = (1 - y).requires_grad_(True)  # negative cs terms: clamped, must not give NaN
    loss = L.reconstruction_loss(x, y, msssim="standard", window_size=5)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all()


# ---------------------------------------------------------------------------------------------------------
# Loss terms
# ---------------------------------------------------------------------------------------------------------


def test_losses_zero_when_equal():
    t = _textured(16, (2, 1, 32, 32))
    assert L.reconstruction_loss(t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert L.ivif_loss(t, t, t, 0.3, 0.7).item() == pytest.approx(0.0, abs=1e-12)
    assert L.dp_loss(t, t).item() == 0.0
    assert L.dp_loss(t, t, ssim_weight=1.0).item() == pytest.approx(0.0, abs=1e-6)
    big = _textured(17, (1, 1, 176, 176))
    assert L.reconstruction_loss(big, big, msssim="standard").item() == pytest.approx(0.0, abs=1e-6)


def test_reconstruction_loss_bad_mode():
    t = _textured(18, (1, 1, 16, 16))
    with pytest.raises(ValueError):
        L.reconstruction_loss(t, t, msssim="nope")  # type: ignore[arg-type]


def test_ivif_loss_value_and_gradient():
    out = _textured(19).requires_grad_(True)
    ir, vis = _textured(20), _textured(21)
    w_ir, w_vis = torch.tensor(0.25), torch.tensor(0.75)
    loss = L.ivif_loss(out, ir, vis, w_ir, w_vis)
    expected = 0.25 * ((out - ir) ** 2).mean() + 0.75 * ((out - vis) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert torch.isfinite(out.grad).all()
    # the minimiser is the weighted average of ir and vis
    assert L.ivif_loss(0.25 * ir + 0.75 * vis, ir, vis, 0.25, 0.75) < L.ivif_loss(vis, ir, vis, 0.25, 0.75)


def test_dp_loss_ssim_term():
    gt = _textured(22)
    out = (gt + 0.1 * _textured(23)).clamp(0, 1).requires_grad_(True)
    mse_only = L.dp_loss(out, gt)
    with_ssim = L.dp_loss(out, gt, ssim_weight=0.5)
    assert mse_only.item() == pytest.approx(F.mse_loss(out, gt).item())
    assert with_ssim.item() == pytest.approx(mse_only.item() + 0.5 * (1 - L.ssim(out, gt).item()), rel=1e-6)
    assert with_ssim.item() > mse_only.item()
    with_ssim.backward()
    assert torch.isfinite(out.grad).all()


# ---------------------------------------------------------------------------------------------------------
# IVIF weights
# ---------------------------------------------------------------------------------------------------------


def test_feature_gradient_energy_literal_equals_fast():
    g = torch.Generator().manual_seed(1)
    for shape in [(2, 8, 6, 7), (1, 5, 1, 1), (3, 4, 2, 9)]:
        phi = torch.randn(shape, generator=g, dtype=torch.float64)
        fast = L.feature_gradient_energy(phi)
        literal = L.feature_gradient_energy_literal(phi)
        assert torch.allclose(fast, literal, rtol=1e-10, atol=1e-12), shape
    phi = torch.randn(2, 8, 6, 7, generator=g)
    assert L.feature_gradient_energy(phi).item() > 0
    # a constant feature map has no "gradient"
    assert L.feature_gradient_energy(torch.ones(1, 3, 5, 5)).item() == pytest.approx(0.0, abs=1e-12)


@pytest.fixture(scope="module")
def densenet_file(tmp_path_factory):
    from torchvision.models import densenet121

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("densenet") / "densenet121_random.pth"
    torch.save(densenet121(weights=None).state_dict(), path)
    return path


def test_densenet_weighting(densenet_file):
    weighting = L.build_ivif_weighting("densenet", weights_path=densenet_file)
    assert isinstance(weighting, L.DenseNetWeighting)
    weighting.train()
    assert not weighting.training and all(not m.training for m in weighting.modules())
    assert all(not p.requires_grad for p in weighting.parameters())

    textured, smooth = _textured(30), _smooth()
    w_ir, w_vis = weighting(smooth, textured)
    assert w_ir.dim() == 0 and w_vis.dim() == 0
    assert (w_ir + w_vis).item() == pytest.approx(1.0, abs=1e-6)
    assert w_vis.item() > w_ir.item()  # the textured image gets the larger weight
    w_ir2, w_vis2 = weighting(textured, smooth)
    assert w_ir2.item() == pytest.approx(w_vis.item(), abs=1e-6)

    # softmax equals the official raw exp ratio where finite
    g_ir, g_vis = weighting.energy(smooth).double(), weighting.energy(textured).double()
    official = torch.exp(g_ir) / (torch.exp(g_ir) + torch.exp(g_vis))
    assert torch.isfinite(official)  # these inputs keep the official raw exp finite, so the comparison always runs
    assert w_ir.item() == pytest.approx(official.item(), abs=1e-6)

    # no gradient flows into the inputs
    x = textured.clone().requires_grad_(True)
    w, _ = weighting(x, smooth)
    assert not w.requires_grad


def test_densenet_literal_equals_fast(densenet_file):
    fast = L.DenseNetWeighting(densenet_file)
    literal = L.DenseNetWeighting(densenet_file, literal=True)
    x = _textured(31, (1, 1, 32, 32))
    assert fast.energy(x).item() == pytest.approx(literal.energy(x).item(), rel=1e-4)
    # 3-channel input is used as is; gray is replicated to 3 channels
    assert fast.energy(x.repeat(1, 3, 1, 1)).item() == pytest.approx(fast.energy(x).item(), rel=1e-6)


def test_densenet_loads_legacy_torchvision_keys(densenet_file, tmp_path):
    state = torch.load(densenet_file, weights_only=True)
    legacy = {}
    for k, v in state.items():
        for name in ("norm", "relu", "conv"):
            for i in ("1", "2"):
                k = k.replace(f".{name}{i}.", f".{name}.{i}.") if ".denselayer" in k else k
        legacy[k] = v
    assert any(".norm.1." in k for k in legacy)
    path = tmp_path / "legacy.pth"
    torch.save(legacy, path)
    x = _textured(32, (1, 1, 32, 32))
    assert L.DenseNetWeighting(path).energy(x).item() == pytest.approx(
        L.DenseNetWeighting(densenet_file).energy(x).item(), rel=1e-6
    )


def test_densenet_missing_file_message(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError) as err:
        L.build_ivif_weighting("densenet", weights_path=missing)
    msg = str(err.value)
    assert "densenet121-a639ec97.pth" in msg
    assert "gradient" in msg
    with pytest.raises(FileNotFoundError, match="gradient"):
        L.build_ivif_weighting("densenet")


def test_gradient_weighting():
    weighting = L.build_ivif_weighting("gradient")
    assert isinstance(weighting, L.GradientWeighting)
    textured, smooth = _textured(40), _smooth()
    w_ir, w_vis = weighting(smooth, textured)
    assert (w_ir + w_vis).item() == pytest.approx(1.0, abs=1e-6)
    assert w_vis.item() > 0.9
    # default: softmax over log energies = energy ratio
    g_ir, g_vis = weighting.energy(smooth), weighting.energy(textured)
    assert w_ir.item() == pytest.approx((g_ir / (g_ir + g_vis)).item(), rel=1e-4, abs=1e-7)
    # same energies -> equal weights
    a, b = weighting(textured, textured)
    assert a.item() == pytest.approx(0.5) and b.item() == pytest.approx(0.5)
    # literal softmax with a temperature
    tw = L.GradientWeighting(temperature=0.01)
    t_ir, t_vis = tw(smooth, textured)
    expected = torch.softmax(torch.stack([g_ir, g_vis]) / 0.01, 0)[0].item()
    assert t_ir.item() == pytest.approx(expected, rel=1e-5)
    # tiny images do not fail
    assert torch.isfinite(weighting(_textured(41, (1, 1, 3, 3)), _textured(42, (1, 1, 3, 3)))[0])


def test_fixed_weighting():
    weighting = L.build_ivif_weighting("fixed", fixed=(0.3, 0.7))
    assert isinstance(weighting, L.FixedWeighting)
    w_ir, w_vis = weighting(_textured(50), _smooth())
    assert w_ir.item() == pytest.approx(0.3) and w_vis.item() == pytest.approx(0.7)
    with pytest.raises(ValueError):
        L.build_ivif_weighting("fixed", fixed=(0.3,))
    with pytest.raises(ValueError):
        L.FixedWeighting(-1.0, 0.5)


def test_auto_mode(densenet_file, caplog):
    with caplog.at_level(logging.INFO, logger="gifnet.losses"):
        weighting = L.build_ivif_weighting("auto")
    assert isinstance(weighting, L.GradientWeighting)
    assert any("gradient" in r.getMessage() for r in caplog.records)
    assert isinstance(L.build_ivif_weighting("auto", weights_path=densenet_file), L.DenseNetWeighting)
    with pytest.raises(ValueError, match="unknown"):
        L.build_ivif_weighting("bogus")  # type: ignore[arg-type]


def test_msssim_autocast_and_half_inputs():
    y = _textured(60, (1, 1, 48, 48))
    x = (0.9 * y + 0.05).clone()
    ref = L.msssim_official(x, y).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = L.msssim_official(x, y)
    assert under_autocast.dtype == torch.float32
    assert under_autocast.item() == pytest.approx(ref, abs=1e-6)
    # bfloat16 inputs are raised to float32 for the statistics
    half = L.msssim_official(x.bfloat16(), y.bfloat16()).item()
    assert half == pytest.approx(ref, abs=5e-3)
