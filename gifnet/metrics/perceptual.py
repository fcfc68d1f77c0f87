"""Human-perception metrics: Chen-Blum Qcb and Chen-Varshney Qcv. Input conventions: :mod:`gifnet.metrics.core`.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft

from gifnet.metrics._matlab import (
    blocks_sum,
    filter2_same,
    freq_filter,
    freqspace_meshgrid,
    normalize1,
)

from ._memo import _memo

_GAUSS31 = {}


def _gauss31(sigma: float) -> np.ndarray:
    if sigma not in _GAUSS31:
        ax = np.arange(-15, 16, dtype=np.float64)
        xx, yy = np.meshgrid(ax, ax)
        _GAUSS31[sigma] = np.exp(-(xx * xx + yy * yy) / (2 * sigma * sigma)) / (2 * np.pi * sigma * sigma)
    return _GAUSS31[sigma]


def _same_fft_pair(x: np.ndarray, k1: np.ndarray, k2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """'same' zero-padded filtering of ``x`` with two symmetric kernels of equal size (FFT)."""
    m, n = x.shape
    kh, kw = k1.shape
    sh = (sfft.next_fast_len(m + kh - 1, real=True), sfft.next_fast_len(n + kw - 1, real=True))
    xf = sfft.rfft2(x, sh)
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    outs = []
    for k in (k1, k2):
        y = sfft.irfft2(xf * sfft.rfft2(k, sh), sh)
        outs.append(y[ph : ph + m, pw : pw + n])
    return outs[0], outs[1]


def qcb(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Qcb (Chen & Blum), Liu's ``metricChenBlum.m`` as in VIFB (real part of the FFT filtering)."""
    hang, lie = a.shape
    u, v = freqspace_meshgrid(hang, lie)
    r = np.sqrt((lie / 30.0 * u) ** 2 + (hang / 30.0 * v) ** 2)
    f0, f1, aa = 15.3870, 1.3456, 0.7622
    sd_ = np.exp(-((r / f0) ** 2)) - aa * np.exp(-((r / f1) ** 2))
    g1, g2 = _gauss31(2.0), _gauss31(4.0)
    k, h, p, q, z = 1.0, 1.0, 3.0, 2.0, 1e-4

    def masked_contrast(x):
        xt = freq_filter(normalize1(x), sd_)
        b1, b2 = _same_fft_pair(xt, g1, g2)
        c = np.abs(b1 / b2 - 1.0)
        c2 = c * c
        return k * (c2 * c) / (h * c2 + z)

    assert p == 3.0 and q == 2.0
    ca, cb = _memo("qcb", a, masked_contrast), _memo("qcb", b, masked_contrast)
    cf = masked_contrast(f)
    with np.errstate(divide="ignore", invalid="ignore"):
        qaf = np.where(ca < cf, ca / cf, cf / ca)
        qbf = np.where(cb < cf, cb / cf, cf / cb)
        lam_a = ca * ca / (ca * ca + cb * cb)
        lam_b = cb * cb / (ca * ca + cb * cb)
    return float(np.mean(lam_a * qaf + lam_b * qbf))


def qcv(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Qcv (Chen & Varshney), Liu's ``metricChen.m`` as in VIFB; lower is better.

    Blocks are 16x16 with zero padding (``blkproc``), so partial blocks are divided by 256.
    """
    a, b, f = normalize1(a), normalize1(b), normalize1(f)
    flt1 = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    flt2 = np.array([[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]])
    alpha, ws = 5, 16

    def sal(x):
        gx = filter2_same(x, flt1)
        gy = filter2_same(x, flt2)
        g2 = gx * gx + gy * gy
        return blocks_sum(g2 * g2 * np.sqrt(g2), ws) if alpha == 5 else blocks_sum(np.sqrt(g2) ** alpha, ws)

    hang, lie = a.shape
    u, v = freqspace_meshgrid(hang, lie)
    r = np.sqrt((lie / 8.0 * u) ** 2 + (hang / 8.0 * v) ** 2)
    theta_m = 2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1))
    la, lb = _memo("qcv", a, sal), _memo("qcv", b, sal)
    da = blocks_sum(freq_filter(a - f, theta_m) ** 2, ws) / (ws * ws)
    db = blocks_sum(freq_filter(b - f, theta_m) ** 2, ws) / (ws * ws)
    return float(np.sum(la * da + lb * db) / np.sum(la + lb))


