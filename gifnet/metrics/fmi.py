"""Haghighat's fast feature mutual information (FMI) with MATLAB's Sobel edge and DCT features. Input conventions:
:mod:`gifnet.metrics.core`.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import fft as sfft
from scipy import ndimage


def matlab_edge_sobel(x: np.ndarray) -> np.ndarray:
    """Approximation of MATLAB ``edge(X)`` (Sobel, automatic threshold, directional thinning).

    Follows the documented algorithm (gradients with the /8 Sobel kernels, cut-off
    sqrt(4 mean(b)) on b = gx^2 + gy^2, thinning by comparison with the neighbours along the dominant
    gradient direction); written by hand, not verified against MATLAB numbers.
    """
    k = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]) / 8.0
    by = ndimage.correlate(x, k, mode="nearest")
    bx = ndimage.correlate(x, k.T, mode="nearest")
    bmag = bx * bx + by * by
    cutoff = 4.0 * bmag.mean()
    left = np.concatenate([bmag[:, :1], bmag[:, :-1]], axis=1)
    right = np.concatenate([bmag[:, 1:], bmag[:, -1:]], axis=1)
    up = np.concatenate([bmag[:1], bmag[:-1]], axis=0)
    down = np.concatenate([bmag[1:], bmag[-1:]], axis=0)
    horiz = (np.abs(bx) >= np.abs(by)) & (bmag >= left) & (bmag > right)
    vert = (np.abs(by) >= np.abs(bx)) & (bmag >= up) & (bmag > down)
    e = (bmag > cutoff) & (horiz | vert)
    e[[0, -1], :] = False
    e[:, [0, -1]] = False
    return e.astype(np.float64)


def _dct2(x: np.ndarray) -> np.ndarray:
    return sfft.dctn(x, type=2, norm="ortho")


def _fmi_features(x: np.ndarray, feature: str) -> np.ndarray:
    if feature == "none":
        return x
    if feature == "gradient":
        return np.gradient(x)[1]  # MATLAB gradient(X) with one output = d/dcol
    if feature == "edge":
        return matlab_edge_sobel(x)
    if feature == "dct":
        return _dct2(x)
    if feature == "wavelet":
        try:
            import pywt
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("FMI with wavelet features needs PyWavelets (pip install PyWavelets)") from exc
        ca, (ch, cv, cd) = pywt.dwt2(x, "dmey", mode="periodization")
        t = np.block([[ca, ch], [cv, cd]])
        return (t - t.min()) / (t.max() - t.min())
    raise ValueError(f"unknown FMI feature {feature!r}; valid: none, gradient, edge, dct, wavelet")


def _fmi_side(w: np.ndarray) -> tuple[np.ndarray, ...]:
    """One image's part of FMI for a batch of windows ``w`` (L × K: a window per column, L = w*w positions):
    the normalised window (min 0, sum 1; constant windows uniform), its CDF, centred values and their sum of
    squares, the standard deviation of the position under it and its entropy (bits)."""
    lo = w.min(axis=0)
    hi = w.max(axis=0)
    const = hi == lo
    p = np.where(const, 1.0, (w - lo) / np.where(const, 1.0, hi - lo))
    p = p / p.sum(axis=0)
    pt = p - p.mean(axis=0)
    idx = np.arange(1, w.shape[0] + 1, dtype=np.float64)[:, None]
    sd = np.sqrt(np.maximum(np.sum(idx**2 * p, axis=0) - np.sum(idx * p, axis=0) ** 2, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.sum(np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0), axis=0)
    return p, np.cumsum(p, axis=0), pt, np.sum(pt * pt, axis=0), sd, h


def _fmi_pair(xw: np.ndarray, fw: np.ndarray, xs: tuple[np.ndarray, ...], fs: tuple[np.ndarray, ...]) -> np.ndarray:
    """FMI_XF of a batch of windows (``xw``, ``fw``: L × K, a window per column; ``xs``, ``fs``: their
    :func:`_fmi_side`). Windows run along the last, contiguous axis so that every L × L array operation is one
    vectorised loop over the batch (1.6× the speed of a window per row, the same values)."""
    p, pc, pt, pp, psd, hp = xs
    q, qc_, qt, qq, qsd, hq = fs
    l_ = p.shape[0]
    same = np.all(xw == fw, axis=0)
    sxy = np.sum(pt * qt, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(sxy == 0, 0.0, sxy / np.sqrt(pp * qq))
    # bivariate bounds on CDFs: F_i (fused, axis 0) and A_j (source, axis 1)
    fi = qc_[:, None, :]
    aj = pc[None, :, :]
    up = np.minimum(fi, aj)
    lo = np.maximum(fi + aj - 1.0, 0.0)
    prod = fi * aj
    cov_up = np.sum(up - prod, axis=(0, 1))
    cov_lo = np.sum(lo - prod, axis=(0, 1))
    sdp = qsd * psd
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where((c == 0) | (sdp == 0), 0.0, c / (cov_up / sdp))
        theta = np.where(sdp == 0, 0.0, c / (cov_lo / sdp))
    pos = c >= 0
    wgt = np.where(pos, phi, theta)
    # joint PDF: finite differences of the bound CDF
    bpad = np.zeros((l_ + 1, l_ + 1, p.shape[1]))
    bpad[1:, 1:] = np.where(pos, up, lo)
    jb = bpad[1:, 1:] - bpad[:-1, 1:] - bpad[1:, :-1] + bpad[:-1, :-1]
    jpdf = wgt * jb + (1 - wgt) * q[:, None, :] * p[None, :, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(jpdf > 0, -jpdf * np.log2(np.where(jpdf > 0, jpdf, 1.0)), 0.0)
        mi_ = hp + hq - terms.sum(axis=(0, 1))
        res = np.where(mi_ == 0, 0.0, 2 * mi_ / (hp + hq))
    return np.where(same, 1.0, res)


def _fmi_map(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> np.ndarray:
    """``(FMI_AF + FMI_BF) / 2`` of a batch of windows (L × K each, a window per column); the fused image's part
    is computed once for both sources."""
    fs = _fmi_side(f)
    return (_fmi_pair(a, f, _fmi_side(a), fs) + _fmi_pair(b, f, _fmi_side(b), fs)) / 2.0


def fmi(a: np.ndarray, b: np.ndarray, f: np.ndarray, feature: str = "none", w: int = 3) -> float:
    """FMI (Haghighat & Razian fast FMI) with features ``none|gradient|edge|dct|wavelet``.

    Sliding w x w windows over valid positions; map = (FMI_AF + FMI_BF)/2; score = mean. Note the
    reference code's default is ``edge`` (Tang's "FMI_pixel" and MEFB's "FMI" are edge-based).
    Vectorised re-implementation of ``fmi.m``; negative-correlation windows use the lower Frechet
    bound (the reference's jpdf of the negative-c branch is ``jpdf`` from the lower bound).
    """
    fa, fb, ff = (_fmi_features(np.asarray(x, dtype=np.float64), feature) for x in (a, b, f))
    # MATLAB linear indexing is column-major inside the window: reorder positions accordingly; one window per
    # column (the layout _fmi_pair computes in), built once per image
    order = np.arange(w * w).reshape(w, w).T.ravel()
    va, vb, vf = (np.ascontiguousarray(sliding_window_view(x, (w, w)).reshape(-1, w * w)[:, order].T)
                  for x in (fa, fb, ff))  # fmt: skip
    n = va.shape[1]
    total = 0.0
    chunk, sub = 20000, 1024  # windows per partial sum / per vectorised batch (its w^2 x w^2 x K arrays fit in L2)
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        m = np.concatenate([_fmi_map(va[:, i : min(i + sub, e)], vb[:, i : min(i + sub, e)], vf[:, i : min(i + sub, e)])
                            for i in range(s, e, sub)])  # fmt: skip
        total += float(np.sum(m))
    return total / n
