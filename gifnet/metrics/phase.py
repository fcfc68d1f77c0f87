"""Zhao-Laganiere-Liu phase-congruency metric Qp (MEFB ``metricsQp.m``). Input conventions: :mod:`gifnet.metrics.core`.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import fft as sfft
from scipy.signal import fftconvolve

from gifnet.metrics._matlab import (
    fspecial_gaussian,
)
from gifnet.metrics._memo import _memo

_PC_NSCALE, _PC_NORIENT = 4, 6


@functools.lru_cache(maxsize=2)
def _pc_filters(rows: int, cols: int) -> tuple[tuple[float, tuple[np.ndarray, ...], float, float, float], ...]:
    """The image-independent part of :func:`phase_congruency` for one image size: per orientation, its angle,
    the log-Gabor x spread filters of the scales, the first filter's energy and the two noise sums of the
    filters' spatial forms. Computed once per size (the same operations as inline, so the same values)."""
    nscale, norient, min_wl, mult, sigma_onf, dtheta_on_sigma = _PC_NSCALE, _PC_NORIENT, 3, 2.1, 0.55, 1.2
    theta_sigma = np.pi / norient / dtheta_on_sigma
    if cols % 2:
        xr = np.arange(-(cols - 1) / 2, (cols - 1) / 2 + 1) / (cols - 1)
    else:
        xr = np.arange(-cols / 2, cols / 2) / cols
    if rows % 2:
        yr = np.arange(-(rows - 1) / 2, (rows - 1) / 2 + 1) / (rows - 1)
    else:
        yr = np.arange(-rows / 2, rows / 2) / rows
    x, y = np.meshgrid(xr, yr)
    radius = np.sqrt(x * x + y * y)
    radius[rows // 2, cols // 2] = 1.0
    theta = np.arctan2(-y, x)
    radius = np.fft.ifftshift(radius)
    theta = np.fft.ifftshift(theta)
    sintheta, costheta = np.sin(theta), np.cos(theta)
    # lowpassfilter([rows cols], 0.45, 15) (note: fftshift, as in the reference)
    lx = (np.arange(1, cols + 1)[None, :] - (cols // 2 + 1)) / cols * np.ones((rows, 1))
    ly = (np.arange(1, rows + 1)[:, None] - (rows // 2 + 1)) / rows * np.ones((1, cols))
    lp = np.fft.fftshift(1.0 / (1.0 + (np.sqrt(lx * lx + ly * ly) / 0.45) ** 30))
    log_gabor = []
    for s in range(nscale):
        fo = 1.0 / (min_wl * mult**s)
        lg = np.exp(-(np.log(radius / fo) ** 2) / (2 * np.log(sigma_onf) ** 2)) * lp
        lg[0, 0] = 0.0
        log_gabor.append(lg)
    sqrt_rc = np.sqrt(rows * cols)
    out = []
    for o in range(norient):
        angl = o * np.pi / norient
        ds = sintheta * np.cos(angl) - costheta * np.sin(angl)
        dc = costheta * np.cos(angl) + sintheta * np.sin(angl)
        dtheta = np.abs(np.arctan2(ds, dc))
        spread = np.exp(-(dtheta**2) / (2 * theta_sigma**2))
        filts = tuple(log_gabor[s] * spread for s in range(nscale))
        ifft_filters = [sfft.ifft2(filt).real * sqrt_rc for filt in filts]
        em_n = float(np.sum(filts[0] * filts[0]))
        est_sum_an2 = sum(fl * fl for fl in ifft_filters)
        est_sum_aiaj = np.zeros((rows, cols))
        for si in range(nscale - 1):
            for sj in range(si + 1, nscale):
                est_sum_aiaj += ifft_filters[si] * ifft_filters[sj]
        for f_ in filts:
            f_.setflags(write=False)
        out.append((angl, filts, em_n, float(np.sum(est_sum_an2)), float(np.sum(est_sum_aiaj))))
    return tuple(out)


def phase_congruency(im: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Liu's ``myphasecong3`` (Kovesi's phasecong3, 4 scales x 6 orientations); returns (pc, M, m)."""
    nscale, norient, k, cut_off, g = _PC_NSCALE, _PC_NORIENT, 2.0, 0.5, 10
    epsilon = 1e-4
    rows, cols = im.shape
    imagefft = sfft.fft2(im)
    total_energy = np.zeros((rows, cols))
    total_sum_an = np.zeros((rows, cols))
    covx2 = np.zeros((rows, cols))
    covy2 = np.zeros((rows, cols))
    covxy = np.zeros((rows, cols))
    for angl, filts, em_n, sum_an2, sum_aiaj in _pc_filters(rows, cols):
        sum_e = np.zeros((rows, cols))
        sum_o = np.zeros((rows, cols))
        sum_an = np.zeros((rows, cols))
        eos = []
        max_an = None
        for s in range(nscale):
            eo = sfft.ifft2(imagefft * filts[s])
            eos.append(eo)
            an = np.abs(eo)
            sum_an += an
            sum_e += eo.real
            sum_o += eo.imag
            max_an = an if s == 0 else np.maximum(max_an, an)
        x_energy = np.sqrt(sum_e**2 + sum_o**2) + epsilon
        mean_e = sum_e / x_energy
        mean_o = sum_o / x_energy
        energy = np.zeros((rows, cols))
        for eo in eos:
            e, od = eo.real, eo.imag
            energy += e * mean_e + od * mean_o - np.abs(e * mean_o - od * mean_e)
        median_e2n = np.median(np.abs(eos[0]) ** 2)
        mean_e2n = -median_e2n / np.log(0.5)
        noise_power = mean_e2n / em_n
        est_noise_energy2 = 2 * noise_power * sum_an2 + 4 * noise_power * sum_aiaj
        tau = np.sqrt(est_noise_energy2 / 2)
        est_noise_energy = tau * np.sqrt(np.pi / 2)
        est_noise_sigma = np.sqrt((2 - np.pi / 2) * tau**2)
        t = (est_noise_energy + k * est_noise_sigma) / 1.7
        energy = np.maximum(energy - t, 0.0)
        width = sum_an / (max_an + epsilon) / nscale
        weight = 1.0 / (1 + np.exp((cut_off - width) * g))
        energy_o = weight * energy
        total_sum_an += sum_an
        total_energy += energy_o
        with np.errstate(divide="ignore", invalid="ignore"):
            pc_o = weight * energy / sum_an
        covx = pc_o * np.cos(angl)
        covy = pc_o * np.sin(angl)
        covx2 += covx * covx
        covy2 += covy * covy
        covxy += covx * covy
    pc = total_energy / (total_sum_an + epsilon)
    covx2 /= norient / 2
    covy2 /= norient / 2
    covxy /= norient
    denom = np.sqrt(covxy**2 + (covx2 - covy2) ** 2) + epsilon
    big_m = (covy2 + covx2 + denom) / 2
    small_m = (covy2 + covx2 - denom) / 2
    return pc, big_m, small_m


def _qp_corr(i1, i2, imax, imf, m1, m2, m3) -> float:
    win = fspecial_gaussian(11, 1.5)
    c = 1e-4
    i1, i2, imax = m1 * i1, m2 * i2, m3 * imax

    def flt(x):
        return fftconvolve(x, win, mode="same")

    mu1, mu2, muf, mum = flt(i1), flt(i2), flt(imf), flt(imax)
    s1 = flt(i1 * i1) - mu1 * mu1
    s2 = flt(i2 * i2) - mu2 * mu2
    sm = flt(imax * imax) - mum * mum
    sf_ = flt(imf * imf) - muf * muf
    s1f = flt(i1 * imf) - mu1 * muf
    s2f = flt(i2 * imf) - mu2 * muf
    smf = flt(imax * imf) - mum * muf
    r1 = np.where(m1, (s1f + c) / (np.sqrt(np.abs(s1 * sf_)) + c), 0.0)
    r2 = np.where(m2, (s2f + c) / (np.sqrt(np.abs(s2 * sf_)) + c), 0.0)
    r3 = np.where(m3, (smf + c) / (np.sqrt(np.abs(sm * sf_)) + c), 0.0)
    result = np.maximum(np.maximum(r1, r2), r3)
    return float(np.sum(result) / np.sum(m3))


def _source_phase_congruency(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`phase_congruency` of a source image, read-only: cached by content (``_memo``), so that scoring more
    methods (checkpoints, published methods) against the same sources computes the sources' part once."""
    out = phase_congruency(x)
    for t in out:
        t.setflags(write=False)
    return out


def qp(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Qp (Zhao et al.), Liu's ``metricZhao.m`` as in MEFB: phase congruency and its moments."""
    pc1, bm1, sm1 = _memo("pc", a, _source_phase_congruency)
    pc2, bm2, sm2 = _memo("pc", b, _source_phase_congruency)
    pcf, bmf, smf = phase_congruency(f)
    mask = pc1 > pc2
    pc_max = np.where(mask, pc1, pc2)
    bm_max = np.where(mask, bm1, bm2)
    sm_max = np.where(mask, sm1, sm2)
    t = 0.1
    m1, m2, m3 = pc1 > t, pc2 > t, pc_max > t
    r_pc = _qp_corr(pc1, pc2, pc_max, pcf, m1, m2, m3)
    r_bm = _qp_corr(bm1, bm2, bm_max, bmf, m1, m2, m3)
    r_sm = _qp_corr(sm1, sm2, sm_max, smf, m1, m2, m3)
    return r_pc * r_bm * r_sm


