"""The VIF family: pixel-domain VIF (VIFp) and Han's VIFF. Input conventions: :mod:`gifnet.metrics.core`.
"""

from __future__ import annotations

import numpy as np

from gifnet.metrics._matlab import (
    filter2_valid_sep,
    gaussian_1d,
)


def _vif_scales(ref: np.ndarray, dist: np.ndarray, sigma_nsq: float, saturate_uint8: bool = False):
    """Per-scale (g, num map, den map) of Sheikh & Bovik's pixel VIF with 'valid' filtering."""
    out = []
    for scale in range(1, 5):
        n = 2 ** (5 - scale) + 1
        g = gaussian_1d(n, n / 5.0)
        if scale > 1:
            ref = filter2_valid_sep(ref, g)[0::2, 0::2]
            dist = filter2_valid_sep(dist, g)[0::2, 0::2]
        mu1 = filter2_valid_sep(ref, g)
        mu2 = filter2_valid_sep(dist, g)
        rr, dd, rd = ref * ref, dist * dist, ref * dist
        if saturate_uint8 and scale == 1:
            rr, dd, rd = np.minimum(rr, 255.0), np.minimum(dd, 255.0), np.minimum(rd, 255.0)
        s1 = filter2_valid_sep(rr, g) - mu1 * mu1
        s2 = filter2_valid_sep(dd, g) - mu2 * mu2
        s12 = filter2_valid_sep(rd, g) - mu1 * mu2
        s1[s1 < 0] = 0.0
        s2[s2 < 0] = 0.0
        gg = s12 / (s1 + 1e-10)
        sv = s2 - gg * s12
        m = s1 < 1e-10
        gg[m] = 0.0
        sv[m] = s2[m]
        s1[m] = 0.0
        m = s2 < 1e-10
        gg[m] = 0.0
        sv[m] = 0.0
        m = gg < 0
        sv[m] = s2[m]
        gg[m] = 0.0
        sv[sv <= 1e-10] = 1e-10
        num = np.log10(1.0 + gg * gg * s1 / (sv + sigma_nsq))
        den = np.log10(1.0 + s1 / sigma_nsq)
        out.append((gg, num, den))
    return out


def vifp(ref: np.ndarray, dist: np.ndarray, saturate_uint8: bool = False) -> float:
    """VIFp(ref, dist): Sheikh & Bovik multiscale pixel VIF, sigma_n^2 = 2, 'valid' filtering.

    Args:
        saturate_uint8: legacy Tang behaviour (uint8 inputs): scale-1 products saturate at 255.
    """
    num = den = 0.0
    for _, nm, dn in _vif_scales(ref, dist, 2.0, saturate_uint8):
        num += float(np.sum(nm))
        den += float(np.sum(dn))
    return num / den


def vif(a: np.ndarray, b: np.ndarray, f: np.ndarray, saturate_uint8: bool = False) -> float:
    """VIF of IVIF papers = VIFp(A, F) + VIFp(B, F) (sum)."""
    return vifp(a, f, saturate_uint8) + vifp(b, f, saturate_uint8)


def viff(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """VIFF (Han, Cai, Cao, Xu 2013; MEFB ``metricsVIF.m``) on gray/one-channel inputs, 0-1."""
    sq = 0.005 * 255 * 255
    c = 1e-7
    p = np.array([1.0, 0.0, 0.15, 1.0]) / 2.15
    s_a = _vif_scales(a, f, sq)
    s_b = _vif_scales(b, f, sq)
    fs = []
    for (g1, n1, d1), (g2, n2, d2) in zip(s_a, s_b):
        m = g1 < g2
        num = np.where(m, n1, n2)
        den = np.where(m, d1, d2)
        fs.append(np.sum(num + c) / np.sum(den + c))
    return float(np.sum(np.array(fs) * p))


