"""Image reading for metric evaluation (Pillow, as the golden values were produced with)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def read_for_metrics(path: str | Path) -> np.ndarray:
    """Read an image exactly as MATLAB ``imread`` would return it for the metric toolboxes.

    Decodes with Pillow (libjpeg-turbo for JPEG). 8-bit gray ('L') files give HxW uint8; RGB files give
    HxWx3 uint8 (alpha dropped, palette expanded). No resizing, no channel collapsing: a gray image
    stored as three identical channels stays HxWx3, because the conventions treat it per channel.
    """
    with Image.open(path) as im:
        if im.mode in ("L", "RGB"):
            arr = np.asarray(im)
        elif im.mode in ("I;16", "I;16B", "I;16L", "I"):
            raise ValueError(f"{path}: 16-bit/32-bit images are not supported for 8-bit metrics")
        elif im.mode == "LA":
            arr = np.asarray(im.convert("L"))
        else:
            arr = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(arr, dtype=np.uint8)
