"""Image-fusion metric suite with MATLAB-exact reference conventions.

Public API::

    from gifnet.metrics import compute, list_metrics, METRICS, CONVENTIONS
    vals = compute("vifb", vis, ir, fused)            # VIFB: a = VIS, b = IR
    vals = compute("tang", ir, vis, fused, ["EN"])    # Tang legacy: a = IR, b = VIS
    vals = compute("mefb", under, over, fused)        # MEFB: a = imgA (under), b = imgB (over)

Arrays are passed exactly as read from the files (uint8, HxW or HxWx3), e.g. with
:func:`gifnet.metrics.io.read_for_metrics`. See docs/metrics.md for the conventions and units.
The pansharpening set (SAM, ERGAS, Q, Q2n, SCC, D_lambda, D_s, QNR) is in
:mod:`gifnet.metrics.pansharpening`; core per-channel functions are in :mod:`gifnet.metrics.core`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from gifnet.metrics.conventions import CONVENTIONS, MetricInfo, MetricValue, as_value
from gifnet.metrics.io import read_for_metrics

__all__ = [
    "CONVENTIONS",
    "METRICS",
    "MetricInfo",
    "MetricValue",
    "compute",
    "compute_checked",
    "list_conventions",
    "list_metrics",
    "read_for_metrics",
]

#: Metadata per convention: ``METRICS[convention][metric] -> MetricInfo`` (name, direction, description).
METRICS: dict[str, dict[str, MetricInfo]] = {
    conv: {name: info for name, (_, info) in table.items()} for conv, table in CONVENTIONS.items()
}


def list_conventions() -> list[str]:
    """Names of the available conventions."""
    return list(CONVENTIONS)


def _table(convention: str):
    try:
        return CONVENTIONS[convention]
    except KeyError:
        raise ValueError(
            f"unknown metric convention {convention!r}; valid conventions: {', '.join(CONVENTIONS)}"
        ) from None


def list_metrics(convention: str) -> list[str]:
    """Metric names of ``convention`` in their canonical order."""
    return list(_table(convention))


def _check_shapes(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> None:
    for name, x in (("a", a), ("b", b), ("f", f)):
        if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[2] not in (1, 3)):
            raise ValueError(f"{name} must be HxW or HxWx3, got shape {x.shape}")
        if x.size == 0:
            raise ValueError(f"{name} is empty (shape {x.shape})")
    for name, x in (("a", a), ("b", b)):
        if x.shape[:2] != f.shape[:2]:
            raise ValueError(f"spatial size mismatch: source {name} has shape {x.shape}, fused f has shape {f.shape}")


def compute(
    convention: str,
    a: np.ndarray,
    b: np.ndarray,
    f: np.ndarray,
    metrics: list[str] | None = None,
) -> dict[str, float]:
    """Compute metrics of one fused image under a named convention.

    Args:
        convention: ``"vifb"``, ``"tang"`` (legacy toolbox, = golden), ``"tang_2023"``, ``"mefb"`` or
            ``"standard"``.
        a: first source as the convention defines it (``vifb``: VIS; ``tang``: IR; ``mefb``: imgA =
            under-exposed; ``standard``: either source), array as read from the file.
        b: second source (``vifb``: IR; ``tang``: VIS; ``mefb``: imgB = over-exposed).
        f: fused image, same height and width as the sources.
        metrics: subset of metric names (default: all of the convention).

    Returns:
        ``{metric name: value}`` in the requested order.

    Raises:
        ValueError: unknown convention or metric name, or mismatched image sizes.

    Values that floating-point round-off decides (:class:`MetricValue`) are returned as computed; use
    :func:`compute_checked` to know which they are.
    """
    return {k: v.value for k, v in compute_checked(convention, a, b, f, metrics).items()}


def compute_checked(
    convention: str,
    a: np.ndarray,
    b: np.ndarray,
    f: np.ndarray,
    metrics: list[str] | None = None,
    timings: dict[str, float] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, MetricValue]:
    """:func:`compute` with each value's round-off flag (:class:`MetricValue`).

    ``timings``: when given, each metric's seconds by ``clock`` (default wall time) are added to ``timings[name]``.

    Today the flagged metrics are ``mefb``'s Qy and Qc (Liu's C = 2e-16): on windows that are flat in both
    images their ratio is one of filter round-off, and the value can be anything (docs/metrics.md).
    """
    table = _table(convention)
    names = list(table) if metrics is None else list(metrics)
    bad = [m for m in names if m not in table]
    if bad:
        raise ValueError(f"unknown metric(s) {bad} for convention {convention!r}; valid metrics: {', '.join(table)}")
    a, b, f = np.asarray(a), np.asarray(b), np.asarray(f)
    _check_shapes(a, b, f)
    a, b, f = (x[..., 0] if x.ndim == 3 and x.shape[2] == 1 else x for x in (a, b, f))
    if timings is None:
        return {m: as_value(table[m][0](a, b, f)) for m in names}
    out = {}
    for m in names:
        t0 = clock()
        out[m] = as_value(table[m][0](a, b, f))
        timings[m] = timings.get(m, 0.0) + clock() - t0
    return out
