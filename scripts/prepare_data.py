#!/usr/bin/env python
"""Write fixed training files in the official GIFNet layout (+ this project's exposure folders).

Output::

    <out>/infrared/<split>/<k>.png            <out>/visible/<split>/<k>.png
    <out>/visible_focus_near/<split>/<k>.png  <out>/visible_focus_far/<split>/<k>.png
    <out>/visible_under/<split>/<k>.png       <out>/visible_over/<split>/<k>.png
    <out>/manifest_<split>.csv                (k, dataset index, epoch, has_ir)

with k = 1, 2, … Read it back with ``data=official data.root=<out>``. Natural images without
infrared are written with infrared = visible (``has_ir=0`` in the manifest).

Examples::

    python scripts/prepare_data.py --data pairs --num 2000 --out data/joint_fixed
    python scripts/prepare_data.py --data demo --num 64 --out /tmp/demo_fixed --ext .jpg
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gifnet.data.config import instantiate_data  # noqa: E402
from gifnet.data.export import export_official_layout  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="pairs", help="config name in configs/data (demo, pairs, official)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--num", type=int, default=None, help="number of samples (default: one epoch)")
    ap.add_argument("--split", default="train")
    ap.add_argument("--ext", default=".png", help=".png (lossless, default) or .jpg (like the official files)")
    ap.add_argument("--epoch", type=int, default=0, help="first epoch to draw from")
    ap.add_argument("--overwrite", action="store_true", help="allow writing into non-empty folders")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)

    ds = instantiate_data(args.data, args.set)
    out = export_official_layout(
        ds,
        args.out,
        num=args.num,
        split=args.split,
        ext=args.ext,
        epoch=args.epoch,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    print(f"wrote {args.num or len(ds)} samples to {out} from {ds!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
