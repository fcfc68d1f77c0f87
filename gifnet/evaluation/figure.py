"""Comparison figures of an evaluation: the sources, each checkpoint and the best-ranked published methods.

One PNG per dataset (``<out>/figures/<dataset>.png``): the top row shows one image of every panel with a red box
around a detail, the bottom row that detail enlarged (nearest-neighbour, so pixels stay visible). The detail is
the square of side ~1/5 of the shorter image side where the sources have the most gradient energy (where the
methods differ most visibly). Published methods are ordered by their mean rank over the dataset's metrics.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gifnet.paths import atomic_path

__all__ = ["detail_box", "write_figure"]


def _gray(img: np.ndarray) -> np.ndarray:
    x = img.astype(np.float64)
    return x.mean(axis=2) if x.ndim == 3 else x


def detail_box(a: np.ndarray, b: np.ndarray | None = None, frac: float = 0.2) -> tuple[int, int, int]:
    """(row, col, side) of the square with the most gradient energy of the sources (side = frac * shorter side)."""
    from scipy import ndimage

    g = np.zeros(a.shape[:2])
    for x in (a, b):
        if x is not None:
            y = _gray(x)
            g += np.hypot(ndimage.sobel(y, 0), ndimage.sobel(y, 1))
    h, w = g.shape
    side = max(4, int(round(frac * min(h, w))))
    box = ndimage.uniform_filter(g, size=side, mode="constant")
    half = side // 2
    inner = box[half : h - (side - half) + 1, half : w - (side - half) + 1]
    if inner.size == 0:
        return 0, 0, min(h, w)
    r, c = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return int(r), int(c), side


def write_figure(path: str | Path, panels: list[tuple[str, np.ndarray]], title: str = "") -> Path:
    """Write the two-row comparison figure of ``panels`` ((label, image as read), sources first) atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if not panels:
        raise ValueError("comparison figure: no panel to draw")
    path = Path(path)
    r, c, side = detail_box(panels[0][1], panels[1][1] if len(panels) > 1 else None)
    n = len(panels)
    cols = min(n, 8)  # sources + two checkpoints + the default four others fit one row
    rows = 2 * math.ceil(n / cols)
    h, w = panels[0][1].shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.4 * rows * max(0.5, h / w) * 0.75 + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (label, img) in enumerate(panels):
        top = axes[2 * (i // cols), i % cols]
        bottom = axes[2 * (i // cols) + 1, i % cols]
        kw = {"cmap": "gray", "vmin": 0, "vmax": 255} if img.ndim == 2 else {}
        top.imshow(img, **kw)
        top.add_patch(Rectangle((c - 0.5, r - 0.5), side, side, fill=False, edgecolor="red", linewidth=1.2))
        top.set_title(label, fontsize=8)
        bottom.imshow(img[r : r + side, c : c + side], interpolation="nearest", **kw)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
