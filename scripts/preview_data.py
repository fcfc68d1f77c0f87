#!/usr/bin/env python
"""Write a PNG grid of N joint training samples (columns: ir, vis, near, far, under, over).

Examples::

    python scripts/preview_data.py                                   # demo source → docs/images/data_preview.png
    python scripts/preview_data.py --data pairs --n 8 --out outputs/pairs_preview.png
    python scripts/preview_data.py --data pairs --set crop_size=256 --set focus.blur_radius=[4,8]

``--data`` names a config of ``configs/data/`` and ``--set key=value`` overrides it (Hydra syntax).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from gifnet.data.config import instantiate_data  # noqa: E402
from gifnet.data.io import write_image_atomic  # noqa: E402
from gifnet.data.preview import make_preview_grid  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="demo", help="config name in configs/data (demo, pairs, official)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    ap.add_argument("--n", type=int, default=6, help="number of samples (rows)")
    ap.add_argument("--epoch", type=int, default=0, help="epoch to draw the samples from")
    ap.add_argument("--out", default="docs/images/data_preview.png", help="output PNG")
    args = ap.parse_args(argv)

    ds = instantiate_data(args.data, args.set)
    ds.set_epoch(args.epoch)
    n = min(args.n, len(ds))
    # spread the rows over the dataset so that different scenes show up
    indices = np.linspace(0, len(ds) - 1, n).round().astype(int)
    samples = [ds[int(i)] for i in indices]
    ir_label = "ir (SIMULATED)" if args.data == "demo" else None
    grid = make_preview_grid(samples, ir_label=ir_label)
    out = write_image_atomic(args.out, grid)
    print(f"wrote {out} ({n} samples from {ds!r})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
