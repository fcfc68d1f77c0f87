"""Validation of the training settings: each key checked once, before anything is built, with its allowed range.

:func:`validate_train_config` is called by :class:`~gifnet.engine.trainer.Trainer` first thing; a bad value gets a
:class:`SettingError` naming the key, the value and what is allowed (``train.batch_size must be a positive
integer, got 0``), never a traceback from deep inside PyTorch. Checks that need the built dataset (a run that
would train nothing) are in :func:`check_total_iters`; the memory guard is :func:`check_memory`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gifnet.devices import TRAINING_PRECISIONS


class SettingError(ValueError):
    """A training setting outside its allowed range or of the wrong type."""


def _get(cfg: Mapping, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(cfg: Mapping, key: str, minimum: int, optional: bool = False, what: str = "") -> None:
    v = _get(cfg, key)
    if v is None and optional:
        return
    if not _is_int(v) or v < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        extra = " or null" if optional else ""
        raise SettingError(f"{key} must be {kind}{extra}{what}, got {v!r}")


def _number(cfg: Mapping, key: str, low: float, high: float = math.inf, *, open_low: bool = False,
            open_high: bool = False, optional: bool = False, what: str = "") -> None:  # fmt: skip
    v = _get(cfg, key)
    if v is None and optional:
        return
    ok = _is_number(v) and (v > low if open_low else v >= low) and (v < high if open_high else v <= high)
    if not ok:
        lo = f"{'(' if open_low else '['}{low:g}"
        hi = f"{high:g}{')' if open_high else ']'}" if math.isfinite(high) else "inf)"
        raise SettingError(f"{key} must be a finite number in {lo}, {hi}{' or null' if optional else ''}{what}, "
                           f"got {v!r}")  # fmt: skip


def _choice(cfg: Mapping, key: str, allowed: tuple[str, ...]) -> None:
    v = _get(cfg, key)
    if v not in allowed:
        raise SettingError(f"{key} must be one of {', '.join(allowed)}, got {v!r}")


def validate_train_config(cfg: DictConfig | Mapping) -> None:
    """Check every numeric and choice setting of a composed ``configs/train/train.yaml`` (see module docstring)."""
    c = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    _int(c, "seed", 0)
    _choice(c, "precision", TRAINING_PRECISIONS)
    _int(c, "train.epochs", 1, what=" (epochs that would train nothing)")
    _int(c, "train.max_steps", 1, optional=True, what=" (null = the epochs decide)")
    _int(c, "train.batch_size", 1, optional=True)
    _int(c, "train.num_workers", 0, optional=True)
    _int(c, "train.log_every", 1)
    for key in ("train.save_every", "train.image_every", "train.val_every"):
        _int(c, key, 0, optional=True, what=" (0 = never)")
    _choice(c, "optim.name", ("adam", "adamw"))
    _number(c, "optim.lr", 0.0, 10.0, open_low=True)
    betas = _get(c, "optim.betas")
    if not (isinstance(betas, (list, tuple)) and len(betas) == 2 and all(_is_number(b) and 0 <= b < 1 for b in betas)):
        raise SettingError(f"optim.betas must be two numbers in [0, 1), got {betas!r}")
    _number(c, "optim.eps", 0.0, 1.0, open_low=True)
    _number(c, "optim.weight_decay", 0.0)
    _int(c, "optim.warmup_steps", 0)
    _choice(c, "optim.scheduler", ("constant", "cosine"))
    _number(c, "optim.min_lr", 0.0, float(_get(c, "optim.lr")), what=" (at most optim.lr)")
    _number(c, "optim.grad_clip", 0.0, open_low=True, optional=True)
    for key in ("loss.rec_weight", "loss.dp_ssim_weight"):
        if _get(c, key) is not None:
            _number(c, key, 0.0)
    crop = _get(c, "data.crop_size")
    if crop is not None:
        _int(c, "data.crop_size", 16, what=" (the 5-level MS-SSIM* of the losses halves it 4 times; null = whole "
             "images)")
        if _get(c, "loss.msssim") == "standard" and crop < 176:
            raise SettingError(f"data.crop_size {crop} is too small for loss.msssim=standard (needs >= 176 px: "
                               "5 levels of an 11-px window); use loss.msssim=official or a larger crop")
    if _get(c, "data.repeat") is not None:
        _int(c, "data.repeat", 1)


def check_total_iters(total: int, *, epochs: int, max_steps: int | None, n_samples: int, batch_size: int,
                      world_size: int = 1) -> None:  # fmt: skip
    """A run that would train nothing (e.g. fewer samples than one batch with ``drop_last``) is refused."""
    if total < 1:
        raise SettingError(
            f"this run would train no iteration: {n_samples} sample(s), train.batch_size {batch_size} x "
            f"{world_size} process(es), train.epochs {epochs}, train.max_steps {max_steps}; use a smaller batch or "
            "more data")


#: Training memory model, measured on CPU with the full model (README "Throughput": joint protocol, fp32,
#: batch 8 x 128^2, peak RSS 6.35 GB incl. ~0.4 GB runtime): ~46 KB of activations per training pixel.
BYTES_PER_TRAINING_PIXEL = 46_000
RUNTIME_BYTES = 400e6


def training_memory_bytes(crop_size: int, batch_size: int) -> float:
    """Rough peak memory of one training step of the full-width model (fp32, CPU), for the guard below."""
    return RUNTIME_BYTES + BYTES_PER_TRAINING_PIXEL * crop_size * crop_size * batch_size


def available_memory_bytes(device: Any) -> float | None:
    """Total memory of the device that holds the activations (CUDA: the GPU's; CPU: physical RAM)."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return float(torch.cuda.get_device_properties(device).total_memory)
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(crop_size: int | None, batch_size: int, device: Any, width_ratio: float = 1.0) -> None:
    """Refuse a crop x batch whose estimated training memory exceeds the device's total memory.

    ``width_ratio``: the model's feature width relative to the released one (memory scales about linearly).
    A coarse guard against settings that would swap the machine to a halt or die with an opaque allocator error;
    it does not promise that anything below the limit fits next to other programs.
    """
    if crop_size is None:
        return
    need = RUNTIME_BYTES + (training_memory_bytes(crop_size, batch_size) - RUNTIME_BYTES) * width_ratio
    have = available_memory_bytes(device)
    if have is not None and need > have:
        raise SettingError(
            f"data.crop_size {crop_size} x train.batch_size {batch_size} needs about {need / 1e9:.1f} GB to train "
            f"(≈{BYTES_PER_TRAINING_PIXEL // 1000} KB per pixel), more than this {getattr(device, 'type', device)} "
            f"device's {have / 1e9:.1f} GB; use a smaller crop or batch")
