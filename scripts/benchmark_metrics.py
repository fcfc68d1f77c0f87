"""Time the full VIFB golden set (105 fused images x 13 metrics = 1,365 values) and check it.

Usage::

    OMP_NUM_THREADS=1 python scripts/benchmark_metrics.py [--workers 2] [--shared ../shared]

Prints the wall time in seconds and how many values match the golden CSV (METRICS.md tolerance).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gifnet.metrics import compute  # noqa: E402
from gifnet.metrics.golden import GOLDEN_SETS, load_triplet, matches, read_rows  # noqa: E402


def _one(args: tuple[str, str, str, str, list[str]]) -> tuple[str, str, dict[str, float]]:
    shared, golden_set, image, method, metrics = args
    a, b, f = load_triplet(Path(shared), golden_set, image, method)
    return image, method, compute(GOLDEN_SETS[golden_set][0], a, b, f, metrics)


def main() -> int:
    """Run the benchmark; returns the process exit code (1 if any value mismatches)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--set", default="vifb", choices=sorted(GOLDEN_SETS))
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    if not (args.shared / "data" / "metrics_golden").is_dir():
        print(f"golden data not found under {args.shared}", file=sys.stderr)
        return 2
    rows = read_rows(args.shared, args.set)
    groups: dict[tuple[str, str], dict[str, float]] = collections.defaultdict(dict)
    for r in rows:
        groups[(r.image, r.method)][r.metric] = r.value
    jobs = [(str(args.shared), args.set, im, me, sorted(v)) for (im, me), v in sorted(groups.items())]
    t0 = time.perf_counter()
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as ex:
            results = list(ex.map(_one, jobs, chunksize=1))
    else:
        results = [_one(j) for j in jobs]
    elapsed = time.perf_counter() - t0
    n_ok = n_all = 0
    for image, method, vals in results:
        for metric, x in vals.items():
            n_all += 1
            if matches(x, groups[(image, method)][metric]):
                n_ok += 1
            else:
                print(f"MISMATCH {image} {method} {metric}: {x!r} vs {groups[(image, method)][metric]!r}")
    print(
        f"{args.set}: {n_all} values for {len(jobs)} fused images in {elapsed:.2f} s "
        f"({args.workers} worker(s)); {n_ok}/{n_all} match the golden values"
    )
    return 0 if n_ok == n_all else 1


if __name__ == "__main__":
    raise SystemExit(main())
