"""Core image-fusion metrics on 2-D float64 arrays (one channel).

All functions take ``a`` and ``b`` (the two sources) and ``f`` (the fused image) as 2-D float64 arrays
on the 0-255 scale unless stated otherwise, and return a Python float. Definitions follow
METRICS.md section 2; every function is written by hand with NumPy/SciPy (no library reproduces the
MATLAB reference numbers), and the docstrings name the reference behaviour that each one reproduces.
Colour dispatch and dtype conventions live in :mod:`gifnet.metrics.conventions`.

The functions live in one module per metric family and are gathered here, the namespace the conventions
(:mod:`gifnet.metrics.conventions`) and the tests use: :mod:`.information` (EN, MI, NMI, TE, CE, Q_NCIE),
:mod:`.statistics` (SD, SF, AG, EI, CC, SCD, MSE/PSNR/RMSE), :mod:`.structural` (SSIM family, Qy, Qc, Piella),
:mod:`.vif` (VIFp, VIFF), :mod:`.edges` (Qabf, Q_G, Nabf), :mod:`.perceptual` (Qcb, Qcv), :mod:`.phase` (Qp) and
:mod:`.fmi` (FMI).
"""

from __future__ import annotations

from .edges import (  # noqa: F401
    labf,
    nabf,
    nabf_tang,
    q_g,
    qabf,
)
from .fmi import (  # noqa: F401
    fmi,
    matlab_edge_sobel,
)
from .information import (  # noqa: F401
    ce,
    cross_entropy,
    entropy,
    mi,
    mi_tang_pair,
    mi_vifb_pair,
    mutual_information,
    nmi,
    q_ncie,
    te,
)
from .perceptual import (  # noqa: F401
    qcb,
    qcv,
)
from .phase import (  # noqa: F401
    phase_congruency,
    qp,
)
from .statistics import (  # noqa: F401
    ag,
    cc,
    corr2,
    ei,
    mse,
    mse_tang,
    psnr,
    psnr_tang,
    psnr_vifb,
    rmse,
    rmse_vifb,
    scd,
    sd,
    sd_uint8_legacy,
    sf,
)
from .structural import (  # noqa: F401
    C_LIU,
    ROUNDOFF_VARIANCE,
    mef_ms_ssim,
    mef_ssim,
    ms_ssim,
    ms_ssim_mean,
    q_e,
    q_s,
    q_w,
    q_w_edge,
    qc,
    qc_roundoff,
    qy,
    qy_roundoff,
    roundoff_dominated,
    ssim,
    ssim_maps,
    ssim_mean,
    ssim_sum,
)
from .vif import (  # noqa: F401
    vif,
    viff,
    vifp,
)

__all__ = [
    "C_LIU",
    "ROUNDOFF_VARIANCE",
    "ag",
    "cc",
    "ce",
    "corr2",
    "cross_entropy",
    "ei",
    "entropy",
    "fmi",
    "labf",
    "matlab_edge_sobel",
    "mef_ms_ssim",
    "mef_ssim",
    "mi",
    "mi_tang_pair",
    "mi_vifb_pair",
    "ms_ssim",
    "ms_ssim_mean",
    "mse",
    "mse_tang",
    "mutual_information",
    "nabf",
    "nabf_tang",
    "nmi",
    "phase_congruency",
    "psnr",
    "psnr_tang",
    "psnr_vifb",
    "q_e",
    "q_g",
    "q_ncie",
    "q_s",
    "q_w",
    "q_w_edge",
    "qabf",
    "qc",
    "qc_roundoff",
    "qcb",
    "qcv",
    "qp",
    "qy",
    "qy_roundoff",
    "rmse",
    "rmse_vifb",
    "roundoff_dominated",
    "scd",
    "sd",
    "sd_uint8_legacy",
    "sf",
    "ssim",
    "ssim_maps",
    "ssim_mean",
    "ssim_sum",
    "te",
    "vif",
    "viff",
    "vifp",
]
