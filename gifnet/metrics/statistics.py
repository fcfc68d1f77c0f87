"""Statistics of the fused image (SD, SF, AG, EI) and reference metrics against the sources (CC, SCD, MSE, PSNR, RMSE in
each toolbox's convention). Input conventions: :mod:`gifnet.metrics.core`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from gifnet.metrics._matlab import (
    to_uint8,
)

# --- Statistics of the fused image


def sd(f: np.ndarray) -> float:
    """SD: population standard deviation sqrt(mean((F - mean F)^2))."""
    return float(np.sqrt(np.mean((f - f.mean()) ** 2)))


def sd_uint8_legacy(f: np.ndarray) -> float:
    """Legacy Tang SD computed in saturating uint8 arithmetic (METRICS.md 4.2; at most sqrt(255))."""
    d = to_uint8(f - f.mean())
    return float(np.sqrt(np.sum(np.minimum(d * d, 255.0)) / f.size))


def sf(f: np.ndarray, normalisation: str = "mn") -> float:
    """SF (spatial frequency).

    Args:
        normalisation: ``"mn"`` (VIFB/MEFB: both squared-difference sums divided by M*N) or ``"counts"``
            (Tang: each divided by its number of differences).
    """
    rf = np.sum(np.diff(f, axis=1) ** 2)
    cf = np.sum(np.diff(f, axis=0) ** 2)
    m, n = f.shape
    if normalisation == "mn":
        return float(np.sqrt((rf + cf) / (m * n)))
    if normalisation == "counts":
        return float(np.sqrt(rf / (m * (n - 1)) + cf / ((m - 1) * n)))
    raise ValueError("normalisation must be 'mn' or 'counts'")


def ag(f: np.ndarray) -> float:
    """AG: sum of sqrt((Gx^2 + Gy^2)/2) over all pixels / ((M-1)(N-1)), MATLAB ``gradient``."""
    gy, gx = np.gradient(f)
    m, n = f.shape
    return float(np.sum(np.sqrt((gx * gx + gy * gy) / 2.0)) / ((m - 1) * (n - 1)))


def ei(f: np.ndarray) -> float:
    """EI: mean Sobel magnitude, ``imfilter(F, fspecial('sobel'), 'replicate')``; works on 2-D or 3-D."""
    s = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])
    if f.ndim == 3:
        return float(np.mean(np.stack([_ei_map(f[..., k], s) for k in range(f.shape[2])], axis=-1)))
    return float(np.mean(_ei_map(f, s)))


def _ei_map(f: np.ndarray, s: np.ndarray) -> np.ndarray:
    gx = ndimage.correlate(f, s, mode="nearest")
    gy = ndimage.correlate(f, s.T, mode="nearest")
    return np.sqrt(gx * gx + gy * gy)


# --- Correlation metrics


def corr2(x: np.ndarray, y: np.ndarray) -> float:
    """MATLAB ``corr2`` (Pearson correlation of two arrays)."""
    xd = x - x.mean()
    yd = y - y.mean()
    return float(np.sum(xd * yd) / np.sqrt(np.sum(xd * xd) * np.sum(yd * yd)))


def cc(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """CC = (r(A,F) + r(B,F))/2."""
    return 0.5 * (corr2(a, f) + corr2(b, f))


def scd(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """SCD (Aslantas & Bendes) = corr2(F - B, A) + corr2(F - A, B)."""
    return corr2(f - b, a) + corr2(f - a, b)


# --- Error / PSNR conventions


def mse(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Standard fusion MSE: (mean((F-A)^2) + mean((F-B)^2))/2 on the given scale."""
    return 0.5 * (float(np.mean((f - a) ** 2)) + float(np.mean((f - b) ** 2)))


def psnr(a: np.ndarray, b: np.ndarray, f: np.ndarray, peak: float = 255.0) -> float:
    """Standard fusion PSNR = 10 log10(peak^2 / MSE) (0-255 data)."""
    return float(10.0 * np.log10(peak * peak / mse(a, b, f)))


def rmse(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Standard RMSE = sqrt(MSE) (0-255)."""
    return float(np.sqrt(mse(a, b, f)))


def rmse_vifb(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """VIFB ``Rmse``: per source sqrt(sum((X-F)^2))/(M N), averaged over the two sources."""
    n = f.size
    return 0.5 * (float(np.sqrt(np.sum((a - f) ** 2))) / n + float(np.sqrt(np.sum((b - f) ** 2))) / n)


def psnr_vifb(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """VIFB/MEFB ``Psnr`` = 20 log10(255 / sqrt(RMSE_vifb))."""
    return float(20.0 * np.log10(255.0 / np.sqrt(rmse_vifb(a, b, f))))


def mse_tang(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Tang MSE: standard MSE on [0, 1] data (inputs given on 0-255)."""
    return mse(a / 255.0, b / 255.0, f / 255.0)


def psnr_tang(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Tang PSNR = 20 log10(255 / sqrt(MSE on [0, 1])) (= standard PSNR + 48.13 dB)."""
    return float(20.0 * np.log10(255.0 / np.sqrt(mse_tang(a, b, f))))


