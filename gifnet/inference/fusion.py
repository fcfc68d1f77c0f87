"""Fusion of image pairs, stacks and remote-sensing bands with one GIFNet checkpoint (library API).

>>> from gifnet.inference.fusion import Fuser
>>> fuser = Fuser.from_checkpoint("checkpoints/gifnet_official.pt", task="ivif")
>>> rgb_or_gray = fuser.fuse_arrays(ir_array, vis_array)         # numpy in, numpy out
>>> summary = fuser.fuse_folders("ir_dir", "vis_dir", "out_dir")   # pairs matched by file name

The network fuses one luma channel; colour is handled around it by :mod:`gifnet.inference.color` (``standard``: BT.601
YCbCr with the 128 offset, saturation-weighted chroma; ``official``: the released script's rules). Task presets
(:data:`TASKS`) fix the slot order (e.g. MEIF puts the over-exposed image in slot a) and, for the official
colour mode, which slots the released script read as RGB.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gifnet.devices import check_precision, resolve_device, warn_if_slow_precision
from gifnet.inference import color
from gifnet.inference.engine import fuse_tensors
from gifnet.io import (
    IMAGE_EXTENSIONS,
    DataError,
    SizeMismatchError,
    describe_error,
    list_images,
    match_pairs,
    normalize_ext,
    read_image,
    write_image_atomic,
)
from gifnet.models import GIFNet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskPreset:
    """How a task maps its inputs A/B onto GIFNet's slots, and the released script's colour flags."""

    name: str
    swap: bool = False  # slot a = B, slot b = A (MEIF: over-exposed first)
    official_flags: tuple[bool, bool] = (True, True)  # (slot a read as RGB, slot b read as RGB)
    kind: str = "pair"  # pair | remote | enhance
    description: str = ""


TASKS: dict[str, TaskPreset] = {
    "ivif": TaskPreset("ivif", official_flags=(False, True), description="A = infrared, B = visible"),
    "mfif": TaskPreset("mfif", official_flags=(True, True), description="A = near focus, B = far focus"),
    "meif": TaskPreset("meif", swap=True, official_flags=(True, True),
                       description="A = under-exposed, B = over-exposed (slot a = B, as released)"),
    "medical": TaskPreset("medical", official_flags=(True, False), description="A = PET/SPECT (colour), B = MRI"),
    "nir_vis": TaskPreset("nir_vis", official_flags=(False, True), description="A = NIR, B = visible"),
    "remote": TaskPreset("remote", official_flags=(False, False), kind="remote",
                         description="A = multi-band MS (on the PAN grid) or a folder of band files, B = PAN"),
    "enhance": TaskPreset("enhance", official_flags=(True, True), kind="enhance",
                          description="A = the image to enhance (its luma fills both slots)"),
}  # fmt: skip


def get_task(name: str) -> TaskPreset:
    key = name.lower().replace("-", "_")
    if key not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[key]


def load_any_checkpoint(path: str | Path) -> tuple[GIFNet, list[str]]:
    """Load one of our checkpoints, or the official ``Final.model`` directly; returns (model, trained tasks)."""
    from gifnet.models.convert import read_any_checkpoint

    ck = read_any_checkpoint(path)
    if ck.format == "official":
        log.info("%s is an official checkpoint: converted on the fly", path)
    return ck.build_model(), ck.trained_tasks


def _luma_tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None].to(device)


@dataclass
class FuseSummary:
    fused: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def __str__(self) -> str:
        s = f"fused {len(self.fused)}, skipped {len(self.skipped)}, failed {len(self.failed)} in {self.seconds:.1f} s"
        for name, err in self.failed.items():
            s += f"\n  failed {name}: {err}"
        return s


def as_fusable(img, name: str = "image") -> np.ndarray:
    """Validate one image array for fusion and bring it to ``H×W`` (gray) or ``H×W×3`` (RGB), uint8/uint16.

    Accepted: ``H×W``, ``H×W×1``, ``H×W×2`` (gray + alpha), ``H×W×3`` (RGB), ``H×W×4`` (RGBA) in uint8 or uint16, as
    :func:`gifnet.io.read_image` returns them. An alpha channel is dropped (the fused image is opaque).
    Anything else gets a ``TypeError``/``ValueError`` naming ``name``: float arrays (no range can be assumed),
    other integer types, other ranks or channel counts.
    """
    if not isinstance(img, np.ndarray):
        raise TypeError(f"{name}: expected a NumPy image array, got {type(img).__name__}")
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 2, 3, 4)):
        raise ValueError(f"{name}: expected an H x W (gray) or H x W x C image array with C = 1, 3 (RGB) or 2/4 (with "
                         f"alpha), got shape {img.shape}")
    if img.dtype not in (np.uint8, np.uint16):
        hint = ""
        if np.issubdtype(img.dtype, np.floating):
            hint = (" (float images: scale to integers first, e.g. (img * 65535).round().astype(np.uint16) for "
                    "values in [0, 1], or call fuse_tensors on [0, 1] tensors)")
        raise TypeError(f"{name}: unsupported dtype {img.dtype}; images are uint8 or uint16{hint}")
    if img.ndim == 3 and img.shape[2] in (2, 4):
        img = img[:, :, : img.shape[2] - 1]  # drop alpha
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    return img


class Fuser:
    """Fuses numpy images with a GIFNet model under one task preset.

    Args:
        model: a GIFNet (put in eval mode).
        task: task preset name (:data:`TASKS`).
        color_mode: ``standard`` (default) or ``official`` (the released script's colour rules).
        device: ``auto``, ``cpu``, ``cuda``...
        precision: ``fp32`` or ``bf16`` (bfloat16 products; see the README for its measured deviation).
        resize: ``None`` (size mismatch is an error) or ``"b"`` (resample A to B's size).
    """

    def __init__(
        self,
        model: GIFNet,
        task: str = "ivif",
        color_mode: str = "standard",
        device: str = "auto",
        precision: str = "fp32",
        resize: str | None = None,
    ):
        if color_mode not in ("standard", "official"):
            raise ValueError(f"color_mode must be 'standard' or 'official', got {color_mode!r}")
        check_precision(precision)
        if resize not in (None, "b"):
            raise ValueError(f"resize must be null or 'b', got {resize!r}")
        self.task = get_task(task)
        self.color_mode, self.precision, self.resize = color_mode, precision, resize
        self.device = resolve_device(device)
        warn_if_slow_precision(precision, self.device)
        self.model = model.to(self.device).eval()

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs) -> Fuser:
        model, _ = load_any_checkpoint(path)
        return cls(model, **kwargs)

    # -- core ---------------------------------------------------------------------------------------------
    def fuse_luma(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Network fusion of two float luma planes in [0, 1] (already in slot order) → float32 plane."""
        ta, tb = _luma_tensor(a, self.device), _luma_tensor(b, self.device)
        return fuse_tensors(self.model, ta, tb, precision=self.precision)[0, 0].float().cpu().numpy()

    def _slots(self, img_a: np.ndarray, img_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (img_b, img_a) if self.task.swap else (img_a, img_b)

    def _match_size(self, img_a: np.ndarray, img_b: np.ndarray, names=("A", "B")) -> np.ndarray:
        if img_a.shape[:2] == img_b.shape[:2]:
            return img_a
        if self.resize != "b":
            raise SizeMismatchError(
                f"size mismatch: {names[0]} is {img_a.shape[1]}x{img_a.shape[0]}, {names[1]} is "
                f"{img_b.shape[1]}x{img_b.shape[0]} (W x H); pass resize=b to resample A to B's size"
            )
        import cv2

        h, w = img_b.shape[:2]
        return cv2.resize(img_a, (w, h), interpolation=cv2.INTER_CUBIC if img_a.shape[0] < h else cv2.INTER_AREA)

    def fuse_arrays(self, img_a: np.ndarray, img_b: np.ndarray | None = None, names=("A", "B")) -> np.ndarray:
        """Fuse two images given as A/B of the task (uint8/uint16, gray or RGB) → uint8/uint16 image.

        For ``enhance`` only ``img_a`` is used. Colour is detected per image (3 equal channels = gray).
        """
        if self.task.kind == "remote":
            raise ValueError("task 'remote' fuses band stacks: use fuse_remote()")
        img_a = as_fusable(img_a, names[0])
        img_b = None if img_b is None else as_fusable(img_b, names[1])
        if self.task.kind == "enhance":
            img_b = img_a
        if img_b is None:
            raise ValueError(f"task {self.task.name!r} needs two inputs")
        img_a = self._match_size(img_a, img_b, names)
        sa, sb = self._slots(img_a, img_b)
        flags = self.task.official_flags if self.color_mode == "official" else (None, None)
        la, lb, cctx = color.prepare_inputs(sa, sb, self.color_mode, flag_a=flags[0], flag_b=flags[1])
        y = self.fuse_luma(la, lb)
        return color.finish_output(y, cctx)

    def fuse_stack(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Fuse N ≥ 2 images by sequential pairwise fusion.

        Order: for ``meif`` the images are sorted by mean luma (darkest first) and each step fuses the running
        result (as the darker input, A) with the next brighter image (B); for other tasks the given order is
        used, the running result being A and the next image B. Each intermediate result is an image of the
        inputs' dtype (rounded), exactly as if it had been saved and fused again.
        """
        if len(images) < 2:
            raise ValueError(f"a stack needs at least 2 images, got {len(images)}")
        imgs = list(images)
        if self.task.name == "meif":
            imgs.sort(key=lambda im: float(np.mean(im)) / color.max_value_of(im.dtype))
        acc = imgs[0]
        for nxt in imgs[1:]:
            acc = self.fuse_arrays(acc, nxt)
        return acc

    def fuse_remote(self, ms: np.ndarray, pan: np.ndarray, postprocess: bool = True) -> np.ndarray:
        """Fuse every MS band (H×W×K, on the PAN grid) with PAN (H×W), then the released post-processing.

        Returns H×W×K with the dtype of ``ms``. Bands go into slot a, PAN into slot b.
        """
        from gifnet.inference.remote import postprocess_band

        if ms.ndim == 2:
            ms = ms[..., None]
        if pan.ndim != 2:
            raise ValueError(f"PAN must be a single band, got shape {pan.shape}")
        if ms.shape[:2] != pan.shape:
            raise SizeMismatchError(f"MS bands are {ms.shape[1]}x{ms.shape[0]}, PAN is {pan.shape[1]}x{pan.shape[0]}")
        maxv = color.max_value_of(ms.dtype)
        pan01 = pan.astype(np.float32) / color.max_value_of(pan.dtype)
        out = []
        for k in range(ms.shape[2]):
            band = ms[..., k]
            y = self.fuse_luma(band.astype(np.float32) / maxv, pan01)
            if self.color_mode == "official":
                fused = np.floor(np.clip(y * maxv, 0, maxv)).astype(ms.dtype)  # released: truncation
            else:
                fused = np.round(np.clip(y * maxv, 0, maxv)).astype(ms.dtype)
            out.append(postprocess_band(fused, band) if postprocess else fused)
        return np.stack(out, axis=-1)

    # -- folders ------------------------------------------------------------------------------------------
    def fuse_folders(
        self,
        a: str | Path,
        b: str | Path | None,
        out: str | Path,
        skip_unpaired: bool = False,
        ext: str | None = ".png",
        progress: bool = True,
    ) -> FuseSummary:
        """Fuse every pair of ``a``/``b`` (folders matched by file name, or two files) into ``out``.

        Outputs keep the input's name with extension ``ext`` (``None`` keeps the input extension). Inputs are
        never overwritten. Per-pair errors are collected in the summary (and logged), not raised.
        """
        from tqdm import tqdm

        t0 = time.perf_counter()
        ext = normalize_ext(ext)
        out = Path(out)
        summary = FuseSummary()
        jobs = self._jobs(Path(a), None if b is None else Path(b), skip_unpaired, summary)
        out_file = self._out_file(out, single=Path(a).is_file())
        targets = ([out_file] if out_file is not None else
                   self._targets(jobs, out, ext, Path(a), None if b is None else Path(b)))  # checked before any work
        if out_file is not None:
            self._check_not_input(out_file, jobs, Path(a), None if b is None else Path(b))
        (out.parent if out_file is not None else out).mkdir(parents=True, exist_ok=True)
        for (name, pa, pb), target in tqdm(list(zip(jobs, targets)), desc=f"fuse {self.task.name}",
                                           disable=not progress or len(jobs) < 2):  # fmt: skip
            try:
                if self.task.kind == "remote":
                    from gifnet.inference.remote import read_remote_inputs, write_multiband_tiff_atomic

                    ms, pan = read_remote_inputs(pa, pb)
                    write_multiband_tiff_atomic(target, self.fuse_remote(ms, pan))
                else:
                    img_a = read_image(pa)
                    img_b = read_image(pb) if pb is not None else None
                    fused = self.fuse_arrays(img_a, img_b, names=(str(pa), str(pb)))
                    write_image_atomic(target, fused)
                summary.fused.append(name)
            except Exception as e:  # noqa: BLE001 - one bad pair is recorded and the folder goes on
                summary.failed[name] = describe_error(e)
                log.error("%s: %s", name, summary.failed[name])
        summary.seconds = time.perf_counter() - t0
        return summary

    def _out_file(self, out: Path, single: bool) -> Path | None:
        """``out`` naming an output file (one input pair and an image extension), else None (a folder).

        Refused before any work: an existing file as the output folder, a file name for folder inputs, a remote
        output that is not a TIFF."""
        named_file = out.suffix.lower() in IMAGE_EXTENSIONS
        if out.exists() and not out.is_dir() and not (single and named_file):
            raise ValueError(f"out={out} is an existing file: give a folder for the outputs")
        if not named_file:
            return None
        if not single:
            raise ValueError(f"out={out} names a file ({out.suffix}) but the inputs are folders: give a folder")
        if self.task.kind == "remote" and out.suffix.lower() not in (".tif", ".tiff"):
            raise ValueError(f"out={out}: remote-sensing outputs are multi-band TIFFs: name it .tif")
        return out

    @staticmethod
    def _check_not_input(target: Path, jobs, a: Path, b: Path | None) -> None:
        if target.resolve() in {p.resolve() for job in jobs for p in job[1:] if p is not None}:
            raise ValueError(f"refusing to overwrite input {target}: choose another output")
        if target.parent.resolve() in {(p if p.is_dir() else p.parent).resolve() for p in (a, b) if p is not None}:
            raise ValueError(f"out={target} is in an input folder: outputs are never written into input folders")

    def _targets(self, jobs, out: Path, ext: str | None, a: Path, b: Path | None) -> list[Path]:
        """Output paths of ``jobs``; refuses, before any work, outputs in an input folder or on an input, and
        two inputs that would write the same output."""
        in_dirs = {(p if p.is_dir() else p.parent).resolve() for p in (a, b) if p is not None}
        if out.resolve() in in_dirs:
            raise ValueError(f"out={out} is an input folder: outputs are never written into input folders; "
                             "choose another out folder")
        inputs = {p.resolve() for job in jobs for p in job[1:] if p is not None}
        targets, seen = [], {}
        for name, *_ in jobs:
            target = out / (name if ext is None else Path(name).stem + ext)
            if self.task.kind == "remote" and target.suffix.lower() not in (".tif", ".tiff"):
                target = target.with_suffix(".tif")
            if target.resolve() in inputs:
                raise ValueError(f"refusing to overwrite input {target}: choose another out folder")
            key = str(target.resolve()).lower() if os.name == "nt" else str(target.resolve())
            if key in seen:
                raise ValueError(f"inputs {seen[key]} and {name} would both be written to {target}; rename one "
                                 "or keep the input extensions (ext=null)")
            seen[key] = name
            targets.append(target)
        return targets

    def _jobs(self, a: Path, b: Path | None, skip_unpaired: bool, summary: FuseSummary):
        if not a.exists():
            raise FileNotFoundError(f"input.a does not exist: {a}")
        if self.task.kind == "enhance":
            files = [a] if a.is_file() else list_images(a)
            if not files:
                raise DataError(f"no images in {a}")
            return [(p.name, p, None) for p in files]
        if b is None:
            raise ValueError(f"task {self.task.name!r} needs input.b")
        if not b.exists():
            raise FileNotFoundError(f"input.b does not exist: {b}")
        if a.is_file() and b.is_file():
            return [(a.name, a, b)]
        if a.is_file() != b.is_file():
            raise ValueError(f"input.a and input.b must both be files or both folders: {a}, {b}")
        pairs = match_pairs(a, b, skip_unpaired=skip_unpaired)
        if skip_unpaired:
            names_a = {p.name for p in list_images(a)}
            names_b = {p.name for p in list_images(b)}
            summary.skipped = sorted(names_a ^ names_b)
        return [(name, pa, pb) for name, pa, pb in pairs]


def fuse(
    checkpoint: str | Path | GIFNet,
    a: np.ndarray | str | Path,
    b: np.ndarray | str | Path | None = None,
    task: str = "ivif",
    out: str | Path | None = None,
    **options,
) -> np.ndarray | FuseSummary:
    """One-call fusion: arrays in → fused array out; files/folders in → files written to ``out`` + summary.

    ``checkpoint`` is a path (ours or the official ``Final.model``) or a :class:`GIFNet`; ``options`` go to
    :class:`Fuser` (``color_mode``, ``device``, ``precision``, ``resize``) or, for folders, to
    :meth:`Fuser.fuse_folders` (``skip_unpaired``, ``ext``, ``progress``).
    """
    folder_keys = {"skip_unpaired", "ext", "progress"}
    fuser_opts = {k: v for k, v in options.items() if k not in folder_keys}
    model = checkpoint if isinstance(checkpoint, GIFNet) else load_any_checkpoint(checkpoint)[0]
    fuser = Fuser(model, task=task, **fuser_opts)
    if isinstance(a, np.ndarray):
        return fuser.fuse_arrays(a, b)  # type: ignore[arg-type]
    if out is None:
        raise ValueError("fusing files or folders needs out=DIR")
    return fuser.fuse_folders(a, b, out, **{k: v for k, v in options.items() if k in folder_keys})


# -- configuration-driven entry point (scripts/fuse.py) ---------------------------------------------------------
def load_fuse_config(overrides: Sequence[str] = ()):
    """``configs/fuse/fuse.yaml`` composed with ``key=value`` overrides, as ``gifnet fuse`` composes it; unknown
    keys and missing values are errors."""
    from gifnet.config import compose

    cfg = compose("fuse", overrides)
    check_fuse_config(cfg)
    return cfg


def check_fuse_config(cfg) -> None:
    """The required options of a fusion config are given (``checkpoint`` and ``input.a``, or ``input.stack``)."""
    from omegaconf import OmegaConf

    missing = [k for k, node, key in (("checkpoint", cfg, "checkpoint"), ("input.a", cfg.input, "a"))
               if OmegaConf.is_missing(node, key)]
    if missing and not (cfg.input.stack and missing == ["input.a"]):
        raise ValueError(f"missing required option(s): {', '.join(missing)} (e.g. checkpoint=PATH input.a=DIR)")


def fuse_from_config(cfg) -> FuseSummary:
    """Run the fusion described by a :func:`load_fuse_config` config (folders, a file pair, or a stack)."""
    ext = normalize_ext(cfg.ext)  # settings first, before the checkpoint is read
    target = None
    if cfg.input.stack:
        stack, out = Path(cfg.input.stack), Path(cfg.out)
        target = out if out.suffix.lower() in IMAGE_EXTENSIONS else out / (stack.name + (ext or ".png"))
        if target.parent.resolve() == stack.resolve():
            raise ValueError(f"out={cfg.out} is the stack folder: outputs are never written into input folders")
        if target.exists() and target.is_dir():
            raise ValueError(f"out={target} is a folder: name the output file or its parent folder")
    fuser = Fuser.from_checkpoint(
        cfg.checkpoint, task=cfg.task, color_mode=cfg.color_mode, device=cfg.device,
        precision=cfg.precision, resize=cfg.resize,
    )  # fmt: skip
    if cfg.input.stack:
        t0 = time.perf_counter()
        files = list_images(cfg.input.stack)
        write_image_atomic(target, fuser.fuse_stack([read_image(p) for p in files]))
        log.info("fused a stack of %d images into %s", len(files), target)
        return FuseSummary(fused=[target.name], seconds=time.perf_counter() - t0)
    return fuser.fuse_folders(
        cfg.input.a, cfg.input.b, cfg.out, skip_unpaired=cfg.skip_unpaired, ext=ext, progress=cfg.progress
    )

