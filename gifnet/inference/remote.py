"""Remote-sensing post-processing of band-wise GIFNet fusion (GIFNET.md section 11, quirk 15).

Each multispectral (MS) band ``k`` (already at PAN size) is fused with the PAN image by the gray
pipeline, giving ``I_k``. The official MATLAB script then does, per band::

    base   = imfilter(I_k, fspecial('gaussian', [3 3]), 'replicate')   % sigma 0.5, rounded
    detail = I_k - base                                                   % uint8: negatives -> 0
    out_k  = histeq(base, imhist(MS_k)) + detail                          % saturating add

and stacks ``out_1..out_K`` into one multi-band TIFF. This module reproduces that on arrays
(:func:`postprocess_band`, :func:`fuse_bands_postprocess`) and provides multi-band TIFF I/O.

Bit depth: everything works on unsigned integer images with ``levels = 2**bits`` grey levels (256 for
uint8, 65536 for uint16). For uint8 this is the MATLAB computation; for uint16 it is the natural
generalisation (a ``levels``-bin histogram and saturation at ``levels - 1``), not what MATLAB's ``histeq``
would do (it uses 256 bins for every class). See ``docs/remote.md``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.ndimage import correlate

from gifnet.paths import atomic_path

__all__ = [
    "fspecial_gaussian",
    "gaussian_base",
    "imhist",
    "histeq_mapping",
    "histeq_to_histogram",
    "postprocess_band",
    "fuse_bands_postprocess",
    "read_multiband",
    "read_remote_inputs",
    "write_multiband_tiff_atomic",
]

_SUPPORTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))
_MATLAB_SQRT_EPS = float(np.sqrt(np.finfo(np.float64).eps))


def _check_uint_image(img: np.ndarray, name: str) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (H x W) band, got shape {img.shape}")
    if img.dtype not in _SUPPORTED_DTYPES:
        raise TypeError(f"{name}: expected uint8 or uint16, got {img.dtype}")
    return img


def _levels(dtype: np.dtype) -> int:
    return int(np.iinfo(dtype).max) + 1


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """MATLAB's double -> integer rounding (half away from zero)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


# ----------------------------------------------------------------------------------------------------
# Gaussian base layer
# ----------------------------------------------------------------------------------------------------
def fspecial_gaussian(size: int = 3, sigma: float = 0.5) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', [size size], sigma)``: normalised, tiny entries (< eps*max) zeroed.

    For ``size=3, sigma=0.5``: centre 0.6193, edges 0.0838, corners 0.0113.
    """
    half = (size - 1) / 2.0
    x = np.arange(size, dtype=np.float64) - half
    xx, yy = np.meshgrid(x, x)
    h = np.exp(-(xx * xx + yy * yy) / (2.0 * sigma * sigma))
    h[h < np.finfo(np.float64).eps * h.max()] = 0.0
    return h / h.sum()


def gaussian_base(img: np.ndarray) -> np.ndarray:
    """MATLAB ``imfilter(I, fspecial('gaussian', [3 3]), 'replicate')`` on an unsigned integer image.

    Correlation with the 3x3, sigma 0.5 kernel in float64 with replicated borders
    (``scipy.ndimage.correlate(mode='nearest')``), rounded half away from zero and saturated to the input
    dtype, as MATLAB converts an integer-class result. Same dtype as the input.
    """
    img = _check_uint_image(img, "image")
    out = correlate(img.astype(np.float64), fspecial_gaussian(3, 0.5), mode="nearest")
    return np.clip(_round_half_away(out), 0, np.iinfo(img.dtype).max).astype(img.dtype)


# ----------------------------------------------------------------------------------------------------
# Histogram specification (MATLAB histeq(I, hgram))
# ----------------------------------------------------------------------------------------------------
def imhist(img: np.ndarray, levels: int | None = None) -> np.ndarray:
    """Grey-level histogram with one bin per code value (MATLAB ``imhist`` of a uint8 image): int64."""
    img = np.asarray(img)
    if img.dtype not in _SUPPORTED_DTYPES:
        raise TypeError(f"imhist: expected uint8 or uint16, got {img.dtype}")
    n = _levels(img.dtype) if levels is None else int(levels)
    if n != _levels(img.dtype):
        raise ValueError(f"imhist: only one bin per level is supported ({_levels(img.dtype)} for {img.dtype})")
    return np.bincount(img.ravel(), minlength=n).astype(np.int64)


def histeq_mapping(source_hist: np.ndarray, target_hist: np.ndarray) -> np.ndarray:
    """MATLAB ``histeq``'s transformation: for each source level, the chosen 0-based target bin index.

    MATLAB (``createTransformationToIntensityImage``), with ``nn`` the source histogram (``n`` bins),
    ``cum = cumsum(nn)``, the target ``hgram`` (``m`` bins) scaled to the pixel count ``N`` and
    ``cumd = cumsum(hgram)``::

        tol = ones(m,1) * min([nn(1:n-1),0; 0,nn(2:n)]) / 2     % nn/2, with 0 at both ends
        err = (cumd(:)*ones(1,n) - ones(m,1)*cum(:)') + tol       % m x n
        err(err < -N*sqrt(eps)) = N                               % target cum too far below
        [~, T] = min(err)                                         % first minimum per source level

    Since ``err`` is non-decreasing down each column, the minimum is the *first* target level whose
    cumulative count is not below ``cum - tol`` (within ``N*sqrt(eps)``). That first index is found by a
    binary search plus an exact re-check of MATLAB's floating-point predicate, so the result is the
    same as building the ``m x n`` matrix but also scales to 65536 levels.
    """
    nn = np.asarray(source_hist, dtype=np.float64).ravel()
    h = np.asarray(target_hist, dtype=np.float64).ravel()
    n, m = nn.size, h.size
    if n < 2 or m < 2:
        raise ValueError("histograms need at least 2 bins")
    if np.any(nn < 0) or np.any(h < 0) or h.sum() <= 0:
        raise ValueError("histograms must be non-negative and the target must not be empty")
    npix = float(nn.sum())
    cumd = np.cumsum(h * (npix / h.sum()))
    cum = np.cumsum(nn)
    tol = nn / 2.0
    tol[0] = 0.0
    tol[-1] = 0.0
    thr = -npix * _MATLAB_SQRT_EPS

    def valid(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return ~(((cumd[i] - cum[j]) + tol[j]) < thr)

    cols = np.arange(n)
    idx = np.clip(np.searchsorted(cumd, cum - tol + thr, side="left"), 0, m - 1)
    for _ in range(m):  # move up to the first valid row (a couple of steps at most in practice)
        step = (idx < m - 1) & ~valid(idx, cols)
        if not step.any():
            break
        idx[step] += 1
    for _ in range(m):  # move down while the row above is still valid
        step = (idx > 0) & valid(np.maximum(idx - 1, 0), cols)
        if not step.any():
            break
        idx[step] -= 1
    idx[~valid(idx, cols)] = 0  # no valid row: MATLAB's min over a column of N's gives the first row
    return idx.astype(np.int64)


def histeq_to_histogram(img: np.ndarray, target_hist: np.ndarray) -> np.ndarray:
    """MATLAB ``histeq(I, hgram)`` (histogram specification) for a uint8 (or uint16) image.

    ``target_hist`` has ``m`` bins spread evenly over the code range (for a uint8 image normally the
    256-bin ``imhist`` of the reference band); it is scaled to the pixel count. Source levels are mapped
    with :func:`histeq_mapping` and then, like MATLAB's ``grayxform``, to
    ``floor(max_value * T / (m - 1) + 0.5)``, which is the target bin index itself when ``m`` equals the
    number of levels. The mapping is monotone non-decreasing.

    scikit-image's ``match_histograms`` is not used: it matches quantiles by linear interpolation between
    the two CDFs (from a reference *image*), gives different levels and has neither MATLAB's half-bin
    tolerance nor its "first level reaching the cumulative count" rule.
    """
    img = _check_uint_image(img, "image")
    levels = _levels(img.dtype)
    target = np.asarray(target_hist, dtype=np.float64).ravel()
    t_idx = histeq_mapping(imhist(img), target)
    max_value = levels - 1
    lut = np.floor(max_value * (t_idx / (target.size - 1)) + 0.5)
    lut = np.clip(lut, 0, max_value).astype(img.dtype)
    return lut[img]


# ----------------------------------------------------------------------------------------------------
# Band post-processing
# ----------------------------------------------------------------------------------------------------
def postprocess_band(fused: np.ndarray, ms_band: np.ndarray) -> np.ndarray:
    """Official per-band post-processing: ``histeq(base, imhist(ms)) + max(fused - base, 0)``, saturated.

    ``base`` is :func:`gaussian_base` of the fused band; the detail keeps only positive values (uint
    subtraction saturates at 0, quirk 15). ``fused`` and ``ms_band`` are ``H x W`` arrays of the same size
    and dtype (uint8, or uint16 with 65536 levels).
    """
    fused = _check_uint_image(fused, "fused band")
    ms_band = _check_uint_image(ms_band, "MS band")
    if fused.shape != ms_band.shape:
        raise ValueError(f"fused band {fused.shape} and MS band {ms_band.shape} differ in size")
    if fused.dtype != ms_band.dtype:
        raise TypeError(f"fused band ({fused.dtype}) and MS band ({ms_band.dtype}) differ in dtype")
    max_value = int(np.iinfo(fused.dtype).max)
    base = gaussian_base(fused)
    detail = np.clip(fused.astype(np.int64) - base, 0, max_value)
    spec = histeq_to_histogram(base, imhist(ms_band))
    return np.clip(spec.astype(np.int64) + detail, 0, max_value).astype(fused.dtype)


def _as_band_stack(bands: np.ndarray | Sequence[np.ndarray], name: str) -> np.ndarray:
    if isinstance(bands, np.ndarray):
        arr = bands[:, :, None] if bands.ndim == 2 else bands
    else:
        arr = np.stack([np.asarray(b) for b in bands], axis=-1)
    if arr.ndim != 3:
        raise ValueError(f"{name}: expected H x W x K bands, got shape {arr.shape}")
    return arr


def fuse_bands_postprocess(
    fused_bands: np.ndarray | Sequence[np.ndarray], ms_bands: np.ndarray | Sequence[np.ndarray]
) -> np.ndarray:
    """Apply :func:`postprocess_band` to each band and stack the results as ``H x W x K``.

    Both arguments are ``H x W x K`` arrays or sequences of ``K`` ``H x W`` bands (``fused_bands[k]`` is the
    gray fusion of ``ms_bands[k]`` with PAN).
    """
    fused = _as_band_stack(fused_bands, "fused bands")
    ms = _as_band_stack(ms_bands, "MS bands")
    if fused.shape[2] != ms.shape[2]:
        raise ValueError(f"{fused.shape[2]} fused bands but {ms.shape[2]} MS bands")
    if fused.shape[:2] != ms.shape[:2]:
        raise ValueError(f"fused bands are {fused.shape[:2]} but MS bands are {ms.shape[:2]}")
    out = [postprocess_band(fused[:, :, k], ms[:, :, k]) for k in range(fused.shape[2])]
    return np.stack(out, axis=-1)


# ----------------------------------------------------------------------------------------------------
# Multi-band I/O
# ----------------------------------------------------------------------------------------------------
def _tiff_to_hwk(path: Path) -> np.ndarray:
    import tifffile

    from gifnet.io import check_pixel_count

    with tifffile.TiffFile(path) as tif:
        all_series = tif.series
        series = all_series[0]
        dims = dict(zip(series.axes, series.shape))
        if "X" in dims and "Y" in dims:
            check_pixel_count(path, dims["X"], dims["Y"])  # before decoding (gifnet.io pixel limit)
        same_2d = all(s.ndim == 2 and s.shape == series.shape and s.dtype == series.dtype for s in all_series)
        if len(all_series) > 1 and same_2d:  # one band per page, written as separate series
            return np.stack([s.asarray() for s in all_series], axis=-1)
        data = series.asarray()
        axes = series.axes
    # drop singleton axes other than Y/X, then move the single remaining band axis last
    keep = [i for i, ax in enumerate(axes) if ax in "YX" or data.shape[i] != 1]
    data = data.reshape([data.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    if "Y" not in axes or "X" not in axes or len(axes) > 3:
        raise ValueError(f"{path}: unsupported TIFF layout (axes {series.axes!r}, shape {series.shape})")
    order = [axes.index("Y"), axes.index("X")] + [i for i, ax in enumerate(axes) if ax not in "YX"]
    data = np.transpose(data, order)
    return data[:, :, None] if data.ndim == 2 else data


def read_multiband(path: str | os.PathLike, expected_bands: int | None = None) -> np.ndarray:
    """Read an image as ``H x W x K`` keeping its band count and dtype.

    TIFF files go through tifffile (contiguous ``YXS``, planar ``SYX``, multi-page stacks, one 2-D page
    per band); other formats through Pillow (an 8-bit gray PNG gives ``K = 1``). ``expected_bands``
    raises a ``ValueError`` naming the file when the band count differs.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    if p.suffix.lower() in (".tif", ".tiff"):
        data = _tiff_to_hwk(p)
    else:
        from PIL import Image

        from gifnet.io import check_pixel_count

        with Image.open(p) as im:
            check_pixel_count(p, *im.size)
            data = np.asarray(im)
        data = data[:, :, None] if data.ndim == 2 else data
    if expected_bands is not None and data.shape[2] != expected_bands:
        raise ValueError(f"{p}: expected {expected_bands} band(s), found {data.shape[2]} (shape {data.shape})")
    return data


def read_remote_inputs(
    ms_path: str | os.PathLike, pan_path: str | os.PathLike, expected_bands: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read a multi-band MS file (at PAN size) and a single-band PAN file; check band count and sizes.

    Returns ``(ms H x W x K, pan H x W)``. Errors name the offending file.
    """
    ms = read_multiband(ms_path, expected_bands)
    pan = read_multiband(pan_path)
    if pan.shape[2] != 1:
        raise ValueError(f"{pan_path}: PAN must have 1 band, found {pan.shape[2]}")
    if ms.shape[:2] != pan.shape[:2]:
        raise ValueError(
            f"{ms_path}: MS bands are {ms.shape[0]}x{ms.shape[1]} (HxW) but PAN {pan_path} is "
            f"{pan.shape[0]}x{pan.shape[1]}; resample the MS bands to the PAN grid first"
        )
    if ms.dtype != pan.dtype:
        raise TypeError(f"{ms_path} is {ms.dtype} but PAN {pan_path} is {pan.dtype}")
    return ms, pan[:, :, 0]


def write_multiband_tiff_atomic(
    path: str | os.PathLike, array: np.ndarray, dtype: np.dtype | type | None = None
) -> Path:
    """Write ``H x W`` or ``H x W x K`` as one TIFF (contiguous samples, min-is-black), atomically.

    ``dtype`` defaults to the array's dtype. Floats are rounded and clipped into an integer ``dtype``;
    integers are converted only if every value fits (else ``ValueError``). The file is written to a
    temporary name in the same folder and renamed, so readers never see a partial file. Unlike MATLAB
    (which tags a 4-band uint8 TIFF as CMYK) bands 2..K are stored as unspecified extra samples.
    """
    import tifffile

    p = Path(path)
    arr = np.asarray(array)
    if arr.ndim not in (2, 3):
        raise ValueError(f"{p}: expected H x W or H x W x K array, got shape {arr.shape}")
    dt = np.dtype(arr.dtype if dtype is None else dtype)
    if dt != arr.dtype:
        if np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            if np.issubdtype(arr.dtype, np.floating):
                arr = np.clip(np.rint(arr), info.min, info.max)
            elif arr.size and (arr.min() < info.min or arr.max() > info.max):
                raise ValueError(f"{p}: values [{arr.min()}, {arr.max()}] do not fit in {dt}")
        arr = arr.astype(dt)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    kwargs = {"photometric": "minisblack"}
    if arr.ndim == 3:
        kwargs["planarconfig"] = "contig"
    with atomic_path(p) as tmp:
        tifffile.imwrite(tmp, arr, **kwargs)
    return p
