"""Tests for :mod:`gifnet.inference.remote` (MATLAB-style band post-processing and multi-band TIFF I/O)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import missing_shared

from gifnet.inference.remote import (
    _round_half_away,
    fspecial_gaussian,
    fuse_bands_postprocess,
    gaussian_base,
    histeq_mapping,
    histeq_to_histogram,
    imhist,
    postprocess_band,
    read_multiband,
    read_remote_inputs,
    write_multiband_tiff_atomic,
)

RNG = np.random.default_rng(20250611)


def _matlab_literal_mapping(nn: np.ndarray, hgram: np.ndarray) -> np.ndarray:
    """Test oracle: MATLAB's m x n error-matrix formulation of histeq, transcribed literally (0-based)."""
    nn = np.asarray(nn, dtype=np.float64)
    n, npix = nn.size, nn.sum()
    hgram = np.asarray(hgram, dtype=np.float64)
    m = hgram.size
    hgram = hgram * (npix / hgram.sum())
    cumd, cum = np.cumsum(hgram), np.cumsum(nn)
    tol = np.ones((m, 1)) * np.minimum(np.r_[nn[: n - 1], 0], np.r_[0, nn[1:]])[None, :] / 2
    err = (cumd[:, None] * np.ones((1, n)) - np.ones((m, 1)) * cum[None, :]) + tol
    err[err < -npix * np.sqrt(np.finfo(np.float64).eps)] = npix
    return err.argmin(axis=0)


def _hist(levels_counts: dict[int, int], n: int = 256) -> np.ndarray:
    h = np.zeros(n, np.int64)
    for level, count in levels_counts.items():
        h[level] = count
    return h


# ---------------------------------------------------------------------------------------------------
# Gaussian base
# ---------------------------------------------------------------------------------------------------
def test_fspecial_gaussian_weights() -> None:
    h = fspecial_gaussian(3, 0.5)
    assert h.sum() == pytest.approx(1.0)
    assert h[1, 1] == pytest.approx(0.6193, abs=1e-4)
    assert h[0, 1] == pytest.approx(0.0838, abs=1e-4)
    assert h[0, 0] == pytest.approx(0.0113, abs=1e-4)
    np.testing.assert_allclose(h, h.T)


def test_gaussian_base_impulse_and_replicate_border() -> None:
    img = np.zeros((5, 5), np.uint8)
    img[2, 2] = 100
    base = gaussian_base(img)
    assert base.dtype == np.uint8
    assert base[2, 2] == 62 and base[1, 2] == 8 and base[1, 1] == 1 and base[0, 0] == 0  # 61.93, 8.38, 1.13
    corner = np.zeros((3, 3), np.uint8)
    corner[0, 0] = 100
    # replicate: (0,0) sees itself through 4 taps: 0.6193 + 2*0.0838 + 0.0113 = 0.7982 -> 79.82 -> 80
    assert gaussian_base(corner)[0, 0] == 80
    flat = np.full((4, 6), 173, np.uint8)
    np.testing.assert_array_equal(gaussian_base(flat), flat)


def test_gaussian_base_16bit_and_rounding_rule() -> None:
    img = RNG.integers(0, 65536, size=(7, 9), dtype=np.uint16)
    base = gaussian_base(img)
    assert base.dtype == np.uint16
    assert abs(int(base.astype(np.int64).mean()) - int(img.astype(np.int64).mean())) < 2000
    np.testing.assert_array_equal(_round_half_away(np.array([0.5, 1.5, 2.5, 2.4999])), [1, 2, 3, 2])
    with pytest.raises(TypeError):
        gaussian_base(img.astype(np.float32))


# ---------------------------------------------------------------------------------------------------
# Histogram specification
# ---------------------------------------------------------------------------------------------------
def test_histeq_mapping_matches_literal_matlab_matrix() -> None:
    for trial in range(60):
        sparsity = RNG.random()
        src = RNG.integers(0, 40, 256) * (RNG.random(256) < sparsity)
        tgt = RNG.integers(0, 40, 256) * (RNG.random(256) < RNG.random())
        src[RNG.integers(0, 256)] += 1
        tgt[RNG.integers(0, 256)] += 1
        if trial % 4 == 0:
            tgt = src.copy()
        np.testing.assert_array_equal(histeq_mapping(src, tgt), _matlab_literal_mapping(src, tgt))
    # fewer target bins (MATLAB histeq(I, hgram) with length(hgram) < 256)
    src = RNG.integers(0, 9, 256)
    tgt = RNG.integers(0, 9, 16) + 1
    np.testing.assert_array_equal(histeq_mapping(src, tgt), _matlab_literal_mapping(src, tgt))


def test_histeq_hand_examples() -> None:
    # one pixel at each of 0..3, target two pixels each at 200 and 201:
    # thresholds cum - tol = 1, 1.5, 2.5, 3.5 against cumd(200)=2, cumd(201)=4
    img = np.array([[0, 1], [2, 3]], np.uint8)
    out = histeq_to_histogram(img, _hist({200: 2, 201: 2}))
    np.testing.assert_array_equal(out, [[200, 200], [201, 201]])
    # half-bin tolerance: 2 px at 10 and 2 px at 20, target 3 at 100 and 1 at 200. Level 20 has
    # cum 4, tol 1 -> threshold 3 -> level 100 (nearest-cumulative matching would pick 200).
    img = np.array([[10, 10], [20, 20]], np.uint8)
    out = histeq_to_histogram(img, _hist({100: 3, 200: 1}))
    np.testing.assert_array_equal(out, np.full((2, 2), 100))
    # a 2-bin target maps onto 0 / 255, like MATLAB's grayxform of T = (idx - 1) / (m - 1)
    img = np.array([[0, 1], [2, 3]], np.uint8)
    np.testing.assert_array_equal(histeq_to_histogram(img, np.array([1.0, 1.0])), [[0, 0], [255, 255]])


def test_histeq_identity_and_monotone() -> None:
    img = RNG.integers(30, 90, size=(40, 50), dtype=np.uint8)
    np.testing.assert_array_equal(histeq_to_histogram(img, imhist(img)), img)
    img16 = RNG.integers(0, 65536, size=(30, 30), dtype=np.uint16)
    np.testing.assert_array_equal(histeq_to_histogram(img16, imhist(img16)), img16)
    target = imhist((RNG.random((40, 50)) ** 2 * 255).astype(np.uint8))
    mapping = histeq_mapping(imhist(img), target)
    assert np.all(np.diff(mapping) >= 0)
    out = histeq_to_histogram(img, target)
    # order preserved pixel-wise
    order = np.argsort(img.ravel(), kind="stable")
    assert np.all(np.diff(out.ravel()[order].astype(int)) >= 0)


def test_histeq_output_histogram_close_to_target() -> None:
    img = (np.linspace(0, 1, 64 * 64).reshape(64, 64) * 255).astype(np.uint8)  # ~16 px per level
    ref = np.clip(RNG.normal(120, 25, size=(64, 64)), 0, 255).astype(np.uint8)
    out = histeq_to_histogram(img, imhist(ref))
    gap = np.abs(np.cumsum(imhist(out)) - np.cumsum(imhist(ref))).max() / img.size
    assert gap < 0.02
    assert abs(float(out.mean()) - float(ref.mean())) < 2.0


def test_histeq_scales_target_to_pixel_count() -> None:
    img = RNG.integers(0, 256, size=(20, 20), dtype=np.uint8)
    ref = RNG.integers(0, 256, size=(50, 50), dtype=np.uint8)
    h = imhist(ref)
    np.testing.assert_array_equal(histeq_to_histogram(img, h), histeq_to_histogram(img, h * 7.5))


def test_histeq_input_validation() -> None:
    img = np.zeros((3, 3), np.uint8)
    with pytest.raises(ValueError):
        histeq_to_histogram(img, np.zeros(256))
    with pytest.raises(ValueError):
        histeq_mapping(np.ones(256), -np.ones(256))
    with pytest.raises(ValueError):
        imhist(img, 64)


# ---------------------------------------------------------------------------------------------------
# Band post-processing
# ---------------------------------------------------------------------------------------------------
def test_postprocess_band_composition() -> None:
    fused = RNG.integers(0, 256, size=(24, 20), dtype=np.uint8)
    ms = RNG.integers(40, 120, size=(24, 20), dtype=np.uint8)
    out = postprocess_band(fused, ms)
    base = gaussian_base(fused)
    detail = np.maximum(fused.astype(int) - base.astype(int), 0)  # negatives dropped
    expected = np.minimum(histeq_to_histogram(base, imhist(ms)).astype(int) + detail, 255)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8
    assert (fused.astype(int) - base.astype(int) < 0).any()  # the example does have negative details


def test_postprocess_constant_fused_gives_ms_median_level() -> None:
    fused = np.full((10, 10), 100, np.uint8)
    ms = np.repeat(np.arange(50, 60, dtype=np.uint8)[None, :], 10, axis=0)  # 10 px at each of 50..59
    # constant base: cum = 100 at level 100, tol = 50 -> first target level with cumd >= 50 is 54
    np.testing.assert_array_equal(postprocess_band(fused, ms), np.full((10, 10), 54))


def test_postprocess_16bit() -> None:
    fused = RNG.integers(0, 65536, size=(16, 16), dtype=np.uint16)
    ms = RNG.integers(10000, 20000, size=(16, 16), dtype=np.uint16)
    out = postprocess_band(fused, ms)
    assert out.dtype == np.uint16
    # the base part follows the MS distribution: most of the output lies within the MS range plus detail
    assert np.median(out) < 30000
    with pytest.raises(TypeError, match="dtype"):
        postprocess_band(fused, ms.astype(np.uint8))
    with pytest.raises(ValueError, match="size"):
        postprocess_band(fused, ms[:8])


def test_fuse_bands_postprocess_stacks() -> None:
    fused = RNG.integers(0, 256, size=(12, 14, 4), dtype=np.uint8)
    ms = RNG.integers(0, 256, size=(12, 14, 4), dtype=np.uint8)
    out = fuse_bands_postprocess(fused, ms)
    assert out.shape == (12, 14, 4) and out.dtype == np.uint8
    for k in range(4):
        np.testing.assert_array_equal(out[:, :, k], postprocess_band(fused[:, :, k], ms[:, :, k]))
    out_list = fuse_bands_postprocess([fused[:, :, k] for k in range(4)], [ms[:, :, k] for k in range(4)])
    np.testing.assert_array_equal(out_list, out)
    with pytest.raises(ValueError, match="4 fused bands but 3 MS bands"):
        fuse_bands_postprocess(fused, ms[:, :, :3])
    with pytest.raises(ValueError, match="fused bands are"):
        fuse_bands_postprocess(fused, ms[:6])


# ---------------------------------------------------------------------------------------------------
# Multi-band I/O
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bands", [1, 3, 4, 5])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_round_trip(tmp_path: Path, bands: int, dtype: type) -> None:
    arr = RNG.integers(0, np.iinfo(dtype).max + 1, size=(7, 9, bands), dtype=dtype)
    path = write_multiband_tiff_atomic(tmp_path / "sub" / "x.tif", arr)
    back = read_multiband(path, expected_bands=bands)
    assert back.dtype == np.dtype(dtype) and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.tif"]  # no temporary file left behind


def test_tiff_dtype_conversion_and_errors(tmp_path: Path) -> None:
    f = np.array([[-3.2, 12.5, 300.0]])
    back = read_multiband(write_multiband_tiff_atomic(tmp_path / "f.tif", f, np.uint8))
    np.testing.assert_array_equal(back[:, :, 0], [[0, 12, 255]])
    with pytest.raises(ValueError, match="do not fit"):
        write_multiband_tiff_atomic(tmp_path / "g.tif", np.array([[70000]], np.uint32), np.uint16)
    assert not (tmp_path / "g.tif").exists()
    with pytest.raises(ValueError, match=r"x\.tif: expected 4 band\(s\), found 3"):
        read_multiband(write_multiband_tiff_atomic(tmp_path / "x.tif", np.zeros((4, 4, 3), np.uint8)), 4)
    with pytest.raises(FileNotFoundError, match="missing.tif"):
        read_multiband(tmp_path / "missing.tif")


def test_read_planar_and_multipage_tiff(tmp_path: Path) -> None:
    import tifffile

    arr = RNG.integers(0, 65536, size=(3, 5, 6), dtype=np.uint16)  # K x H x W
    tifffile.imwrite(tmp_path / "planar.tif", arr, photometric="minisblack", planarconfig="separate")
    np.testing.assert_array_equal(read_multiband(tmp_path / "planar.tif"), np.moveaxis(arr, 0, -1))
    with tifffile.TiffWriter(tmp_path / "pages.tif") as tw:
        for k in range(3):
            tw.write(arr[k], photometric="minisblack")
    np.testing.assert_array_equal(read_multiband(tmp_path / "pages.tif"), np.moveaxis(arr, 0, -1))


def test_read_remote_inputs_checks(tmp_path: Path) -> None:
    ms = RNG.integers(0, 256, size=(8, 10, 4), dtype=np.uint8)
    pan = RNG.integers(0, 256, size=(8, 10), dtype=np.uint8)
    ms_p = write_multiband_tiff_atomic(tmp_path / "ms.tif", ms)
    pan_p = write_multiband_tiff_atomic(tmp_path / "pan.tif", pan)
    got_ms, got_pan = read_remote_inputs(ms_p, pan_p, expected_bands=4)
    np.testing.assert_array_equal(got_ms, ms)
    np.testing.assert_array_equal(got_pan, pan)
    with pytest.raises(ValueError, match=r"ms\.tif: expected 3 band"):
        read_remote_inputs(ms_p, pan_p, expected_bands=3)
    small = write_multiband_tiff_atomic(tmp_path / "pan_small.tif", pan[:6])
    with pytest.raises(ValueError, match=r"ms\.tif: MS bands are 8x10 .*pan_small\.tif is 6x10"):
        read_remote_inputs(ms_p, small)
    with pytest.raises(ValueError, match=r"ms\.tif: PAN must have 1 band"):
        read_remote_inputs(ms_p, ms_p)


# ---------------------------------------------------------------------------------------------------
# Real tile from the benchmark sample
# ---------------------------------------------------------------------------------------------------
@pytest.mark.shared
def test_real_tile_crop(shared: Path, tmp_path: Path) -> None:
    root = shared / "data" / "benchmarks" / "remote" / "GIFNet-sample"
    if not (root / "A" / "tile1_band1.png").is_file():
        missing_shared("remote benchmark sample not available")
    crop = (slice(100, 164), slice(100, 180))
    ms = np.stack(
        [read_multiband(root / "A" / f"tile1_band{k}.png", expected_bands=1)[crop][:, :, 0] for k in range(1, 5)],
        axis=-1,
    )
    pan = read_multiband(root / "B" / "tile1_band1.png", expected_bands=1)[crop][:, :, 0]
    assert ms.dtype == np.uint8 and pan.dtype == np.uint8
    # no network here: use PAN as a stand-in for every fused band
    out = fuse_bands_postprocess(np.repeat(pan[:, :, None], 4, axis=2), ms)
    assert out.shape == ms.shape and out.dtype == np.uint8
    for k in range(4):
        base_spec = histeq_to_histogram(gaussian_base(pan), imhist(ms[:, :, k]))
        gap = np.abs(np.cumsum(imhist(base_spec)) - np.cumsum(imhist(ms[:, :, k]))).max() / pan.size
        assert gap < 0.05
        # the output takes the MS band's radiometry (low-contrast band) plus PAN's positive details
        assert abs(float(np.median(out[:, :, k])) - float(np.median(ms[:, :, k]))) < 10
        assert np.all(out[:, :, k] >= base_spec)
    path = write_multiband_tiff_atomic(tmp_path / "fused.tif", out)
    np.testing.assert_array_equal(read_multiband(path, expected_bands=4), out)
