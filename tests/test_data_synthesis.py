"""MFIF / MEIF synthesis: determinism, mask and blur statistics, exposure statistics."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gifnet.data.synthesis import (
    ExposureConfig,
    FocusConfig,
    apply_exposure,
    blur_kernel,
    config_from_mapping,
    random_focus_mask,
    synthesize_exposure_pair,
    synthesize_focus_pair,
)


def _texture(h: int = 96, w: int = 96, seed: int = 0) -> np.ndarray:
    """Textured image in [0.1, 0.9]: smooth shading plus fine noise (plenty of high frequencies)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = 0.5 + 0.2 * np.sin(6 * xx) * np.cos(5 * yy)
    return np.clip(base + 0.2 * rng.uniform(-1, 1, (h, w)), 0.1, 0.9).astype(np.float32)


def _lap_energy(img: np.ndarray, region: np.ndarray) -> float:
    lap = cv2.Laplacian(img.astype(np.float32), cv2.CV_32F, ksize=1)
    return float((lap[region] ** 2).mean())


@pytest.mark.parametrize("kind", ["blobs", "polygon", "depth"])
def test_mask_range_smoothness_and_determinism(kind):
    cfg = FocusConfig()
    m1 = random_focus_mask(64, 80, np.random.default_rng(3), cfg, kind=kind)
    m2 = random_focus_mask(64, 80, np.random.default_rng(3), cfg, kind=kind)
    np.testing.assert_array_equal(m1, m2)
    assert m1.shape == (64, 80) and m1.dtype == np.float32
    assert m1.min() >= 0 and m1.max() <= 1
    assert 0.05 < m1.mean() < 0.95


def test_kernels_normalised():
    for kind in ("gaussian", "disk"):
        k = blur_kernel(3.5, kind)
        assert abs(float(k.sum()) - 1) < 1e-5 and k.shape[0] % 2 == 1
        np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)
    assert blur_kernel(0).shape == (1, 1)
    with pytest.raises(ValueError):
        blur_kernel(2, "box")


@pytest.mark.parametrize("kernel", ["gaussian", "disk"])
def test_near_sharper_than_far_inside_mask(kernel):
    vis = _texture()
    cfg = FocusConfig(kernels=(kernel,), blur_radius=(3.0, 4.0))
    for seed in range(4):
        near, far, mask = synthesize_focus_pair(vis, np.random.default_rng(seed), cfg)
        inside, outside = mask > 0.95, mask < 0.05
        assert inside.sum() > 50 and outside.sum() > 50
        assert _lap_energy(near, inside) > 3 * _lap_energy(far, inside)
        assert _lap_energy(far, outside) > 3 * _lap_energy(near, outside)
        # sharp regions are exactly the source
        np.testing.assert_allclose(near[mask >= 1.0], vis[mask >= 1.0], atol=1e-6)
        np.testing.assert_allclose(far[mask <= 0.0], vis[mask <= 0.0], atol=1e-6)


def test_focus_pair_deterministic():
    vis = _texture(48, 40)
    a = synthesize_focus_pair(vis, np.random.default_rng(7))
    b = synthesize_focus_pair(vis, np.random.default_rng(7))
    c = synthesize_focus_pair(vis, np.random.default_rng(8))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_under_darker_than_over_where_not_saturated():
    vis = _texture(64, 64, seed=1)
    for seed in range(5):
        under, over, p = synthesize_exposure_pair(vis, np.random.default_rng(seed), ExposureConfig())
        assert p["ev_under"] < 0 < p["ev_over"]
        assert under.min() >= 0 and over.max() <= 1
        unsat = over < 0.99
        assert unsat.sum() > 0
        assert (under[unsat] < over[unsat]).mean() > 0.99  # noise may swap a handful of dark pixels
        assert under.mean() < vis.mean() < over.mean()
    # noise-free: strictly pixel-wise
    cfg = ExposureConfig(shot_noise=(0, 0), read_noise=(0, 0), quantize=False)
    under, over, _ = synthesize_exposure_pair(vis, np.random.default_rng(0), cfg)
    unsat = over < 1.0
    assert np.all(under[unsat] < over[unsat])


def test_exposure_identity_and_saturation():
    vis = _texture(16, 16)
    ident = apply_exposure(vis, 0.0, None, gamma=2.2, quantize=False)
    np.testing.assert_allclose(ident, vis, atol=1e-5)
    over = apply_exposure(vis, 6.0, None, gamma=2.2)
    assert (over == 1.0).mean() > 0.9  # +6 EV saturates almost everything


def test_config_validation_and_mapping():
    with pytest.raises(ValueError, match="blur_radius"):
        FocusConfig(blur_radius=(5, 2))
    with pytest.raises(ValueError, match="mask kind"):
        FocusConfig(mask_kinds=("stars",))
    with pytest.raises(ValueError, match="ev_under"):
        ExposureConfig(ev_under=(-1, 1))
    with pytest.raises(ValueError, match="unknown option"):
        config_from_mapping(FocusConfig, {"blur": 3})
    cfg = config_from_mapping(FocusConfig, {"blur_radius": [1, 2], "kernels": ["disk"]})
    assert cfg.blur_radius == (1.0, 2.0) and cfg.kernels == ("disk",)
