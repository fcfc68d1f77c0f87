"""Edge-preservation metrics: Xydeas-Petrovic Qabf, Q_G, and the artefact measures Nabf / Labf. Input conventions:
:mod:`gifnet.metrics.core`.
"""

from __future__ import annotations

import numpy as np

from gifnet.metrics._matlab import (
    SOBEL_X,
    SOBEL_Y,
    conv2_same,
    conv3x3_same_matlab_order,
    filter2_same,
    filter2_valid,
)

from ._memo import _memo


def qabf(a: np.ndarray, b: np.ndarray, f: np.ndarray, matlab_order: bool = False) -> float:
    """Qabf (Xydeas-Petrovic) as in VIFB/Tang ``Qabf.m``.

    True 3x3 Sobel convolution ('same', zero padding), ``atan`` orientation, tie rule G = g_F when
    g_A == g_F, weights g (L = 1). Not scale-invariant at ties: pass data on the scale the reference
    uses (0-255 for VIFB, [0, 1] for legacy Tang with ``matlab_order=True``).
    """
    tg, kg, dg = 0.9994, -15.0, 0.5
    ta, ka, da = 0.9879, -22.0, 0.8
    conv = conv3x3_same_matlab_order if matlab_order else conv2_same

    def edges(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sx = conv(x, SOBEL_X)
        sy = conv(x, SOBEL_Y)
        gmag = np.sqrt(sx * sx + sy * sy)
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = np.where(sx == 0, np.pi / 2, np.arctan(sy / np.where(sx == 0, 1.0, sx)))
        return gmag, alpha

    tag = f"qabf{int(matlab_order)}"
    ga, aa = _memo(tag, a, edges)
    gb, ab = _memo(tag, b, edges)
    gf, af = edges(f)

    def q(gx: np.ndarray, ax: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            gxf = np.where(gx > gf, gf / gx, np.where(gx == gf, gf, gx / gf))
        axf = 1.0 - np.abs(ax - af) / (np.pi / 2)
        qg = tg / (1.0 + np.exp(kg * (gxf - dg)))
        qa = ta / (1.0 + np.exp(ka * (axf - da)))
        return qg * qa

    qaf, qbf = q(ga, aa), q(gb, ab)
    return float(np.sum(qaf * ga + qbf * gb) / np.sum(ga + gb))


def q_g(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Q_G: Liu's ``metricXydeas.m`` variant of Xydeas-Petrovic (mean of the per-pixel ratio)."""
    flt1 = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    flt2 = np.array([[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]])
    gamma, kg, dg, ka, da = 1.0, -10.0, 0.5, -20.0, 0.75

    def edges(x: np.ndarray):
        gx = filter2_same(x, flt1)
        gy = filter2_same(x, flt2)
        gmag = np.sqrt(gx * gx + gy * gy)
        gx = gx + (gx == 0) * 1e-5
        return gmag, np.arctan(gy / gx)

    ga, aa = edges(a)
    gb, ab = edges(b)
    gf, af = edges(f)

    def q(gx, ax):
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(gx > gf, gf / gx, np.where(gx == gf, 1.0, gx / gf))
            g = np.nan_to_num(g, nan=1.0)
        a_ = np.abs(np.abs(ax - af) - np.pi / 2) * 2 / np.pi
        qg = gamma / (1 + np.exp(kg * (g - dg)))
        qa = gamma / (1 + np.exp(ka * (a_ - da)))
        return qg * qa

    qaf, qbf = q(ga, aa), q(gb, ab)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (qaf * ga + qbf * gb) / (ga + gb)
    r = r[np.isfinite(r)]
    return float(np.mean(r))


def _nabf_terms(a: np.ndarray, b: np.ndarray, f: np.ndarray):
    hv = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
    hh = np.array([[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]]) / 8.0

    def edges(x):
        xp = np.pad(x, 1, mode="reflect")
        gv = filter2_valid(xp, hv)
        gh = filter2_valid(xp, hh)
        g = np.sqrt(gh * gh + gv * gv)
        with np.errstate(divide="ignore", invalid="ignore"):
            al = np.where((gh == 0) & (gv == 0), 0.0, np.arctan(gv / gh))
        al = np.nan_to_num(al)
        return g, al

    ga, aa = edges(a)
    gb, ab = edges(b)
    gf, af = edges(f)

    def q(gx, ax):
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where((gx == 0) | (gf == 0), 0.0, np.minimum(gx, gf) / np.maximum(gx, gf))
        a_ = np.abs(np.abs(ax - af) - np.pi / 2) * 2 / np.pi
        qg = 0.9999 / (1 + np.exp(-19 * (g - 0.5)))
        qa = 0.9995 / (1 + np.exp(-22 * (a_ - 0.5)))
        return np.sqrt(qg * qa)

    qaf, qbf = q(ga, aa), q(gb, ab)
    wa = np.where(ga >= 2, ga**1.5, 0.001)
    wb = np.where(gb >= 2, gb**1.5, 0.001)
    return ga, gb, gf, qaf, qbf, wa, wb


def nabf(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Nabf (Shreyamsha Kumar's modified N^{AB/F}, METRICS.md 2.11), lower is better, in its defining argument
    order (sources A, B, fused F) on 0-255 data: the share of edge strength where F has edges stronger than both
    sources (artefacts). This is the ``standard`` definition; :func:`nabf_tang` is the Tang toolbox's call."""
    ga, gb, gf, qaf, qbf, wa, wb = _nabf_terms(a, b, f)
    na = (gf > ga) & (gf > gb)
    return float(np.sum(na * ((1 - qaf) * wa + (1 - qbf) * wb)) / np.sum(wa + wb))


def nabf_tang(ir: np.ndarray, vis: np.ndarray, f: np.ndarray) -> float:
    """Nabf as Tang's toolbox computes it: ``analysis_nabf(IR, VIS, F)`` on 0-255, a function whose arguments
    are (fused, A, B). The infrared image therefore plays the fused image: :func:`nabf` ``(VIS, F, IR)``.
    Reproduces the toolbox's values (``metrics_golden/tno_tang_extra``); not Kumar's definition."""
    return nabf(vis, f, ir)


def labf(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """L^{AB/F} (information loss) from Kumar's function, lower is better."""
    ga, gb, gf, qaf, qbf, wa, wb = _nabf_terms(a, b, f)
    r = (gf <= ga) | (gf <= gb)
    return float(np.sum(r * ((1 - qaf) * wa + (1 - qbf) * wb)) / np.sum(wa + wb))


