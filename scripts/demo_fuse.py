#!/usr/bin/env python
"""Fuse a generated demo pair (scikit-image photograph + a *simulated* infrared image) and save the result.

Uses ``checkpoint=PATH`` (ours) if given, else the released weights from ``../shared`` when present, else a
randomly initialised model (then the output is meaningless; the run only shows that the pipeline works).
Usage: python scripts/demo_fuse.py [checkpoint=PATH] [out=outputs/demo]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from skimage import data

from gifnet.cli import wants_help
from gifnet.data.io import write_image_atomic
from gifnet.fusion import load_any_checkpoint
from gifnet.models import GIFNet
from gifnet.models.checkpoint import CheckpointError
from gifnet.models.convert import load_official
from gifnet.paths import shared_root


def demo_pair() -> tuple[np.ndarray, np.ndarray]:
    """Visible = skimage 'camera'; infrared = SIMULATED (inverted, smoothed luma plus warm blobs)."""
    vis = data.camera().astype(np.float32) / 255
    yy, xx = np.mgrid[: vis.shape[0], : vis.shape[1]] / vis.shape[0]
    blobs = np.exp(-((yy - 0.35) ** 2 + (xx - 0.45) ** 2) / 0.01) + np.exp(-((yy - 0.7) ** 2 + (xx - 0.8) ** 2) / 0.004)
    ir = np.clip(0.6 * gaussian_filter(1 - vis, 3) + 0.5 * blobs, 0, 1).astype(np.float32)
    return ir, vis


def main(argv: list[str]) -> int:
    if wants_help(argv):
        print(__doc__.strip())
        return 0
    bad = [a for a in argv if "=" not in a or a.split("=", 1)[0] not in ("checkpoint", "out")]
    if bad:
        print(f"demo_fuse.py: unknown argument(s) {bad}; options: checkpoint=PATH out=DIR (see --help)",
              file=sys.stderr)  # fmt: skip
        return 2
    args = dict(a.split("=", 1) for a in argv)
    out = Path(args.get("out", "outputs/demo"))
    if "checkpoint" in args:
        try:
            model, _ = load_any_checkpoint(args["checkpoint"])  # ours or the official format, read safely
        except CheckpointError as e:
            print(f"demo_fuse.py: {e}", file=sys.stderr)
            return 2
        source = args["checkpoint"]
    elif shared_root() and (shared_root() / "official" / "Final.model").is_file():
        model = load_official(shared_root() / "official" / "Final.model")
        source = "released checkpoint (../shared/official/Final.model)"
    else:
        torch.manual_seed(0)
        model, source = GIFNet().eval(), "random initialisation (no checkpoint available)"
    ir, vis = demo_pair()
    y = model.fuse(torch.from_numpy(ir)[None, None], torch.from_numpy(vis)[None, None])[0, 0].numpy()
    for name, img in (("ir_simulated", ir), ("visible", vis), ("fused", y)):
        write_image_atomic(out / f"{name}.png", np.round(np.clip(img, 0, 1) * 255).astype(np.uint8))
    print(f"fused a {ir.shape[1]}x{ir.shape[0]} demo pair with {source}; wrote {out}/fused.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
