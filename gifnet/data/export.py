"""Offline export of joint samples to the official folder layout (fixed training files)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..io import write_image_atomic
from .datasets import OFFICIAL_FOLDERS, JointFusionDataset

__all__ = ["export_official_layout"]


def export_official_layout(
    dataset: JointFusionDataset,
    out_dir: str | os.PathLike,
    num: int | None = None,
    split: str = "train",
    ext: str = ".png",
    start: int = 1,
    epoch: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``num`` samples as ``<out>/{infrared,visible,visible_focus_near,visible_focus_far,
    visible_under,visible_over}/<split>/<k><ext>`` with ``k = start, start+1, …``, plus ``manifest.csv``.

    The result is readable by :func:`gifnet.data.datasets.official_dataset` (which then also reads
    ``visible_under``/``visible_over``). ``num`` larger than the dataset cycles through further epochs
    (fresh crops/synthesis when the dataset is ``online``). PNG (default) is lossless; ``.jpg`` mimics
    the official files. ``manifest.csv`` records ``k``, the dataset index, epoch and ``has_ir``
    (natural images have ``ir = vis``; the official layout cannot express it otherwise).
    """
    out = Path(out_dir)
    ext = ext if ext.startswith(".") else "." + ext
    num = len(dataset) if num is None else int(num)
    if num < 1:
        raise ValueError(f"export_official_layout: num must be ≥ 1, got {num}")
    dirs = {k: out / folder / split for k, folder in OFFICIAL_FOLDERS.items()}
    if not overwrite:
        existing = [d for d in dirs.values() if d.is_dir() and any(d.iterdir())]
        if existing:
            raise FileExistsError(f"{existing[0]} is not empty (pass overwrite=True to replace files)")
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    rows = []
    n = len(dataset)
    for j in tqdm(range(num), disable=not progress, desc="export"):
        ep, idx = epoch + j // n, j % n
        dataset.set_epoch(ep)
        sample = dataset[idx]
        k = start + j
        for member, d in dirs.items():
            img = sample[member][0].numpy()
            write_image_atomic(d / f"{k}{ext}", np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8))
        rows.append({"k": k, "index": idx, "epoch": ep, "has_ir": int(bool(sample["has_ir"]))})
    with open(out / f"manifest_{split}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["k", "index", "epoch", "has_ir"])
        writer.writeheader()
        writer.writerows(rows)
    return out
