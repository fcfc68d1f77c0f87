"""NumPy/SciPy equivalents of the MATLAB building blocks used by the reference metric toolboxes.

Every helper reproduces the MATLAB/Octave behaviour documented in METRICS.md section 0 (rounding,
padding, kernel construction). They operate on float64 arrays unless stated otherwise.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

EPS = np.finfo(np.float64).eps
RGB2GRAY_COEFFS = (0.298936021293775, 0.587043074451121, 0.114020904255103)

SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
SOBEL_Y = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])


def round_half_away(x: np.ndarray | float) -> np.ndarray:
    """MATLAB ``round``: round half away from zero."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """MATLAB ``uint8(x)``: round half away from zero, then saturate to [0, 255] (returned as float64)."""
    return np.clip(round_half_away(x), 0.0, 255.0)


def rgb2gray(img: np.ndarray, rounded: bool | None = None) -> np.ndarray:
    """MATLAB ``rgb2gray``.

    Args:
        img: HxWx3 array.
        rounded: round to integers (MATLAB behaviour for uint8 input). ``None`` = round when ``img`` is uint8.

    Returns:
        HxW float64 array.
    """
    if rounded is None:
        rounded = img.dtype == np.uint8
    x = np.asarray(img, dtype=np.float64)
    g = x[..., 0] * RGB2GRAY_COEFFS[0] + x[..., 1] * RGB2GRAY_COEFFS[1] + x[..., 2] * RGB2GRAY_COEFFS[2]
    return to_uint8(g) if rounded else g


def fspecial_gaussian(n: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', n, sigma)`` (normalised, tiny entries zeroed)."""
    ax = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    xx, yy = np.meshgrid(ax, ax)
    h = np.exp(-(xx * xx + yy * yy) / (2.0 * sigma * sigma))
    h[h < EPS * h.max()] = 0.0
    return h / h.sum()


def gaussian_1d(n: int, sigma: float) -> np.ndarray:
    """1-D factor ``g`` with ``outer(g, g) == fspecial_gaussian(n, sigma)`` (when no entry is zeroed)."""
    ax = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    g = np.exp(-(ax * ax) / (2.0 * sigma * sigma))
    return g / g.sum()


def filter2_valid_sep(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``filter2(outer(g, g), x, 'valid')`` for a separable symmetric kernel (fast path)."""
    n = g.size
    h = n // 2
    y = ndimage.correlate1d(x, g, axis=0, mode="constant")
    y = ndimage.correlate1d(y, g, axis=1, mode="constant")
    r0 = h
    r1 = x.shape[0] - (n - 1 - h)
    c1 = x.shape[1] - (n - 1 - h)
    return y[r0:r1, h:c1]


def filter2_valid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(w, x, 'valid')`` = 2-D correlation, valid part (any kernel)."""
    kh, kw = w.shape
    out = np.zeros((x.shape[0] - kh + 1, x.shape[1] - kw + 1))
    for a in range(kh):
        for b in range(kw):
            if w[a, b] != 0.0:
                out += w[a, b] * x[a : a + out.shape[0], b : b + out.shape[1]]
    return out


def filter2_same(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(w, x, 'same')``: correlation with zero padding, output the size of ``x``."""
    kh, kw = w.shape
    if kh % 2 == 1 and kw % 2 == 1:
        return ndimage.correlate(np.asarray(x, dtype=np.float64), w, mode="constant", cval=0.0)
    pt, pl = (kh - 1) // 2, (kw - 1) // 2
    xp = np.pad(x, ((pt, kh - 1 - pt), (pl, kw - 1 - pl)))
    return filter2_valid(xp, w)


def conv2_same(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """MATLAB ``conv2(x, h, 'same')`` (true convolution, zero padding)."""
    return filter2_same(x, h[::-1, ::-1]) if h.shape[0] % 2 == 1 else _conv2_same_even(x, h)


def _conv2_same_even(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    from scipy.signal import convolve2d

    return convolve2d(x, h, mode="same")


def conv3x3_same_matlab_order(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """3x3 ``conv2(x, k, 'same')`` accumulated in MATLAB's order (outer loop kernel columns, inner rows).

    Needed for bit-exact legacy Tang Qabf on [0, 1] data, where the tie test ``g_A == g_F`` depends on
    the floating-point summation order (METRICS.md section 4.2).
    """
    m, n = x.shape
    xp = np.pad(x, 1)
    acc = np.zeros((m, n))
    for b in range(3):
        for a in range(3):
            # acc(i, j) += k[a, b] * x[i + 1 - a, j + 1 - b]  ->  padded index (i + 2 - a, j + 2 - b)
            acc = acc + k[a, b] * xp[2 - a : 2 - a + m, 2 - b : 2 - b + n]
    return acc


def freqspace_meshgrid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``[u, v] = freqspace([h w], 'meshgrid')``."""
    u = (np.arange(w) - np.floor(w / 2.0)) * 2.0 / w
    v = (np.arange(h) - np.floor(h / 2.0)) * 2.0 / h
    return np.meshgrid(u, v)


def freq_filter(x: np.ndarray, centred_response: np.ndarray) -> np.ndarray:
    """``real(ifft2(ifftshift(fftshift(fft2(x)) .* S)))`` with ``S`` given on the centred grid."""
    s = np.fft.ifftshift(centred_response)
    if _is_even_response(s):
        # real, even response: the real part of the full inverse equals the half-spectrum inverse
        return sfft.irfft2(sfft.rfft2(x) * s[:, : x.shape[1] // 2 + 1], x.shape)
    return sfft.ifft2(sfft.fft2(x) * s).real


def _is_even_response(s: np.ndarray) -> bool:
    """True if ``s[k] == s[-k mod n]`` along both axes (then the filter maps real input to real output)."""
    r = np.roll(s[::-1, ::-1], 1, axis=(0, 1))
    return bool(np.array_equal(r, s))


def normalize1(x: np.ndarray) -> np.ndarray:
    """Liu's ``normalize1``: min-max stretch to integers 0..255 (unchanged if max = min = 0)."""
    x = np.asarray(x, dtype=np.float64)
    hi, lo = x.max(), x.min()
    if hi == 0 and lo == 0:
        return x
    return round_half_away((x - lo) / (hi - lo) * 255.0)


def blocks_sum(x: np.ndarray, size: int = 16) -> np.ndarray:
    """Per-block sums after zero-padding ``x`` at right/bottom to multiples of ``size`` (``blkproc``)."""
    m, n = x.shape
    pm, pn = -m % size, -n % size
    xp = np.pad(x, ((0, pm), (0, pn)))
    return xp.reshape(xp.shape[0] // size, size, xp.shape[1] // size, size).sum(axis=(1, 3))


def hist256(x: np.ndarray) -> np.ndarray:
    """256-bin histogram of integer-valued data in 0..255 (values are floored)."""
    idx = np.floor(x).astype(np.int64).ravel()
    return np.bincount(idx, minlength=256).astype(np.float64)


def joint_hist256(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """256x256 joint histogram, ``h[x, y]`` for integer data 0..255."""
    xi = x.astype(np.int64).ravel()
    yi = y.astype(np.int64).ravel()
    return np.bincount(xi * 256 + yi, minlength=65536).reshape(256, 256).astype(np.float64)


def entropy_from_counts(h: np.ndarray, log=np.log2) -> float:
    """Shannon entropy of a histogram (any shape), skipping empty bins."""
    p = h[h > 0] / h.sum()
    return float(-np.sum(p * log(p)))
