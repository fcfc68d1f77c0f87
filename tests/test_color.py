"""Tests for :mod:`gifnet.inference.color` (standard BT.601 pipeline and the released script's colour rule)."""

from __future__ import annotations

import numpy as np
import pytest

from gifnet.inference.color import (
    OFFICIAL_FORWARD,
    OFFICIAL_INVERSE,
    chroma_offset,
    finish_output,
    fuse_chroma,
    is_gray,
    max_value_of,
    official_fuse_chroma,
    official_gray_read,
    official_rgb_to_ycbcr,
    official_ycbcr_to_rgb,
    prepare_inputs,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)

RNG = np.random.default_rng(1234)


def _rand_rgb(h: int = 9, w: int = 11, dtype: type = np.uint8) -> np.ndarray:
    return RNG.integers(0, np.iinfo(dtype).max + 1, size=(h, w, 3), dtype=dtype)


# ---------------------------------------------------------------------------------------------------
# Standard mode: conversions
# ---------------------------------------------------------------------------------------------------
def test_offsets_and_max_values() -> None:
    assert chroma_offset(255) == 128.0
    assert chroma_offset(65535) == 32768.0
    assert max_value_of(np.uint8) == 255 and max_value_of(np.uint16) == 65535
    for bad in (100, 0.5, 254.5):
        with pytest.raises(ValueError):
            chroma_offset(bad)
    with pytest.raises(TypeError):
        max_value_of(np.float32)


def test_standard_known_values() -> None:
    ycc = rgb_to_ycbcr(np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 0, 255]]], np.uint8))
    np.testing.assert_allclose(ycc[0, 0], [255, 128, 128], atol=1e-9)
    np.testing.assert_allclose(ycc[0, 1], [0, 128, 128], atol=1e-9)
    # Red: Y = 76.245, Cr = 128 + (255 - 76.245) / 1.402 = 255.5 (full-range overshoot of JPEG YCbCr)
    np.testing.assert_allclose(ycc[0, 2], [76.245, 128 - 76.245 / 1.772, 255.5], atol=1e-9)
    np.testing.assert_allclose(ycc[0, 3], [29.07, 255.5, 128 - 29.07 / 1.402], atol=1e-9)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_standard_round_trip_float(dtype: type) -> None:
    rgb = _rand_rgb(dtype=dtype)
    m = max_value_of(dtype)
    back = ycbcr_to_rgb(rgb_to_ycbcr(rgb, m), m)
    assert np.abs(back - rgb).max() < 1e-6 * m


def test_standard_round_trip_quantised_within_half_level() -> None:
    rgb = _rand_rgb(32, 32)
    ycc = rgb_to_ycbcr(rgb)
    back = ycbcr_to_rgb(ycc)
    assert np.abs(back - rgb).max() < 0.5
    # through the pipeline: one colour input, fused luma = its own luma -> the input comes back exactly
    gray = RNG.integers(0, 256, size=(32, 32), dtype=np.uint8)
    la, _, ctx = prepare_inputs(rgb, gray)
    assert ctx.source == "a" and ctx.is_color
    np.testing.assert_array_equal(finish_output(la, ctx), rgb)


def test_standard_16bit_pipeline() -> None:
    rgb = _rand_rgb(8, 8, np.uint16)
    gray = RNG.integers(0, 65536, size=(8, 8), dtype=np.uint16)
    la, lb, ctx = prepare_inputs(gray, rgb)
    assert la.dtype == np.float32 and 0 <= la.min() and la.max() <= 1
    np.testing.assert_allclose(la, gray / 65535.0, atol=1e-7)
    assert ctx.dtype == np.uint16 and ctx.max_value == 65535 and ctx.source == "b"
    np.testing.assert_allclose(ctx.cb.mean(), 32768, atol=8000)
    out = finish_output(lb, ctx)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, rgb)
    # gray-only 16-bit output
    _, _, ctx2 = prepare_inputs(gray, gray)
    out2 = finish_output(la, ctx2)
    assert out2.dtype == np.uint16 and out2.shape == gray.shape
    np.testing.assert_array_equal(out2, gray)


def test_standard_mixed_depth_rescales_chroma() -> None:
    rgb8 = np.array([[[255, 0, 0]]], np.uint8)
    gray16 = np.full((1, 1), 1000, np.uint16)
    _, _, ctx = prepare_inputs(rgb8, gray16)
    assert ctx.dtype == np.uint16
    np.testing.assert_allclose(ctx.cr, 32768 + 127.5 * 65535 / 255)


# ---------------------------------------------------------------------------------------------------
# is_gray and chroma policy (standard)
# ---------------------------------------------------------------------------------------------------
def test_is_gray() -> None:
    g = RNG.integers(0, 256, size=(5, 6), dtype=np.uint8)
    assert is_gray(g)
    assert is_gray(g[:, :, None])
    assert is_gray(np.repeat(g[:, :, None], 3, axis=2))
    c = np.repeat(g[:, :, None], 3, axis=2)
    c[2, 3, 1] ^= 1
    assert not is_gray(c)
    assert is_gray(np.zeros((4, 4, 4), np.uint8))  # RGBA: the RGB planes decide
    with pytest.raises(ValueError):
        is_gray(np.zeros(4, np.uint8))


def test_standard_policy_none_colour() -> None:
    a = RNG.integers(0, 256, size=(6, 7), dtype=np.uint8)
    b3 = np.repeat(RNG.integers(0, 256, size=(6, 7, 1), dtype=np.uint8), 3, axis=2)
    la, lb, ctx = prepare_inputs(a, b3)
    assert not ctx.is_color and ctx.source == "none"
    np.testing.assert_array_equal(lb * 255, b3[:, :, 0].astype(np.float32))  # exact stored value
    out = finish_output(la, ctx)
    assert out.shape == (6, 7) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, a)


def test_standard_policy_one_colour_takes_its_chroma() -> None:
    a = _rand_rgb(6, 7)
    b = RNG.integers(0, 256, size=(6, 7), dtype=np.uint8)
    _, _, ctx = prepare_inputs(a, b)
    ycc = rgb_to_ycbcr(a)
    assert ctx.source == "a"
    np.testing.assert_allclose(ctx.cb, ycc[:, :, 1])
    np.testing.assert_allclose(ctx.cr, ycc[:, :, 2])
    _, _, ctx_b = prepare_inputs(b, a)
    assert ctx_b.source == "b"
    np.testing.assert_allclose(ctx_b.cr, ycc[:, :, 2])
    # forcing the colour slot to gray gives a gray output
    _, _, ctx_forced = prepare_inputs(a, b, flag_a=False)
    assert not ctx_forced.is_color


def test_standard_policy_both_colour_fuses() -> None:
    a, b = _rand_rgb(6, 7), _rand_rgb(6, 7)
    _, _, ctx = prepare_inputs(a, b)
    assert ctx.source == "fused"
    np.testing.assert_allclose(ctx.cb, fuse_chroma(rgb_to_ycbcr(a)[..., 1], rgb_to_ycbcr(b)[..., 1]))


def test_fuse_chroma_standard_rule() -> None:
    c1 = np.array([128.0, 188.0, 108.0, 128.0, 200.0])
    c2 = np.array([128.0, 108.0, 188.0, 150.0, 56.0])
    out = fuse_chroma(c1, c2)
    # both neutral -> 128; +60/-20 -> (60*60 - 20*20)/80 = +40; one neutral -> the other
    np.testing.assert_allclose(out, [128.0, 168.0, 168.0, 150.0, 128.0])
    np.testing.assert_allclose(fuse_chroma(c2, c1), out)  # symmetric
    np.testing.assert_allclose(fuse_chroma(np.array([40000.0]), np.array([32768.0]), 32768.0), [40000.0])


def test_more_saturated_wins_standard_but_official_favours_negative() -> None:
    # standard (offset form): +60 vs -20 -> +40, the more saturated side
    assert fuse_chroma(np.array([188.0]), np.array([108.0]))[0] > 128
    # official on zero-centred chroma: weights 128 - C -> equal magnitudes +-20 give a negative result
    assert official_fuse_chroma(np.array([-20.0]), np.array([20.0]))[0] == np.float32(-3.125)
    # and +60 vs -20 gives (60*68 - 20*148) / 216, far closer to the negative side than the standard +40
    mixed = official_fuse_chroma(np.array([60.0]), np.array([-20.0]))
    np.testing.assert_allclose(mixed, 1120 / 216, rtol=1e-6)
    # pixel-level: blue vs yellow (equally saturated in Cb): standard neutral, official yellow's Cb
    blue = np.array([[[0, 0, 255]]], np.uint8)
    yellow = np.array([[[255, 255, 0]]], np.uint8)
    _, _, std = prepare_inputs(blue, yellow)
    np.testing.assert_allclose(std.cb, [[128.0]], atol=1e-9)
    _, _, off = prepare_inputs(blue, yellow, "official", flag_a=True, flag_b=True)
    # Cb: blue +127.5 (weight 0.5), yellow -127.5 (weight 255.5) -> (63.75 - 32576.25) / 256
    np.testing.assert_allclose(off.cb, [[-32512.5 / 256]], rtol=1e-6)
    assert off.cb.dtype == np.float32


# ---------------------------------------------------------------------------------------------------
# Official mode
# ---------------------------------------------------------------------------------------------------
def test_official_matrices_are_not_inverses() -> None:
    assert np.abs(OFFICIAL_INVERSE @ OFFICIAL_FORWARD - np.eye(3)).max() > 1e-4


def test_official_gray_as_rgb_loses_a_level() -> None:
    values = np.array([0, 1, 2, 3, 5, 127, 128, 129, 255], np.uint8)
    img = np.repeat(values[None, :, None], 3, axis=2)
    la, lb, ctx = prepare_inputs(img, img, "official", flag_a=True, flag_b=True)
    # Y = v*(.299+.587+.114) lands a few ulp below v for some v, and truncation then loses a level. Which v
    # depends on the BLAS kernel's summation order (np.dot, as the released script): 255 loses one on an
    # AVX-512 Xeon and none on an AVX2 EPYC. So: every level is kept or lowered by one, several are lowered.
    got = np.rint(la * 255).astype(np.int16)[0]
    assert np.all((got == values) | (got == values.astype(np.int16) - 1)), got
    assert int((got != values).sum()) >= 3
    np.testing.assert_array_equal(la, got.astype(np.float32)[None, :] / np.float32(255))
    # the same image unflagged (read as gray) keeps its stored values
    la2, _, ctx2 = prepare_inputs(img, img, "official", flag_a=False, flag_b=False)
    np.testing.assert_array_equal(np.rint(la2 * 255).astype(np.uint8)[0], values)
    assert not ctx2.is_color
    # about a quarter of the 256 grey values lose one level
    allv = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    y, _, _ = official_rgb_to_ycbcr(allv)
    lost = int((y.astype(np.uint8)[0] != np.arange(256)).sum())
    assert 50 < lost < 90


def test_official_colour_pixel_by_hand() -> None:
    # slot a: RGB (200, 100, 50), flagged; slot b: gray 77 (IR_IS_RGB preset, e.g. medical)
    a = np.array([[[200, 100, 50]]], np.uint8)
    b = np.full((1, 1), 77, np.uint8)
    la, lb, ctx = prepare_inputs(a, b, "official", flag_a=True, flag_b=False)
    # Y = 59.8 + 58.7 + 5.7 = 124.2 -> truncated 124; Cb = -33.8 - 33.1 + 25 = -41.9;
    # Cr = 100 - 41.9 - 4.05 = 54.05 (zero-centred)
    assert la[0, 0] == np.float32(124) / np.float32(255)
    assert lb[0, 0] == np.float32(77) / np.float32(255)
    assert ctx.source == "a"
    np.testing.assert_allclose(ctx.cb, [[-41.9]], atol=1e-9)
    np.testing.assert_allclose(ctx.cr, [[54.05]], atol=1e-9)
    # fused y = 0.5 -> Y = 127.5 (untruncated):
    # R = 127.5 + 1.402*54.05 = 203.278; G = 127.5 + 0.344136*41.9 - 0.714136*54.05 = 103.320;
    # B = 127.5 - 1.772*41.9 = 53.253 -> rounded (203, 103, 53)
    out = finish_output(np.array([[0.5]], np.float32), ctx)
    np.testing.assert_array_equal(out, [[[203, 103, 53]]])
    assert out.dtype == np.uint8
    # standard mode on the same pixels differs (exact inverse, offset chroma)
    _, _, sctx = prepare_inputs(a, b)
    np.testing.assert_allclose(sctx.cb, [[128 + (50 - 124.2) / 1.772]])


def test_official_rounding_and_truncation_of_outputs() -> None:
    g = np.full((1, 3), 10, np.uint8)
    _, _, gray_ctx = prepare_inputs(g, g, "official", flag_a=False, flag_b=False)
    y = np.array([[0.999, 0.5, 1.2]], np.float32)  # 254.745, 127.5, 306
    np.testing.assert_array_equal(finish_output(y, gray_ctx), [[254, 127, 255]])  # truncated, clipped
    rounded = finish_output(y, gray_ctx, official_gray="round_half_even")
    np.testing.assert_array_equal(rounded, [[255, 128, 255]])
    # colour output with neutral chroma: Y + 0 -> rounded (254.745 -> 255, 127.5 -> 128 half to even)
    c = np.full((1, 3, 3), 10, np.uint8)
    _, _, col_ctx = prepare_inputs(c, g, "official", flag_a=True, flag_b=False)
    out = finish_output(y[None, None], col_ctx)  # 1 x 1 x H x W accepted
    np.testing.assert_array_equal(out[..., 0], [[255, 128, 255]])


def test_official_fuse_vectorised_matches_loop_and_order() -> None:
    c1 = RNG.normal(0, 40, size=(5, 6))
    c2 = RNG.normal(0, 40, size=(5, 6))
    c2[0, 0] = c1[0, 0] = 128.0  # both weights zero -> 128
    fused = official_fuse_chroma(c1, c2)
    assert fused.dtype == np.float32
    for k in range(5):
        for n in range(6):
            if abs(c1[k, n] - 128) == 0 and abs(c2[k, n] - 128) == 0:
                ref = 128
            else:
                ref = (c1[k, n] * abs(c1[k, n] - 128) + c2[k, n] * abs(c2[k, n] - 128)) / (
                    abs(c1[k, n] - 128) + abs(c2[k, n] - 128)
                )
            assert fused[k, n] == np.float32(ref)
    # prepare_inputs passes slot b first, as the script's fuse_cb_cr(vis, ..., ir, ...)
    a, b = _rand_rgb(5, 6), _rand_rgb(5, 6)
    _, _, ctx = prepare_inputs(a, b, "official", flag_a=True, flag_b=True)
    _, cba, _ = official_rgb_to_ycbcr(a)
    _, cbb, _ = official_rgb_to_ycbcr(b)
    np.testing.assert_array_equal(ctx.cb, official_fuse_chroma(cbb, cba))


def test_official_ycbcr_to_rgb_uses_official_inverse() -> None:
    y = np.array([[100.0]])
    out = official_ycbcr_to_rgb(y, np.array([[10.0]]), np.array([[-10.0]]))
    # R = 100 - 14.02 = 85.98 -> 86; G = 100 - 3.44136 + 7.14136 = 103.7 -> 104; B = 117.72 -> 118
    np.testing.assert_array_equal(out, [[[86, 104, 118]]])


def test_official_gray_read_approximation() -> None:
    rgb = np.array([[[200, 100, 50], [7, 7, 7]]], np.uint8)
    np.testing.assert_array_equal(official_gray_read(rgb), [[124, 7]])  # round(124.2), stored value
    np.testing.assert_array_equal(official_gray_read(rgb[:, :, :1]), [[200, 7]])


def test_official_input_validation() -> None:
    g = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="flag"):
        prepare_inputs(g, g, "official")
    with pytest.raises(TypeError):
        prepare_inputs(g.astype(np.uint16), g, "official", flag_a=False, flag_b=False)
    with pytest.raises(ValueError, match="differ in size"):
        prepare_inputs(g, np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="mode"):
        prepare_inputs(g, g, "fancy")  # type: ignore[arg-type]
    _, _, ctx = prepare_inputs(g, g)
    with pytest.raises(ValueError, match="shape"):
        finish_output(np.zeros((3, 4), np.float32), ctx)
