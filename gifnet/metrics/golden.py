"""Loading the golden metric sets of ``../shared/data/metrics_golden`` (METRICS.md section 5).

Used by the golden tests and ``scripts/benchmark_metrics.py``. Nothing here is needed to compute metrics.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from gifnet.metrics.io import read_for_metrics

#: golden set -> (convention, folder under data/metrics_golden, benchmark folder under data/benchmarks)
GOLDEN_SETS = {
    "vifb": ("vifb", "vifb", "ivif/VIFB"),
    "tno_tang": ("tang", "tno_tang", "ivif/TNO"),
    "tno_tang_extra": ("tang", "tno_tang_extra", "ivif/TNO"),
    "mefb_octave": ("mefb", "mefb_octave", "meif/MEFB"),
}

#: golden sets whose fused images live in another set's folder
_FUSED_FOLDER = {"tno_tang_extra": "tno_tang"}

#: Golden rows whose reference value floating-point round-off decides (``mefb``'s Qy and Qc with Liu's
#: C = 2e-16 on images with flat or saturated windows): the same Octave code prints other numbers on other
#: machines (507/mean Qy: 250.07 here, 14.67 on another), so no correct implementation reproduces them. The
#: golden tests check that these values are flagged (:attr:`gifnet.metrics.MetricValue.roundoff`) instead,
#: and that every other row is reproduced and not flagged.
ROUNDOFF_ROWS = {
    ("mefb_octave", "507", "mean", "Qy"), ("mefb_octave", "507", "mean", "Qc"),
    ("mefb_octave", "507", "maxwell", "Qc"), ("mefb_octave", "Arno", "mean", "Qc"),
    ("mefb_octave", "Balloons", "mean", "Qy"), ("mefb_octave", "Balloons", "mean", "Qc"),
    ("mefb_octave", "Balloons", "maxwell", "Qc"),
}  # fmt: skip


@dataclass(frozen=True)
class GoldenRow:
    """One golden value."""

    image: str
    method: str
    metric: str
    value: float


def tolerance(g: float) -> float:
    """METRICS.md section 5: max(1e-4 |g|, 0.5 * 10^(floor(log10 |g|) - 4))."""
    if g == 0:
        return 0.0
    return max(1e-4 * abs(g), 0.5 * 10 ** (math.floor(math.log10(abs(g))) - 4))


def matches(x: float, g: float) -> bool:
    """True when ``x`` reproduces golden ``g`` within the METRICS.md tolerance."""
    return abs(x - g) <= tolerance(g)


def read_rows(shared: Path, golden_set: str) -> list[GoldenRow]:
    """Rows of ``<golden_set>/golden.csv``."""
    folder = GOLDEN_SETS[golden_set][1]
    with open(shared / "data" / "metrics_golden" / folder / "golden.csv", newline="") as fh:
        return [GoldenRow(r["image"], r["method"], r["metric"], float(r["value"])) for r in csv.DictReader(fh)]


def _find(folder: Path, stem: str) -> Path:
    hits = sorted(folder.glob(stem + ".*"))
    if not hits:
        raise FileNotFoundError(f"no file {stem}.* in {folder}")
    return hits[0]


@lru_cache(maxsize=8)
def load_triplet(shared: Path, golden_set: str, image: str, method: str) -> tuple[np.ndarray, ...]:
    """(a, b, f) in the argument order of the golden set's convention.

    vifb: (VIS, IR, F); tno_tang, tno_tang_extra: (IR, VIS, F); mefb_octave: (under, over, F).
    """
    _, folder, bench = GOLDEN_SETS[golden_set]
    root = shared / "data"
    src_a = read_for_metrics(_find(root / "benchmarks" / bench / "A", image))
    src_b = read_for_metrics(_find(root / "benchmarks" / bench / "B", image))
    fused_folder = _FUSED_FOLDER.get(golden_set, folder)
    fused = read_for_metrics(_find(root / "metrics_golden" / fused_folder / "fused" / method, image))
    if golden_set == "vifb":
        return src_b, src_a, fused  # VIFB calls metric(VIS, IR, F); A = IR, B = VIS
    return src_a, src_b, fused
