"""Embedded demo data: scikit-image's bundled photographs with a **simulated** infrared image.

Nothing is downloaded: only images shipped inside the ``scikit-image`` wheel are used. The infrared
member is *not* a real thermal image; it is a deterministic transform of the photograph (inverted,
blurred luma + "warm" reddish regions + a few smooth hot blobs + mild sensor noise) so that the IVIF
branch sees two different but aligned modalities. **Results obtained on the demo data mean nothing**;
it exists so that training, tests and previews run on a fresh clone without any dataset.
"""

from __future__ import annotations

import warnings
import zlib

import cv2
import numpy as np

from ..io import to_float01, to_luma

__all__ = ["DEMO_IMAGE_NAMES", "load_demo_image", "simulate_infrared", "demo_scenes"]

DEMO_IMAGE_NAMES: tuple[str, ...] = (
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "coins",
    "moon",
    "clock",
    "brick",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "motorcycle_left",
    "retina",
)
"""Photographs of ``skimage.data`` used by the demo source (all ship with scikit-image, no download)."""


def load_demo_image(name: str) -> np.ndarray:
    """Return the ``uint8`` image ``name`` of ``skimage.data`` (``H×W`` or ``H×W×3``)."""
    import skimage.data as skd  # local import: scikit-image is only needed for the demo source

    if name == "motorcycle_left":
        img = skd.stereo_motorcycle()[0]
    else:
        fn = getattr(skd, name, None)
        if fn is None:
            raise ValueError(f"demo: skimage.data has no image {name!r}")
        img = fn()
    img = np.asarray(img)
    if img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    if img.dtype != np.uint8:
        raise ValueError(f"demo: skimage.data.{name} has dtype {img.dtype}, expected uint8")
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img)


def simulate_infrared(img: np.ndarray, name: str = "") -> np.ndarray:
    """**Simulated** infrared (``float32 H×W`` in [0, 1], 8-bit levels) from a photograph; deterministic.

    Recipe (arbitrary, thermal-looking, not physical): 0.55 · inverted luma blurred with σ = 2 px
    + 0.25 · strongly blurred luma (σ = 12 px, "ambient temperature") + 0.6 · blurred warmth (red excess
    of colour images) + 0.45 · 2–4 Gaussian hot blobs placed from ``crc32(name)``; stretched to the
    1st–99.5th percentiles, plus N(0, 0.01) noise, quantised to 8 bits.
    """
    luma = to_float01(to_luma(img))
    h, w = luma.shape
    rng = np.random.default_rng(zlib.crc32(name.encode()) if name else 0)
    inv = 1.0 - cv2.GaussianBlur(luma, (0, 0), 2.0)
    ambient = cv2.GaussianBlur(luma, (0, 0), 12.0)
    ir = 0.55 * inv + 0.25 * ambient
    if img.ndim == 3 and img.shape[2] >= 3:
        rgb = img[..., :3].astype(np.float32) / 255.0
        warmth = np.clip(rgb[..., 0] - 0.5 * (rgb[..., 1] + rgb[..., 2]), 0, 1)
        ir += 0.6 * cv2.GaussianBlur(warmth, (0, 0), 3.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(int(rng.integers(2, 5))):
        cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
        s = rng.uniform(0.04, 0.12) * min(h, w)
        ir += 0.45 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    lo, hi = np.percentile(ir, [1.0, 99.5])
    ir = (ir - lo) / max(float(hi - lo), 1e-6)
    ir = ir + 0.01 * rng.standard_normal(ir.shape)
    return (np.rint(np.clip(ir, 0, 1) * 255.0) / 255.0).astype(np.float32)


def demo_scenes(names: tuple[str, ...] | list[str] | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Load the demo scenes as ``[(name, ir_simulated, vis_luma), ...]`` (``float32 H×W`` in [0, 1]).

    Images that cannot be loaded (e.g. a scikit-image build without one of them) are skipped with a
    warning; an error is raised only when none can be loaded.
    """
    out = []
    failed = []
    for name in names or DEMO_IMAGE_NAMES:
        try:
            img = load_demo_image(name)
        except Exception as exc:  # noqa: BLE001 - optional bundled data; report and continue
            failed.append(f"{name} ({exc})")
            continue
        vis = to_float01(to_luma(img))
        out.append((f"demo_{name}", simulate_infrared(img, name), vis))
    if failed:
        warnings.warn(f"demo: skipped skimage.data images that could not be loaded: {failed}", stacklevel=2)
    if not out:
        raise RuntimeError("demo: no skimage.data image could be loaded; is scikit-image installed?")
    return out

