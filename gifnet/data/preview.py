"""Preview grids of joint samples (for people and for TensorBoard)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from .datasets import MEMBERS

__all__ = ["make_preview_grid", "COLUMN_LABELS"]

COLUMN_LABELS: dict[str, str] = {
    "ir": "ir",
    "vis": "vis (GT)",
    "near": "near focus",
    "far": "far focus",
    "under": "under-exp.",
    "over": "over-exp.",
}


def _to_hw(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float32)
    while a.ndim > 2:
        a = a[0]
    return np.clip(a, 0.0, 1.0)


def _split_samples(samples: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if isinstance(samples, Mapping):  # a collated batch: tensors B×1×h×w
        n = len(samples["vis"])
        return [{k: v[i] for k, v in samples.items() if hasattr(v, "__len__") and len(v) == n} for i in range(n)]
    return list(samples)


def make_preview_grid(
    samples: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    members: Sequence[str] = MEMBERS,
    labels: bool = True,
    ir_label: str | None = None,
    gap: int = 2,
    label_height: int = 18,
    max_samples: int | None = None,
) -> np.ndarray:
    """Grid of samples (rows) × members (columns) as a ``uint8 H×W×3`` RGB array.

    Args:
        samples: a list of sample dicts, or one collated batch (tensors ``B×1×h×w``).
        members: columns, in order.
        labels: draw a header row with the column names.
        ir_label: header of the ``ir`` column (e.g. ``"ir (SIMULATED)"`` for the demo source).
        gap: white separation in pixels.
        label_height: header height in pixels.
        max_samples: keep at most this many rows.

    Samples with ``has_ir=False`` get a red "no IR (=vis)" note in their ``ir`` cell. For TensorBoard:
    ``writer.add_image("data/preview", grid, dataformats="HWC")``.
    """
    rows = _split_samples(samples)
    if max_samples is not None:
        rows = rows[:max_samples]
    if not rows:
        raise ValueError("make_preview_grid: no sample given")
    h, w = _to_hw(rows[0][members[0]]).shape
    ncol = len(members)
    top = label_height if labels else 0
    H = top + len(rows) * h + (len(rows) - 1) * gap
    W = ncol * w + (ncol - 1) * gap
    grid = np.full((H, W, 3), 255, np.uint8)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.3, min(0.5, w / 300))
    if labels:
        for j, m in enumerate(members):
            text = ir_label if (m == "ir" and ir_label) else COLUMN_LABELS.get(m, m)
            x0 = j * (w + gap)
            cv2.putText(grid, text, (x0 + 3, label_height - 5), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    for i, s in enumerate(rows):
        y0 = top + i * (h + gap)
        for j, m in enumerate(members):
            cell = _to_hw(s[m])
            if cell.shape != (h, w):
                cell = cv2.resize(cell, (w, h), interpolation=cv2.INTER_AREA)
            x0 = j * (w + gap)
            grid[y0 : y0 + h, x0 : x0 + w] = np.rint(cell * 255.0).astype(np.uint8)[..., None]
            has_ir = s.get("has_ir", True)
            if m == "ir" and not bool(has_ir):
                cv2.putText(grid, "no IR (=vis)", (x0 + 3, y0 + h - 6), font, scale, (255, 0, 0), 1, cv2.LINE_AA)
    return grid
