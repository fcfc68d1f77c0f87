"""The SSIM family: SSIM, MS-SSIM, MEF-SSIM, Yang's Qy, Cvejic's Qc (with their round-off bounds) and Piella's Q_S, Q_W,
Q_E. Input conventions: :mod:`gifnet.metrics.core`.
"""

from __future__ import annotations

import numpy as np

from gifnet.metrics._matlab import (
    EPS,
    filter2_same,
    filter2_valid_sep,
    gaussian_1d,
)

_G11 = gaussian_1d(11, 1.5)
_G7 = gaussian_1d(7, 1.5)


#: Largest local (co)variance that is treated as round-off of a flat window (0-255 data). A window of
#: 8-bit data that is not flat has a true local variance of at least ~1e-6 (11x11 Gaussian, one corner
#: pixel off by one grey level; 1.3e-3 for the 7x7 window of Qy/Qc), while E[x^2] - E[x]^2 leaves at
#: most ~1e-9 of round-off in a flat one (2.2e-16 relative on values up to 255^2).
ROUNDOFF_VARIANCE = 1e-7


def ssim_maps(
    x: np.ndarray,
    y: np.ndarray,
    c1: float,
    c2: float,
    g: np.ndarray = _G11,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Wang's ``ssim_index`` on 'valid' windows with a separable Gaussian ``g``.

    Returns:
        (ssim_map, sigma_x^2, sigma_y^2, sigma_xy). With ``c1 = c2 = 0`` the guarded formula of the
        reference code is used.
    """
    return _ssim_from_stats(*_local_stats(x, y, g), c1, c2)


def _local_stats(x: np.ndarray, y: np.ndarray, g: np.ndarray):
    """Gaussian-window means, variances and covariance ('valid')."""
    mu1 = filter2_valid_sep(x, g)
    mu2 = filter2_valid_sep(y, g)
    s1 = filter2_valid_sep(x * x, g) - mu1 * mu1
    s2 = filter2_valid_sep(y * y, g) - mu2 * mu2
    s12 = filter2_valid_sep(x * y, g) - mu1 * mu2
    return mu1, mu2, s1, s2, s12


def _exact(stats):
    """:func:`_local_stats` with the (co)variances of flat windows set to their exact value 0 (variances below
    :data:`ROUNDOFF_VARIANCE`; a covariance is 0 where either variance is): the formula in exact arithmetic
    for 8-bit data instead of a ratio of round-off."""
    mu1, mu2, s1, s2, s12 = stats
    flat1, flat2 = s1 < ROUNDOFF_VARIANCE, s2 < ROUNDOFF_VARIANCE
    return mu1, mu2, np.where(flat1, 0.0, s1), np.where(flat2, 0.0, s2), np.where(flat1 | flat2, 0.0, s12)


def _ssim_from_stats(mu1, mu2, s1, s2, s12, c1: float, c2: float):
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    if c1 > 0 and c2 > 0:
        smap = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    else:
        n1, n2 = 2 * mu12 + c1, 2 * s12 + c2
        d1, d2 = mu1_sq + mu2_sq + c1, s1 + s2 + c2
        smap = np.ones_like(mu1)
        with np.errstate(divide="ignore", invalid="ignore"):
            idx = d1 * d2 > 0
            smap[idx] = (n1[idx] * n2[idx]) / (d1[idx] * d2[idx])
            idx = (d1 != 0) & (d2 == 0)
            smap[idx] = n1[idx] / d1[idx]
    return smap, s1, s2, s12


def ssim(x: np.ndarray, y: np.ndarray, k1: float = 0.01, k2: float = 0.03, data_range: float = 255.0) -> float:
    """Base SSIM (Wang 2004): Gaussian 11x11, sigma 1.5, 'valid', mean of the map."""
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    return float(np.mean(ssim_maps(x, y, c1, c2)[0]))


def ssim_sum(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """VIFB ``Ssim``: SSIM(A,F) + SSIM(B,F) (sum, range up to 2)."""
    return ssim(a, f) + ssim(b, f)


def ssim_mean(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Mean of the two base SSIMs, 0.5 (SSIM(F,A) + SSIM(F,B))."""
    return 0.5 * (ssim(f, a) + ssim(f, b))


def ms_ssim(x: np.ndarray, y: np.ndarray, data_range: float = 255.0) -> float:
    """Standard MS-SSIM (Wang 2003): 5 scales, 2x2 average down-sampling, base SSIM window/constants."""
    weights = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    vals = []
    for level in range(5):
        mu1 = filter2_valid_sep(x, _G11)
        mu2 = filter2_valid_sep(y, _G11)
        s1 = filter2_valid_sep(x * x, _G11) - mu1 * mu1
        s2 = filter2_valid_sep(y * y, _G11) - mu2 * mu2
        s12 = filter2_valid_sep(x * y, _G11) - mu1 * mu2
        cs = (2 * s12 + c2) / (s1 + s2 + c2)
        if level < 4:
            vals.append(float(np.mean(cs)))
            x, y = _down2(x), _down2(y)
        else:
            lum = (2 * mu1 * mu2 + c1) / (mu1 * mu1 + mu2 * mu2 + c1)
            vals.append(float(np.mean(lum * cs)))
    vals_arr = np.maximum(np.array(vals), 0.0)
    return float(np.prod(vals_arr**weights))


def _down2(x: np.ndarray) -> np.ndarray:
    m, n = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    x = x[:m, :n]
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def ms_ssim_mean(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Mean of the standard MS-SSIM of F against each source."""
    return 0.5 * (ms_ssim(f, a) + ms_ssim(f, b))


def _box_valid(x: np.ndarray, n: int) -> np.ndarray:
    """Mean over every n x n window ('valid'), via cumulative sums."""
    c = np.cumsum(np.cumsum(np.pad(x, ((1, 0), (1, 0))), axis=0), axis=1)
    s = c[n:, n:] - c[:-n, n:] - c[n:, :-n] + c[:-n, :-n]
    return s / (n * n)


def mef_ssim(sources: list[np.ndarray], f: np.ndarray, k: float = 0.03, return_map: bool = False):
    """MEF-SSIM (Ma, Zeng, Wang 2015), vectorised re-implementation of ``mef_ssim.m``.

    Args:
        sources: list of 2-D source images (0-255).
        f: fused image (0-255).
    """
    w = 11
    n = w * w
    g = _G11
    xs = [np.asarray(s, dtype=np.float64) for s in sources]
    mus = [_box_valid(x, w) for x in xs]
    # sum of squared deviations within each patch, sum_p (x - mu)^2 = n (E[x^2] - mu^2)
    ssd = [np.maximum(n * (_box_valid(x * x, w) - mu * mu), 0.0) for x, mu in zip(xs, mus)]
    eds = [np.sqrt(v) + 0.001 for v in ssd]
    tot = sum(xs)
    mu_tot = _box_valid(tot, w)
    num = np.sqrt(np.maximum(n * (_box_valid(tot * tot, w) - mu_tot * mu_tot), 0.0))
    den = sum(np.sqrt(v) for v in ssd)
    r = (num + EPS) / (den + EPS)
    r = np.where(r > 1, 1 - EPS, r)
    r = np.where(r < 0, EPS, r)
    p = np.minimum(np.tan(np.pi / 2 * r), 10.0)
    wmap = [(ed / w) ** p + EPS for ed in eds]
    norm = sum(wmap)
    wmap = [wm / norm for wm in wmap]
    max_ed = np.maximum.reduce(eds)
    # coefficients c_k: rBlock = sum_k c_k (x_k - mu_k)
    cs = [wm / ed for wm, ed in zip(wmap, eds)]
    # ||rBlock||^2 = sum_kl c_k c_l n (E[x_k x_l] - mu_k mu_l)
    k_ = len(xs)
    cross_u = {}
    for i in range(k_):
        for j in range(i, k_):
            cross_u[i, j] = n * (_box_valid(xs[i] * xs[j], w) - mus[i] * mus[j])
    rn2 = np.zeros_like(r)
    for i in range(k_):
        for j in range(k_):
            rn2 += cs[i] * cs[j] * cross_u[min(i, j), max(i, j)]
    rn = np.sqrt(np.maximum(rn2, 0.0))
    scale = np.where(rn > 0, max_ed / np.where(rn > 0, rn, 1.0), 1.0)
    a = [c * scale for c in cs]
    # Gaussian-weighted statistics of rBlock and fBlock over the patch (window sums to 1)
    gx = [filter2_valid_sep(x, g) for x in xs]
    gf = filter2_valid_sep(f, g)
    mu1 = sum(a[i] * (gx[i] - mus[i]) for i in range(k_))
    e_r2 = np.zeros_like(r)
    for i in range(k_):
        for j in range(k_):
            gxx = filter2_valid_sep(xs[i] * xs[j], g)
            e_r2 += a[i] * a[j] * (gxx - mus[j] * gx[i] - mus[i] * gx[j] + mus[i] * mus[j])
    s1 = e_r2 - mu1 * mu1
    s2 = filter2_valid_sep(f * f, g) - gf * gf
    e_rf = sum(a[i] * (filter2_valid_sep(xs[i] * f, g) - mus[i] * gf) for i in range(k_))
    s12 = e_rf - mu1 * gf
    c = (k * 255.0) ** 2
    qmap = (2 * s12 + c) / (s1 + s2 + c)
    return (float(np.mean(qmap)), qmap) if return_map else float(np.mean(qmap))


def _down2_symmetric(x: np.ndarray) -> np.ndarray:
    """``imfilter(x, ones(2)/4, 'symmetric', 'same')`` followed by ``(1:2:end, 1:2:end)``."""
    xp = np.pad(x, ((0, 1), (0, 1)), mode="symmetric")
    y = (xp[:-1, :-1] + xp[1:, :-1] + xp[:-1, 1:] + xp[1:, 1:]) / 4.0
    return y[0::2, 0::2]


def mef_ms_ssim(sources: list[np.ndarray], f: np.ndarray, levels: int = 3) -> float:
    """MEF-MS-SSIM (Ma's ``mef_ms_ssim.m``): 3 levels, weights [0.0448 0.2856 0.3001] renormalised."""
    weights = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])[:levels]
    weights = weights / weights.sum()
    q = []
    xs = [np.asarray(s, dtype=np.float64) for s in sources]
    f = np.asarray(f, dtype=np.float64)
    for level in range(levels):
        q.append(mef_ssim(xs, f))
        if level < levels - 1:
            xs = [_down2_symmetric(x) for x in xs]
            f = _down2_symmetric(f)
    return float(np.prod(np.array(q) ** weights))


#: Liu's constants for Qy and Qc (``metricYang.m``, ``metricCvejic.m``; MEFB uses the same code).
C_LIU = 2e-16
#: Wang's SSIM constants on 0-255 data, (0.01 L)^2 and (0.03 L)^2: the well-conditioned choice.
C1_WANG, C2_WANG = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _nanmean(q: np.ndarray) -> float:
    """Mean over the windows that are not NaN (Liu's code drops them), NaN if none is left."""
    q = q[~np.isnan(q)]
    return float(np.mean(q)) if q.size else float("nan")


def _qy_map(stats_ab, stats_af, stats_bf, c1, c2, flat_lambda):
    s_ab, sa, sb, _ = _ssim_from_stats(*stats_ab, c1, c2)
    s_af = _ssim_from_stats(*stats_af, c1, c2)[0]
    s_bf = _ssim_from_stats(*stats_bf, c1, c2)[0]
    binm = s_ab >= 0.75
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = sa / (sa + sb)
    if flat_lambda is not None:
        lam = np.where(sa + sb == 0, flat_lambda, lam)
    with np.errstate(invalid="ignore"):  # as in metricYang.m: a NaN λ (or an Inf) drops the window either way
        return (lam * s_af + (1 - lam) * s_bf) * binm + np.maximum(s_af, s_bf) * ~binm


def _qc_map(stats_af, stats_bf, c1, c2, flat_mu):
    s_af, _, _, cov_af = _ssim_from_stats(*stats_af, c1, c2)
    s_bf, _, _, cov_bf = _ssim_from_stats(*stats_bf, c1, c2)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = cov_af / (cov_af + cov_bf)
    if flat_mu is not None:
        mu = np.where(cov_af + cov_bf == 0, flat_mu, mu)
    with np.errstate(invalid="ignore"):
        sim = mu * s_af + (1 - mu) * s_bf
        sim[mu < 0] = 0.0
        sim[mu > 1] = 1.0
    return sim, s_af, s_bf


def _unbounded_width(q_float: np.ndarray, q_exact: np.ndarray) -> np.ndarray:
    """Width of a window whose value is a ratio of round-off: at least 1 (a valid SSIM's size), more where
    this computation already strays further from the exact value; 1 where either side is NaN (dropped)."""
    with np.errstate(invalid="ignore"):
        d = np.abs(q_float - q_exact)
    return np.where(np.isnan(d), 1.0, np.maximum(d, 1.0))


def qy(a: np.ndarray, b: np.ndarray, f: np.ndarray, well_conditioned: bool = False) -> float:
    """Qy (Yang 2008): Gaussian 7x7 local SSIM; per window, if SSIM(A,B) >= 0.75,
    λ SSIM(A,F) + (1-λ) SSIM(B,F) with λ = σ_A²/(σ_A²+σ_B²), else max(SSIM(A,F), SSIM(B,F)); mean.

    ``well_conditioned=False``: Liu's ``metricYang.m`` (MEFB), C1 = C2 = 2e-16, NaN windows dropped. With
    such constants a window that is flat in two of the images is a ratio of filter round-off (values in the
    hundreds on saturated or black areas): :func:`qy_roundoff` bounds what round-off can change.

    ``well_conditioned=True``: Wang's SSIM constants (0.01·255)², (0.03·255)², flat windows' statistics
    exactly 0 and λ = 1/2 where both sources are flat: every window lies in [-1, 1] and no value depends
    on round-off (the ``standard`` convention).
    """
    stats = [_local_stats(x, y, _G7) for x, y in ((a, b), (a, f), (b, f))]
    if well_conditioned:
        return _nanmean(_qy_map(*map(_exact, stats), C1_WANG, C2_WANG, 0.5))
    return _nanmean(_qy_map(*stats, C_LIU, C_LIU, None))


def qy_roundoff(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> tuple[float, float]:
    """Liu's Qy and a bound on how far floating-point round-off can move it: ``(value, bound)``.

    Flat windows (local variance below :data:`ROUNDOFF_VARIANCE`) have (co)variances that are pure
    round-off. Where two of A, B, F are flat, a window's value is a ratio of round-off and can be anything
    (width :func:`_unbounded_width`); where only one is, it moves by ~1e-8 at most. The bound is the sum of
    the widths over the number of windows: the most the mean can change under another summation order.
    """
    stats = [_local_stats(x, y, _G7) for x, y in ((a, b), (a, f), (b, f))]
    q = _qy_map(*stats, C_LIU, C_LIU, None)
    fa, fb = stats[0][2] < ROUNDOFF_VARIANCE, stats[0][3] < ROUNDOFF_VARIANCE
    ff = stats[1][3] < ROUNDOFF_VARIANCE
    two_flat = (fa & fb) | (fa & ff) | (fb & ff)
    if not two_flat.any():
        return _nanmean(q), 0.0
    q_exact = _qy_map(*map(_exact, stats), C_LIU, C_LIU, None)
    return _nanmean(q), float(np.sum(_unbounded_width(q[two_flat], q_exact[two_flat])) / q.size)


def qc(a: np.ndarray, b: np.ndarray, f: np.ndarray, well_conditioned: bool = False) -> float:
    """Qc (Cvejic 2006): μ = σ_AF/(σ_AF + σ_BF); sim = μ SSIM(A,F) + (1-μ) SSIM(B,F), 0 where μ < 0,
    1 where μ > 1; mean over the Gaussian 7x7 windows.

    ``well_conditioned=False``: Liu's ``metricCvejic.m`` (C = 2e-16, NaN dropped; :func:`qc_roundoff`).
    ``well_conditioned=True``: Wang's constants, exact flat statistics, μ = 1/2 where both covariances are 0.
    """
    stats = [_local_stats(x, f, _G7) for x in (a, b)]
    if well_conditioned:
        return _nanmean(_qc_map(*map(_exact, stats), C1_WANG, C2_WANG, 0.5)[0])
    return _nanmean(_qc_map(*stats, C_LIU, C_LIU, None)[0])


def qc_roundoff(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> tuple[float, float]:
    """Liu's Qc and a bound on how far round-off can move it: ``(value, bound)`` (see :func:`qy_roundoff`).

    Any flat image makes a covariance pure round-off, and the clamps turn its sign into a jump: A flat
    only: sim is 0 or SSIM(B,F) (width |SSIM(B,F)|); B flat only: 1 or SSIM(A,F) (width |1 - SSIM(A,F)|);
    F flat, or A and B flat: μ is arbitrary, sim in [0, 1] (width 1); A or B flat together with F: a ratio
    of round-off (unbounded).
    """
    stats = [_local_stats(x, f, _G7) for x in (a, b)]
    sim, s_af, s_bf = _qc_map(*stats, C_LIU, C_LIU, None)
    fa, ff = stats[0][2] < ROUNDOFF_VARIANCE, stats[0][3] < ROUNDOFF_VARIANCE
    fb = stats[1][2] < ROUNDOFF_VARIANCE
    if not (fa | fb | ff).any():
        return _nanmean(sim), 0.0
    width = np.zeros_like(sim)
    only_a, only_b = fa & ~fb & ~ff, fb & ~fa & ~ff
    width[only_a] = np.abs(s_bf[only_a])
    width[only_b] = np.abs(1.0 - s_af[only_b])
    width[(ff & ~fa & ~fb) | (fa & fb & ~ff)] = 1.0
    unbounded = (fa | fb) & ff
    if unbounded.any():
        sim_exact = _qc_map(*map(_exact, stats), C_LIU, C_LIU, None)[0]
        width[unbounded] = _unbounded_width(sim[unbounded], sim_exact[unbounded])
    return _nanmean(sim), float(np.nan_to_num(width, nan=1.0).sum() / sim.size)


def roundoff_dominated(value: float, bound: float) -> bool:
    """True when round-off can move ``value`` by more than its reported precision (``bound`` from
    :func:`qy_roundoff` / :func:`qc_roundoff`).

    The precision is the golden tests' tolerance (relative 1e-4 or 5 significant digits): such a value is
    not reproducible, another machine, library or summation order prints another number.
    """
    from gifnet.metrics.golden import tolerance

    if not np.isfinite(value):
        return bound > 0
    return bound > tolerance(value)


def _piella_terms(a: np.ndarray, b: np.ndarray, f: np.ndarray):
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    _, sa, sb, _ = ssim_maps(a, b, c1, c2)
    both = (sa + sb) == 0
    sa = sa + 0.5 * both
    sb = sb + 0.5 * both
    lam = sa / (sa + sb)
    s_fa = ssim_maps(f, a, c1, c2)[0]
    s_fb = ssim_maps(f, b, c1, c2)[0]
    return lam, s_fa, s_fb, np.maximum(sa, sb)


def q_s(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Piella Qs (as in Liu's ``metricPeilla.m``, SSIM maps instead of UIQI)."""
    lam, s_fa, s_fb, _ = _piella_terms(a, b, f)
    return float(np.mean(lam * s_fa + (1 - lam) * s_fb))


def q_w(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Piella Qw: saliency-weighted Qs (weights max(s_A, s_B), normalised)."""
    lam, s_fa, s_fb, cw = _piella_terms(a, b, f)
    cw = cw / cw.sum()
    return float(np.sum(cw * (lam * s_fa + (1 - lam) * s_fb)))


def _prewitt_mag(x: np.ndarray) -> np.ndarray:
    k1 = np.array([[1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, -1.0]])
    k2 = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -1.0, -1.0]])
    gx = filter2_same(x, k1)
    gy = filter2_same(x, k2)
    return np.sqrt(gx * gx + gy * gy)


def q_w_edge(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Qw of the Prewitt edge images, Qw(F', A', B') (this is what MEFB reports as ``Qw``)."""
    return q_w(_prewitt_mag(a), _prewitt_mag(b), _prewitt_mag(f))


def q_e(a: np.ndarray, b: np.ndarray, f: np.ndarray, alpha: float = 1.0) -> float:
    """Piella Qe = Qw(F, A, B) * Qw(F', A', B')^alpha (Prewitt edge images)."""
    return q_w(a, b, f) * q_w_edge(a, b, f) ** alpha


