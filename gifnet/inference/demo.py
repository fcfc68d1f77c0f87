"""``gifnet demo``: fuse a generated pair (skimage's 'camera' and a SIMULATED infrared image) with any checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gifnet.inference.engine import fuse_tensors
from gifnet.inference.fusion import load_any_checkpoint
from gifnet.io import write_image_atomic
from gifnet.models import GIFNet


def demo_fusion_pair() -> tuple[np.ndarray, np.ndarray]:
    """(infrared, visible) float32 in [0, 1]: visible = skimage's 'camera'; infrared = SIMULATED (inverted, smoothed
    luma plus two warm blobs)."""
    from scipy.ndimage import gaussian_filter
    from skimage import data

    vis = data.camera().astype(np.float32) / 255
    yy, xx = np.mgrid[: vis.shape[0], : vis.shape[1]] / vis.shape[0]
    blobs = np.exp(-((yy - 0.35) ** 2 + (xx - 0.45) ** 2) / 0.01) + np.exp(-((yy - 0.7) ** 2 + (xx - 0.8) ** 2) / 0.004)
    ir = np.clip(0.6 * gaussian_filter(1 - vis, 3) + 0.5 * blobs, 0, 1).astype(np.float32)
    return ir, vis


def fuse_demo(checkpoint: str | Path | None, out: str | Path, released: str | Path | None = None) -> str:
    """``gifnet demo``: fuse the generated demo pair (:func:`demo_fusion_pair`, simulated
    infrared) with ``checkpoint``, else the released weights (``released``, default ``paths.official``) when present,
    else a randomly
    initialised model (the output then means nothing: the run only shows that the pipeline works). Writes
    ``ir_simulated.png``, ``visible.png`` and ``fused.png`` into ``out``; returns what was done."""
    from gifnet.paths import default_paths, resolve_path

    out = Path(out)
    released = resolve_path(released or default_paths()["official"])
    if checkpoint is not None:
        model, _ = load_any_checkpoint(checkpoint)  # ours or the official format, read safely
        source = str(checkpoint)
    elif released.is_file():
        model, _ = load_any_checkpoint(released)
        source = f"the released checkpoint ({released})"
    else:
        torch.manual_seed(0)
        model, source = GIFNet().eval(), "random initialisation (no checkpoint available)"
    ir, vis = demo_fusion_pair()
    y = fuse_tensors(model, torch.from_numpy(ir)[None, None], torch.from_numpy(vis)[None, None])[0, 0].numpy()
    for name, img in (("ir_simulated", ir), ("visible", vis), ("fused", y)):
        write_image_atomic(out / f"{name}.png", np.round(np.clip(img, 0, 1) * 255).astype(np.uint8))
    return f"fused a {ir.shape[1]}x{ir.shape[0]} demo pair with {source}; wrote {out}/fused.png"
