"""Named metric conventions reproducing reference toolboxes, including colour dispatch and dtypes.

Each convention is a table ``name -> (function(a, b, f) -> float, MetricInfo)`` where ``a``, ``b``, ``f``
are the arrays exactly as read from the files (uint8, HxW or HxWx3). Argument order per convention:

- ``vifb``: ``a`` = visible (VIS), ``b`` = infrared (IR), ``f`` = fused; VIFB calls ``metric(VIS, IR, F)``.
- ``tang`` / ``tang_2023``: ``a`` = infrared (first source), ``b`` = visible; all inputs converted to
  gray with rounded ``rgb2gray`` (the toolbox driver does the same).
- ``mefb``: ``a`` = imgA (under-exposed), ``b`` = imgB (over-exposed); MEFB calls ``metric(imgA, imgB, F)``.
- ``standard``: the section-2 definitions on gray images (colour inputs converted with rounded
  ``rgb2gray``); ``a``, ``b`` = the two sources in any order (every metric is symmetric).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gifnet.metrics import core
from gifnet.metrics._matlab import rgb2gray


@dataclass(frozen=True)
class MetricInfo:
    """Metadata of one metric.

    Attributes:
        name: metric name as used in the convention's tables.
        higher_is_better: direction (True: higher is better).
        description: definition summary, including units and sum/mean conventions.
    """

    name: str
    higher_is_better: bool
    description: str

    @property
    def direction(self) -> str:
        """``"higher"`` or ``"lower"`` (which values are better)."""
        return "higher" if self.higher_is_better else "lower"


@dataclass(frozen=True)
class MetricValue:
    """One metric value and how far floating-point round-off can move it.

    Attributes:
        value: the value as the convention's formula computes it in floating point.
        roundoff_bound: the most that round-off (another summation order, library or machine) can change
            it (0 for metrics whose value does not depend on round-off; see
            :func:`gifnet.metrics.core.qy_roundoff`).
    """

    value: float
    roundoff_bound: float = 0.0

    @property
    def roundoff(self) -> bool:
        """True when round-off decides the value beyond its precision: tables mark it, means leave it out."""
        return self.roundoff_bound > 0 and core.roundoff_dominated(self.value, self.roundoff_bound)


MetricFn = Callable[[np.ndarray, np.ndarray, np.ndarray], "float | MetricValue"]


def as_value(x: float | MetricValue) -> MetricValue:
    """A metric function's result as a :class:`MetricValue`."""
    return x if isinstance(x, MetricValue) else MetricValue(float(x))


def _checked(fn: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[float, float]]) -> MetricFn:
    """Wrap a ``(value, round-off bound)`` function into a :class:`MetricValue`."""

    def wrapped(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> MetricValue:
        value, bound = fn(a, b, f)
        return MetricValue(float(value), float(bound))

    return wrapped


def _mean_values(vals: list[float | MetricValue]) -> MetricValue:
    """Channel mean, with the mean of the channels' round-off bounds."""
    vs = [as_value(v) for v in vals]
    return MetricValue(float(np.mean([v.value for v in vs])), float(np.mean([v.roundoff_bound for v in vs])))


def _d(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _chan(x: np.ndarray, k: int) -> np.ndarray:
    return _d(x[..., k]) if x.ndim == 3 else _d(x)


def _gray(x: np.ndarray) -> np.ndarray:
    """Driver-style gray conversion: rounded ``rgb2gray`` for 3-channel uint8, else as is (float64)."""
    if x.ndim == 3:
        if x.shape[2] == 1:
            return _d(x[..., 0])
        return rgb2gray(x, rounded=x.dtype == np.uint8)
    return _d(x)


#: A convention's table as written below: ``{name: (function, higher_is_better, description)}``.
_RawTable = dict[str, tuple[Callable, bool, str]]


def _with_info(raw: _RawTable) -> dict[str, tuple[MetricFn, MetricInfo]]:
    """``{name: (function, MetricInfo)}`` from a raw table (the name is written once, as the key)."""
    return {k: (fn, MetricInfo(k, hib, desc)) for k, (fn, hib, desc) in raw.items()}


# ----------------------------------------------------------------------------------------------------
# VIFB
# ----------------------------------------------------------------------------------------------------


def _vifb_dispatch(fn: Callable[[np.ndarray, np.ndarray, np.ndarray], float]) -> MetricFn:
    """VIFB wrapper: per channel of F with (VIS_k, IR_k or IR, F_k), mean over channels.

    If F is 1-channel the metric runs once on gray images (3-channel sources through rounded
    ``rgb2gray``); this path is not pinned by golden data (METRICS.md 3.1).
    """

    def wrapped(vis: np.ndarray, ir: np.ndarray, f: np.ndarray) -> float:
        if f.ndim == 2:
            return fn(_gray(vis), _gray(ir), _d(f))
        vals = [fn(_chan(vis, k), _chan(ir, k), _d(f[..., k])) for k in range(f.shape[2])]
        return float(np.mean(vals))

    return wrapped


def _vifb_sf(vis: np.ndarray, ir: np.ndarray, f: np.ndarray) -> float:
    if f.ndim == 3:
        f2 = np.concatenate([_d(f[..., k]) for k in range(f.shape[2])], axis=1)
    else:
        f2 = _d(f)
    return core.sf(f2, "mn")


def _vifb_ei(vis: np.ndarray, ir: np.ndarray, f: np.ndarray) -> float:
    return core.ei(_d(f))


_VIFB_RAW: _RawTable = {
    "Avg_gradient": (
        _vifb_dispatch(lambda a, b, f: core.ag(f)),
        True,
        "AG of F per channel (MATLAB gradient), mean over channels",
    ),
    "Cross_entropy": (
        _vifb_dispatch(core.ce),
        False,
        "CE (bits), mean of D(VIS||F) and D(IR||F), per channel, mean",
    ),
    "Edge_intensity": (
        _vifb_ei,
        True,
        "EI: mean Sobel magnitude (replicate padding) over all channels",
    ),
    "Entropy": (
        _vifb_dispatch(lambda a, b, f: core.entropy(f)),
        True,
        "EN of F (bits, 256 bins of floor(F)), mean over channels",
    ),
    "Mutinf": (
        _vifb_dispatch(lambda a, b, f: core.mi_vifb_pair(a, f) + core.mi_vifb_pair(b, f)),
        True,
        "MI(VIS,F)+MI(IR,F) in nats after min-max stretching (sum), mean over channels",
    ),
    "Psnr": (
        _vifb_dispatch(core.psnr_vifb),
        True,
        "VIFB PSNR = 20 log10(255/sqrt(RMSE_vifb)) dB, per channel, mean",
    ),
    "Qabf": (
        _vifb_dispatch(lambda a, b, f: core.qabf(a * 255.0, b * 255.0, f * 255.0)),
        True,
        "Xydeas-Petrovic Q^{AB/F} on the x255 scale (tie rule G=g_F), per channel",
    ),
    "Qcb": (
        _vifb_dispatch(core.qcb),
        True,
        "Chen-Blum perceptual quality, per channel, mean (0-1)",
    ),
    "Qcv": (
        _vifb_dispatch(core.qcv),
        False,
        "Chen-Varshney (16x16 zero-padded blocks, alpha=5), per channel; lower is better",
    ),
    "Rmse": (
        _vifb_dispatch(core.rmse_vifb),
        False,
        "VIFB RMSE: mean over sources of sqrt(sum((X-F)^2))/(MN), per channel, mean",
    ),
    "Spatial_frequency": (
        _vifb_sf,
        True,
        "SF with /(MN) normalisation on the channels laid side by side",
    ),
    "Ssim": (
        _vifb_dispatch(core.ssim_sum),
        True,
        "SSIM(VIS,F)+SSIM(IR,F) (sum, up to 2), Gaussian 11/1.5, per channel, mean",
    ),
    "Variance": (
        _vifb_dispatch(lambda a, b, f: core.sd(f)),
        True,
        "population standard deviation of F (not the variance), per channel, mean",
    ),
}


# ----------------------------------------------------------------------------------------------------
# Tang (legacy, = golden) and Tang 2023
# ----------------------------------------------------------------------------------------------------


def _tang_wrap(fn: Callable[[np.ndarray, np.ndarray, np.ndarray], float]) -> MetricFn:
    def wrapped(ir: np.ndarray, vis: np.ndarray, f: np.ndarray) -> float:
        return fn(_gray(ir), _gray(vis), _gray(f))

    return wrapped


def _tang_table(legacy: bool) -> dict[str, tuple[MetricFn, MetricInfo]]:
    tag = "legacy" if legacy else "2023"
    t: _RawTable = {
        "EN": (lambda a, b, f: core.entropy(f), True, "entropy of uint8 F (bits)"),
        "SD": (
            (lambda a, b, f: core.sd_uint8_legacy(f)) if legacy else (lambda a, b, f: core.sd(f)),
            True,
            "legacy: SD in saturating uint8 arithmetic (<= 15.97)" if legacy else "population SD (0-255)",
        ),
        "SF": (
            (lambda a, b, f: core.sf(f / 255.0, "counts")) if legacy else (lambda a, b, f: core.sf(f, "counts")),
            True,
            f"Tang SF (means over difference counts), {'[0,1] data' if legacy else '0-255'}",
        ),
        "AG": (lambda a, b, f: core.ag(f), True, "average gradient (0-255)"),
        "MI": (
            lambda a, b, f: core.mi_tang_pair(a, f) + core.mi_tang_pair(b, f),
            True,
            "MI(IR,F)+MI(VIS,F) in bits (sum), uint8-saturated joint histogram",
        ),
        "MSE": (core.mse_tang, False, "mean of the two MSEs on [0,1] data"),
        "PSNR": (core.psnr_tang, True, "Tang PSNR = 20 log10(255/sqrt(MSE_[0,1])) dB"),
        "CC": (
            lambda a, b, f: core.cc(a / 255.0, b / 255.0, f / 255.0),
            True,
            "mean Pearson correlation of F with each source",
        ),
        "SCD": (
            lambda a, b, f: core.scd(a / 255.0, b / 255.0, f / 255.0),
            True,
            "sum of the correlations of differences (-2..2)",
        ),
        "VIF": (
            (lambda a, b, f: core.vif(a, b, f, saturate_uint8=True)) if legacy else core.vif,
            True,
            "VIFp(IR,F)+VIFp(VIS,F) (sum)" + (", uint8 scale-1 products saturated (legacy)" if legacy else ""),
        ),
        "Qabf": (
            (lambda a, b, f: core.qabf(a / 255.0, b / 255.0, f / 255.0, matlab_order=True)) if legacy else core.qabf,
            True,
            f"Xydeas-Petrovic Q^{{AB/F}} ({tag}: {'[0,1]' if legacy else '0-255'} data)",
        ),
        # easy=0 metrics of analysis_Reference (no column in Metric_TNO.xlsx: the same in both tables)
        "Nabf": (
            core.nabf_tang,
            False,
            "toolbox Nabf: analysis_nabf(IR, VIS, F) on 0-255, whose signature is "
            "(F, A, B), so IR plays the fused image (METRICS.md 2.11)",
        ),
        "MS_SSIM": (
            lambda a, b, f: core.mef_ms_ssim([a, b], f),
            True,
            "analysis_ms_ssim = Ma's 3-level MEF-MS-SSIM of [IR, VIS] (not Wang's)",
        ),
    }
    return _with_info({k: (_tang_wrap(fn), hib, desc) for k, (fn, hib, desc) in t.items()})


TANG = _tang_table(legacy=True)
TANG_2023 = _tang_table(legacy=False)


# ----------------------------------------------------------------------------------------------------
# MEFB
# ----------------------------------------------------------------------------------------------------


def _mefb_prep(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> np.ndarray:
    """MEFB: when both sources are gray and F is RGB, only channel 1 (R) of F is scored."""
    if a.ndim == 2 and b.ndim == 2 and f.ndim == 3:
        return f[..., 0]
    return f


def _mefb_dispatch(fn: Callable[[np.ndarray, np.ndarray, np.ndarray], float]) -> MetricFn:
    """MEFB wrapper: per channel of F (sources per channel, gray sources broadcast), mean.

    If F is (or becomes) 1-channel, the metric runs once; 3-channel sources then go through rounded
    ``rgb2gray`` (the Lab-L conversion of MEFB's VIF in that path is replaced by rgb2gray; not pinned).
    """

    def wrapped(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
        f = _mefb_prep(a, b, f)
        if f.ndim == 2:
            return fn(_gray(a), _gray(b), _d(f))
        vals = [fn(_chan(a, k), _chan(b, k), _d(f[..., k])) for k in range(f.shape[2])]
        return _mean_values(vals)

    return wrapped


def _mefb_mef_ssim(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    return core.mef_ms_ssim([_gray(a), _gray(b)], _gray(f))


def _mefb_ag(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    fd = _d(f)
    if a.ndim == 2 and b.ndim == 2 and f.ndim == 3:
        fd = rgb2gray(fd, rounded=False)
    if fd.ndim == 2:
        return core.ag(fd)
    return float(np.mean([core.ag(fd[..., k]) for k in range(fd.shape[2])]))


def _mefb_ei(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    return core.ei(_d(_mefb_prep(a, b, f)))


_MEFB_RAW: _RawTable = {
    "MEF_SSIM": (
        _mefb_mef_ssim,
        True,
        "MEF-MS-SSIM (Ma 2015, 3 levels) on rounded rgb2gray images, 0-1",
    ),
    "Qw": (
        _mefb_dispatch(core.q_w_edge),
        True,
        "MEFB 'Qw' = Piella Qw of the Prewitt edge images only, per channel",
    ),
    "Qy": (
        _mefb_dispatch(_checked(core.qy_roundoff)),
        True,
        "Yang's SSIM-based metric (Liu's C=2e-16), per channel; round-off flagged",
    ),
    "Qc": (
        _mefb_dispatch(_checked(core.qc_roundoff)),
        True,
        "Cvejic's SSIM-based metric (Liu's C=2e-16), per channel; round-off flagged",
    ),
    "VIF": (_mefb_dispatch(core.viff), True, "Han's VIFF (0-1), per channel"),
    "NMI": (_mefb_dispatch(core.nmi), True, "Hossny normalised MI (0-2), per channel"),
    "Qncie": (_mefb_dispatch(core.q_ncie), True, "Q_NCIE (0-1), per channel"),
    "Qp": (_mefb_dispatch(core.qp), True, "Zhao's phase-congruency metric, per channel"),
    "TE": (
        _mefb_dispatch(lambda a, b, f: core.te(a, b, f, liu_marginals=True)),
        True,
        "Tsallis MI (q=1.85) with Liu's swapped marginals (MEFB values), per channel",
    ),
    "Psnr": (_mefb_dispatch(core.psnr_vifb), True, "VIFB-style PSNR (dB), per channel"),
    "SD": (_mefb_dispatch(lambda a, b, f: core.sd(f)), True, "population SD, per channel"),
    "Cross_entropy": (_mefb_dispatch(core.ce), False, "CE (bits), per channel"),
    "Entropy": (_mefb_dispatch(lambda a, b, f: core.entropy(f)), True, "EN (bits)"),
    "Avg_gradient": (_mefb_ag, True, "AG per channel, mean"),
    "Edge_intensity": (_mefb_ei, True, "EI over all channels"),
    "Spatial_frequency": (
        _mefb_dispatch(lambda a, b, f: core.sf(f, "mn")),
        True,
        "SF (/(MN) normalisation) per channel, mean",
    ),
}


# ----------------------------------------------------------------------------------------------------
# Standard definitions (section 2) on gray images
# ----------------------------------------------------------------------------------------------------


def _std(fn: Callable[[np.ndarray, np.ndarray, np.ndarray], float]) -> MetricFn:
    def wrapped(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
        return fn(_gray(a), _gray(b), _gray(f))

    return wrapped


_STANDARD_RAW: _RawTable = {
    "EN": (lambda a, b, f: core.entropy(f), True, "entropy of F (bits)"),
    "SD": (lambda a, b, f: core.sd(f), True, "population standard deviation (0-255)"),
    "SF": (lambda a, b, f: core.sf(f, "counts"), True, "spatial frequency, means over difference counts"),
    "AG": (lambda a, b, f: core.ag(f), True, "average gradient"),
    "EI": (lambda a, b, f: core.ei(f), True, "edge intensity (Sobel, replicate)"),
    "MI": (core.mi, True, "MI(A,F)+MI(B,F) in bits on raw grey levels (sum)"),
    "MI_nats": (lambda a, b, f: core.mi(a, b, f, "nats"), True, "MI(A,F)+MI(B,F) in nats (sum)"),
    "NMI": (core.nmi, True, "Hossny normalised MI (0-2)"),
    "TE": (core.te, True, "Tsallis MI, q=1.85 (sum)"),
    "FMI_pixel": (lambda a, b, f: core.fmi(a, b, f, "none"), True, "FMI on raw pixels (0-1)"),
    "FMI_gradient": (lambda a, b, f: core.fmi(a, b, f, "gradient"), True, "FMI on gradients (0-1)"),
    "FMI_edge": (lambda a, b, f: core.fmi(a, b, f, "edge"), True, "FMI on binary Sobel edges (0-1)"),
    "FMI_dct": (lambda a, b, f: core.fmi(a, b, f, "dct"), True, "FMI on DCT coefficients (0-1)"),
    "FMI_w": (lambda a, b, f: core.fmi(a, b, f, "wavelet"), True, "FMI on dmey wavelet subbands (needs PyWavelets)"),
    "CC": (core.cc, True, "mean Pearson correlation of F with each source"),
    "SCD": (core.scd, True, "sum of the correlations of differences (-2..2)"),
    "VIF": (core.vif, True, "VIFp(A,F)+VIFp(B,F) (sum)"),
    "VIFF": (core.viff, True, "Han's VIFF (0-1)"),
    "Qabf": (core.qabf, True, "Xydeas-Petrovic Q^{AB/F} (0-255 data)"),
    "Q_G": (core.q_g, True, "Liu's Xydeas variant (mean of per-pixel ratio)"),
    "Nabf": (core.nabf, False, "Kumar's modified N^{AB/F} artefact measure"),
    "Labf": (core.labf, False, "Kumar's L^{AB/F} information loss"),
    "SSIM": (core.ssim_mean, True, "mean of SSIM(F,A) and SSIM(F,B), Gaussian 11/1.5, K=[0.01,0.03]"),
    "SSIM_sum": (core.ssim_sum, True, "SSIM(A,F)+SSIM(B,F) (sum, up to 2)"),
    "MS_SSIM": (core.ms_ssim_mean, True, "mean of standard 5-scale MS-SSIM(F, X)"),
    "MEF_SSIM": (lambda a, b, f: core.mef_ssim([a, b], f), True, "single-scale MEF-SSIM (0-1)"),
    "MEF_MS_SSIM": (lambda a, b, f: core.mef_ms_ssim([a, b], f), True, "3-level MEF-MS-SSIM (0-1)"),
    "PSNR": (core.psnr, True, "standard PSNR = 10 log10(255^2/MSE) dB"),
    "MSE": (core.mse, False, "mean of the two MSEs (0-255)"),
    "RMSE": (core.rmse, False, "sqrt of the standard MSE (0-255)"),
    "CE": (core.ce, False, "cross entropy (bits), mean over sources"),
    "Qcb": (core.qcb, True, "Chen-Blum (0-1)"),
    "Qcv": (core.qcv, False, "Chen-Varshney (unbounded)"),
    "Qy": (
        lambda a, b, f: core.qy(a, b, f, well_conditioned=True),
        True,
        "Yang's metric, Wang's SSIM constants (well-conditioned; Liu's C=2e-16 is mefb's)",
    ),
    "Qc": (
        lambda a, b, f: core.qc(a, b, f, well_conditioned=True),
        True,
        "Cvejic's metric, Wang's SSIM constants (well-conditioned; Liu's C=2e-16 is mefb's)",
    ),
    "Qs": (core.q_s, True, "Piella Qs (SSIM maps)"),
    "Qw": (core.q_w, True, "Piella Qw (saliency-weighted)"),
    "Qe": (core.q_e, True, "Piella Qe = Qw * Qw(edges)"),
    "Q_NCIE": (core.q_ncie, True, "nonlinear correlation information entropy (0-1)"),
    "Qp": (core.qp, True, "Zhao's phase-congruency metric"),
}

VIFB = _with_info(_VIFB_RAW)
MEFB = _with_info(_MEFB_RAW)
STANDARD = _with_info({k: (_std(fn), hib, desc) for k, (fn, hib, desc) in _STANDARD_RAW.items()})

CONVENTIONS: dict[str, dict[str, tuple[MetricFn, MetricInfo]]] = {
    "vifb": VIFB,
    "tang": TANG,
    "tang_2023": TANG_2023,
    "mefb": MEFB,
    "standard": STANDARD,
}
