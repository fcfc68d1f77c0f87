"""Golden tests: reproduce the MATLAB/Octave reference values of METRICS.md section 5.

Each row of ``vifb/golden.csv``, ``tno_tang/golden.csv``, ``tno_tang_extra/golden.csv`` and
``mefb_octave/golden.csv`` is one test (id ``<set>-<image>-<method>-<metric>``), checked with the METRICS.md
tolerance ``|x - g| <= max(1e-4 |g|, 0.5 * 10**(floor(log10 |g|) - 4))``, and must not be flagged as
round-off. The rows of :data:`gifnet.metrics.golden.ROUNDOFF_ROWS` (values that round-off decides) must be
flagged instead. The default run checks a small sample (a few images per set); the full sets are marked
``slow``. Everything skips cleanly without ``../shared``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest
from conftest import missing_shared

from gifnet.metrics import MetricValue, compute_checked
from gifnet.metrics.golden import GOLDEN_SETS, ROUNDOFF_ROWS, load_triplet, read_rows, tolerance
from gifnet.paths import shared_root

# (golden set, image, method) pairs checked in the default (fast) run
SAMPLE = {
    "vifb": {("carLight", m) for m in ("ADF", "CNN", "GTF", "SeAFusion", "U2Fusion")}
    | {("walkingnight", m) for m in ("ADF", "CNN", "GTF", "SeAFusion", "U2Fusion")},
    "tno_tang": {("TNO_05", "SeAFusion"), ("TNO_05", "U2Fusion"), ("TNO_01", "SeAFusion"), ("TNO_01", "U2Fusion")},
    "tno_tang_extra": {("TNO_01", "SeAFusion"), ("TNO_03", "U2Fusion")},
    # Balloons/mean: Qy/Qc golden 96.5 / 82.6 are round-off; Arno/maxwell: the same metrics well-conditioned
    "mefb_octave": {("Balloons", "mean"), ("Arno", "maxwell")},
}


def _params(sample: bool) -> list:
    root = shared_root()
    if root is None or not (root / "data" / "metrics_golden").is_dir():
        return [pytest.param(None, None, None, None, None, id="no-shared")]
    out = []
    for gs in GOLDEN_SETS:
        # group the rows of one fused image so that its metrics are computed once (cached)
        for r in sorted(read_rows(root, gs), key=lambda r: (r.image, r.method)):
            in_sample = (r.image, r.method) in SAMPLE[gs]
            if in_sample == sample:
                out.append(
                    pytest.param(gs, r.image, r.method, r.metric, r.value, id=f"{gs}-{r.image}-{r.method}-{r.metric}")
                )
    return out


@lru_cache(maxsize=4)
def _values(shared: Path, golden_set: str, image: str, method: str) -> dict[str, MetricValue]:
    a, b, f = load_triplet(shared, golden_set, image, method)
    metrics = sorted({r.metric for r in read_rows(shared, golden_set) if (r.image, r.method) == (image, method)})
    return compute_checked(GOLDEN_SETS[golden_set][0], a, b, f, metrics)


def _check(shared: Path, golden_set: str | None, image: str, method: str, metric: str, golden: float) -> None:
    if golden_set is None:
        missing_shared("golden data not available")
    v = _values(shared, golden_set, image, method)[metric]
    x = v.value
    if (golden_set, image, method, metric) in ROUNDOFF_ROWS:
        assert v.roundoff, (
            f"{golden_set} {image}/{method} {metric}: golden {golden!r} is round-off, but {x!r} is not flagged "
            f"(round-off bound {v.roundoff_bound:.3g})"
        )
        return
    assert not v.roundoff, f"{golden_set} {image}/{method} {metric}: {x!r} flagged ({v.roundoff_bound:.3g})"
    tol = tolerance(golden)
    assert abs(x - golden) <= tol, (
        f"{golden_set} {image}/{method} {metric}: got {x!r}, golden {golden!r} "
        f"(|diff| {abs(x - golden):.3g} > tol {tol:.3g})"
    )


@pytest.mark.shared
@pytest.mark.parametrize(("golden_set", "image", "method", "metric", "golden"), _params(sample=True))
def test_golden_sample(shared: Path, golden_set, image, method, metric, golden) -> None:
    """Default run: a few images per golden set, all metrics."""
    _check(shared, golden_set, image, method, metric, golden)


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.parametrize(("golden_set", "image", "method", "metric", "golden"), _params(sample=False))
def test_golden_full(shared: Path, golden_set, image, method, metric, golden) -> None:
    """All remaining golden rows (1,365 + 462 + 28 + 96 in total with the sample)."""
    _check(shared, golden_set, image, method, metric, golden)


def test_golden_row_counts(shared: Path) -> None:
    """The golden CSVs have the row counts documented in DATA.md section 7."""
    counts = {gs: len(read_rows(shared, gs)) for gs in GOLDEN_SETS}
    assert counts == {"vifb": 1365, "tno_tang": 462, "tno_tang_extra": 28, "mefb_octave": 96}
