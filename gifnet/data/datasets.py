"""Joint IVIF + MFIF + MEIF training samples (torch Datasets) and the DataLoader factory.

A *joint sample* is one aligned scene given as a dict of ``float32`` tensors ``1×h×w`` in [0, 1]:

=========  =====================================================================================
``ir``     infrared (IVIF slot a). For natural images without infrared: a copy of ``vis``.
``vis``    visible luma; IVIF slot b, and the ground truth / reconstruction target of every task.
``near``   near-focused version of ``vis`` (MFIF slot a): synthesised, or read from files (official).
``far``    far-focused version of ``vis`` (MFIF slot b).
``under``  under-exposed version of ``vis`` (MEIF): synthesised, or read from files.
``over``   over-exposed version of ``vis`` (MEIF).
``has_ir`` ``torch.bool`` scalar: ``False`` when ``ir`` is not a real infrared image (natural images):
           the training loop should mask the IVIF loss of those samples.
=========  =====================================================================================

All images are single-channel BT.601 luma (as PIL ``convert("L")``). One random crop (default 128×128),
flip and 90° rotation is applied identically to every member.

Randomness: sample ``i`` of epoch ``e`` uses ``numpy.random.default_rng(SeedSequence([seed, e, i]))``,
so every epoch sees fresh crops/masks/exposures (online synthesis) and yet a run is reproducible
independently of the number of workers or ranks. With ``online=False`` the epoch is ignored (fixed
samples). Call :meth:`JointFusionDataset.set_epoch` (or :func:`set_epoch` on the loader) before each
epoch; with ``persistent_workers=True`` the workers keep their own copy and would not see it.

Sources (see :func:`build_dataset` and ``data/README.md``): ``pairs``, ``official``, ``demo``.
"""

from __future__ import annotations

import functools
import math
import os
import random
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Sampler, SequentialSampler

from ..io import (
    DataError,
    EmptyFolderError,
    PairingError,
    SizeMismatchError,
    describe_error,
    list_images,
    match_pairs,
    read_image,
    read_image_size,
    to_float01,
    to_luma,
)
from ..paths import resolve_path
from .synthesis import (
    ExposureConfig,
    FocusConfig,
    config_from_mapping,
    synthesize_exposure_pair,
    synthesize_focus_pair,
)

__all__ = [
    "MEMBERS",
    "Scene",
    "JointFusionDataset",
    "resolve_path",
    "pairs_dataset",
    "official_dataset",
    "demo_dataset",
    "build_dataset",
    "build_dataloader",
    "set_epoch",
    "seed_worker",
]

MEMBERS: tuple[str, ...] = ("ir", "vis", "near", "far", "under", "over")
"""Image members of a joint sample, in the canonical order (also the preview column order)."""

OFFICIAL_FOLDERS = {
    "ir": "infrared",
    "vis": "visible",
    "near": "visible_focus_near",
    "far": "visible_focus_far",
    "under": "visible_under",
    "over": "visible_over",
}
"""Folder of each member in the official layout (``under``/``over`` are this project's additions)."""

ImageSource = Path | np.ndarray


@dataclass
class Scene:
    """One aligned scene: each member is a file path, an in-memory ``float32`` luma array, or ``None``.

    ``ir=None`` means no infrared exists (natural image): the sample gets ``ir := vis`` and
    ``has_ir=False``. ``near``/``far`` (``under``/``over``) ``None`` means "synthesise from ``vis``".
    """

    name: str
    vis: ImageSource
    ir: ImageSource | None = None
    near: ImageSource | None = None
    far: ImageSource | None = None
    under: ImageSource | None = None
    over: ImageSource | None = None
    kind: str = "pairs"

    def members(self) -> dict[str, ImageSource]:
        """The members that are given (not synthesised), in :data:`MEMBERS` order."""
        out = {}
        for k in MEMBERS:
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        return out

    def paths(self) -> dict[str, Path]:
        return {k: v for k, v in self.members().items() if isinstance(v, Path)}


def _scene_error(scene: Scene, exc: BaseException) -> str:
    """``describe_error`` of a per-scene failure, naming the scene when the message names no file."""
    reason = describe_error(exc)
    files = [str(v) for v in scene.members().values() if not isinstance(v, np.ndarray)]
    return reason if any(f in reason for f in files) else f"scene {scene.name!r} ({', '.join(files)}): {reason}"


def _load_luma(src: ImageSource) -> np.ndarray:
    if isinstance(src, np.ndarray):
        return src
    return to_float01(to_luma(read_image(src)))


def _pad_to(img: np.ndarray, h: int, w: int, mode: str) -> np.ndarray:
    ph, pw = max(0, h - img.shape[0]), max(0, w - img.shape[1])
    if ph == 0 and pw == 0:
        return img
    if mode == "reflect" and min(img.shape) < 2:
        mode = "edge"
    pad = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
    return np.pad(img, pad, mode=mode)


def _window(img: np.ndarray, top: int, left: int, h: int, w: int, margin: int) -> np.ndarray:
    """``img[top-margin : top+h+margin, left-margin : left+w+margin]`` with reflected out-of-image parts."""
    H, W = img.shape
    t0, l0, t1, l1 = top - margin, left - margin, top + h + margin, left + w + margin
    sub = img[max(t0, 0) : min(t1, H), max(l0, 0) : min(l1, W)]
    pad = ((max(0, -t0), max(0, t1 - H)), (max(0, -l0), max(0, l1 - W)))
    if any(any(p) for p in pad):
        sub = np.pad(sub, pad, mode="symmetric")
    return sub


class JointFusionDataset(Dataset):
    """Map-style dataset of joint IVIF/MFIF/MEIF samples with online synthesis.

    Args:
        scenes: the scenes (see :class:`Scene`).
        crop_size: side of the square random crop; ``None`` keeps whole images (then all images must
            share one size to be batched, as in the official training).
        seed: base seed of the per-sample generators.
        online: fresh random crops/synthesis every epoch (``True``) or the same samples every epoch.
        augment: random horizontal flip and 90° rotation (rotation only for square samples).
        focus: :class:`~gifnet.data.synthesis.FocusConfig` (or mapping) for the MFIF synthesis.
        exposure: :class:`~gifnet.data.synthesis.ExposureConfig` (or mapping) for the MEIF synthesis.
        small_policy: images smaller than the crop: ``"pad"`` (padded with ``pad_mode``) or ``"reject"``
            (skipped at construction, counted, warned).
        pad_mode: ``numpy.pad`` mode for ``"pad"``: ``reflect``, ``symmetric``, ``edge`` or ``constant``.
        max_corrupt_fraction: abort (``DataError``) when more than this fraction of the scenes has an
            unreadable file; below it, they are skipped, counted and reported with a warning.
        scan: checks at construction: ``"header"`` (open every file's header: size mismatch, small images,
            garbage files; cheap), ``"full"`` (decode everything: also truncated files; slow on big sets)
            or ``"none"``. Files that fail to decode later are replaced by another sample, with a warning.
        repeats: how many times each scene appears per epoch (one int, or one per scene).
        cache: keep decoded luma images in memory (per worker).
    """

    def __init__(
        self,
        scenes: Sequence[Scene],
        crop_size: int | None = 128,
        seed: int = 0,
        online: bool = True,
        augment: bool = True,
        focus: FocusConfig | Mapping[str, Any] | None = None,
        exposure: ExposureConfig | Mapping[str, Any] | None = None,
        small_policy: str = "pad",
        pad_mode: str = "reflect",
        max_corrupt_fraction: float = 0.05,
        scan: str = "header",
        repeats: int | Sequence[int] = 1,
        cache: bool = False,
        name: str = "joint",
    ) -> None:
        if small_policy not in ("pad", "reject"):
            raise ValueError(f"small_policy must be 'pad' or 'reject', got {small_policy!r}")
        if pad_mode not in ("reflect", "symmetric", "edge", "constant"):
            raise ValueError(f"pad_mode must be reflect, symmetric, edge or constant, got {pad_mode!r}")
        if scan not in ("header", "full", "none"):
            raise ValueError(f"scan must be 'header', 'full' or 'none', got {scan!r}")
        if crop_size is not None and int(crop_size) < 1:
            raise ValueError(f"crop_size must be a positive integer or None, got {crop_size!r}")
        if not 0.0 <= float(max_corrupt_fraction) <= 1.0:
            raise ValueError(f"max_corrupt_fraction must be in [0, 1], got {max_corrupt_fraction}")
        self.name = name
        self.crop_size = None if crop_size is None else int(crop_size)
        self.seed = int(seed)
        self.online = bool(online)
        self.augment = bool(augment)
        self.focus = config_from_mapping(FocusConfig, focus)
        self.exposure = config_from_mapping(ExposureConfig, exposure)
        self.small_policy = small_policy
        self.pad_mode = pad_mode
        self.max_corrupt_fraction = float(max_corrupt_fraction)
        self.scan = scan
        self.cache = bool(cache)
        self.epoch = 0
        self.loader_defaults: dict[str, Any] = {}
        self._cache: dict[str, np.ndarray] = {}
        self._warned: set[str] = set()

        scenes = list(scenes)
        if isinstance(repeats, int):
            reps = [int(repeats)] * len(scenes)
        else:
            reps = [int(r) for r in repeats]
            if len(reps) != len(scenes):
                raise ValueError(f"repeats: {len(reps)} values for {len(scenes)} scenes")
        if not scenes:
            raise EmptyFolderError(f"{name}: no scene to load")

        self.corrupt: list[str] = []  # "file: problem"
        self.rejected_small: list[str] = []
        kept: list[Scene] = []
        kept_reps: list[int] = []
        for scene, rep in zip(scenes, reps):
            status = self._check_scene(scene)
            if status == "ok":
                kept.append(scene)
                kept_reps.append(rep)
        n = len(scenes)
        if self.corrupt:
            frac = len(self.corrupt) / n
            listing = "; ".join(self.corrupt[:10]) + (" …" if len(self.corrupt) > 10 else "")
            msg = f"{name}: {len(self.corrupt)} of {n} scenes have unreadable files ({frac:.1%}): {listing}"
            if frac > self.max_corrupt_fraction:
                raise DataError(msg + f" — more than max_corrupt_fraction={self.max_corrupt_fraction}, aborting")
            warnings.warn(msg + " — skipped", stacklevel=2)
        if self.rejected_small:
            listing = "; ".join(self.rejected_small[:10]) + (" …" if len(self.rejected_small) > 10 else "")
            warnings.warn(
                f"{name}: rejected {len(self.rejected_small)} scenes smaller than the {self.crop_size}px crop "
                f"(small_policy=reject): {listing}",
                stacklevel=2,
            )
        if not kept:
            raise DataError(
                f"{name}: no usable scene left out of {n}: {len(self.corrupt)} unreadable, {len(self.rejected_small)} "
                f"smaller than the {self.crop_size}px crop (small_policy=reject: use small_policy=pad or a smaller "
                "data.crop_size)")
        self.scenes = kept
        # interleaved: every scene once, then every scene with repeat ≥ 2 again, … (an epoch prefix or an
        # unshuffled export covers all scenes first)
        reps_arr = np.maximum(np.asarray(kept_reps, dtype=np.int64), 0)
        order = [np.flatnonzero(reps_arr > r) for r in range(int(reps_arr.max(initial=0)))]
        self._index = np.concatenate(order) if order else np.zeros(0, np.int64)
        if len(self._index) == 0:
            raise DataError(f"{name}: every scene has repeat 0")

    # ------------------------------------------------------------------------------------ validation
    @property
    def n_corrupt(self) -> int:
        """Number of scenes skipped because a file could not be read."""
        return len(self.corrupt)

    @property
    def n_rejected_small(self) -> int:
        """Number of scenes rejected because smaller than the crop (``small_policy="reject"``)."""
        return len(self.rejected_small)

    def _sizes(self, scene: Scene) -> dict[str, tuple[int, int]]:
        sizes = {}
        for k, src in scene.members().items():
            if isinstance(src, np.ndarray):
                sizes[k] = tuple(src.shape[:2])
            elif self.scan == "full":
                sizes[k] = tuple(self._read(src).shape[:2])
            else:
                sizes[k] = read_image_size(src)
        return sizes

    def _check_sizes(self, scene: Scene, sizes: Mapping[str, tuple[int, ...]]) -> None:
        items = list(sizes.items())
        k0, s0 = items[0]
        for k, s in items[1:]:
            if tuple(s) != tuple(s0):
                src0, src = getattr(scene, k0), getattr(scene, k)
                raise SizeMismatchError(
                    f"{self.name}: size mismatch in scene {scene.name!r}: {k0} {_describe(src0)} is "
                    f"{s0[1]}x{s0[0]} (WxH) but {k} {_describe(src)} is {s[1]}x{s[0]}"
                )

    def _check_scene(self, scene: Scene) -> str:
        if self.scan == "none":
            return "ok"
        try:
            sizes = self._sizes(scene)
            self._check_sizes(scene, sizes)
        except Exception as exc:  # noqa: BLE001 - any per-scene problem counts towards max_corrupt_fraction
            self.corrupt.append(_scene_error(scene, exc))
            return "corrupt"
        h, w = next(iter(sizes.values()))
        if self.crop_size is not None and (h < self.crop_size or w < self.crop_size):
            if self.small_policy == "reject":
                self.rejected_small.append(f"{scene.name} ({w}x{h})")
                return "small"
        return "ok"

    # ----------------------------------------------------------------------------------------- epoch
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (changes every random choice when ``online``; call before iterating)."""
        self.epoch = int(epoch)

    def rng_for(self, index: int, epoch: int | None = None) -> np.random.Generator:
        """Generator of sample ``index`` at ``epoch`` (default: current), from ``(seed, epoch, index)``."""
        e = (self.epoch if epoch is None else int(epoch)) if self.online else 0
        return np.random.default_rng(np.random.SeedSequence([self.seed, e, int(index)]))

    def __len__(self) -> int:
        return int(len(self._index))

    # -------------------------------------------------------------------------------------- loading
    def _read(self, src: ImageSource) -> np.ndarray:
        if isinstance(src, np.ndarray):
            return src
        key = str(src)
        if self.cache and key in self._cache:
            return self._cache[key]
        img = _load_luma(src)
        if self.cache:
            self._cache[key] = img
        return img

    def load_scene(self, scene: Scene) -> dict[str, np.ndarray]:
        """Decode the given members of ``scene`` (``float32 H×W`` luma in [0, 1]); checks sizes."""
        arrays = {k: self._read(v) for k, v in scene.members().items()}
        self._check_sizes(scene, {k: a.shape for k, a in arrays.items()})
        return arrays

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} samples")
        rng = self.rng_for(index)
        scene_idx = int(self._index[index])
        for _attempt in range(10):
            scene = self.scenes[scene_idx]
            try:
                arrays = self.load_scene(scene)
            except Exception as exc:  # noqa: BLE001 - any decoding problem: record it and use another scene
                reason = _scene_error(scene, exc)
                if reason not in self._warned:
                    self._warned.add(reason)
                    warnings.warn(f"{self.name}: {reason} — using another scene instead", stacklevel=2)
                scene_idx = int(rng.integers(len(self.scenes)))
                continue
            return self.make_sample(arrays, rng, has_ir=scene.ir is not None)
        raise DataError(f"{self.name}: 10 consecutive unreadable scenes while loading sample {index}")

    # ------------------------------------------------------------------------------------ synthesis
    def make_sample(
        self, arrays: Mapping[str, np.ndarray], rng: np.random.Generator, has_ir: bool = True
    ) -> dict[str, torch.Tensor]:
        """Crop, synthesise the missing members, augment, and convert to tensors.

        ``arrays`` holds at least ``vis`` (``float32 H×W``); missing ``ir`` becomes ``vis``, missing
        ``near``/``far`` and ``under``/``over`` are synthesised from ``vis`` with ``rng``.
        """
        arrays = dict(arrays)
        if "vis" not in arrays:
            raise KeyError("make_sample: 'vis' is required")
        H, W = arrays["vis"].shape
        cs = self.crop_size
        if cs is not None and (H < cs or W < cs):
            if self.small_policy == "reject":
                raise DataError(f"{self.name}: image of {W}x{H} is smaller than the {cs}px crop")
            arrays = {k: _pad_to(a, cs, cs, self.pad_mode) for k, a in arrays.items()}
            H, W = arrays["vis"].shape
        ch, cw = (H, W) if cs is None else (cs, cs)
        top = int(rng.integers(0, H - ch + 1))
        left = int(rng.integers(0, W - cw + 1))
        need_focus = not ("near" in arrays and "far" in arrays)
        margin = int(math.ceil(1.5 * self.focus.max_radius)) + 1 if need_focus else 0
        win = {k: _window(a, top, left, ch, cw, margin) for k, a in arrays.items()}
        vis_w = win["vis"]
        out: dict[str, np.ndarray] = {"vis": vis_w, "ir": win.get("ir", vis_w)}
        if need_focus:
            near, far, _ = synthesize_focus_pair(vis_w, rng, self.focus)
            out["near"], out["far"] = near, far
        else:
            out["near"], out["far"] = win["near"], win["far"]
        if "under" in win and "over" in win:
            out["under"], out["over"] = win["under"], win["over"]
        else:
            under, over, _ = synthesize_exposure_pair(vis_w, rng, self.exposure)
            out["under"], out["over"] = under, over
        if margin:
            out = {k: a[margin : margin + ch, margin : margin + cw] for k, a in out.items()}
        k_rot, flip = 0, False
        if self.augment:
            k_rot = int(rng.integers(4)) if ch == cw else 0
            flip = bool(rng.integers(2))
        sample: dict[str, torch.Tensor] = {}
        for k in MEMBERS:
            a = out[k]
            if k_rot:
                a = np.rot90(a, k_rot)
            if flip:
                a = a[:, ::-1]
            sample[k] = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None]
        sample["has_ir"] = torch.tensor(bool(has_ir))
        return sample

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, scenes={len(self.scenes)}, samples={len(self)}, "
            f"crop={self.crop_size}, online={self.online}, seed={self.seed}, corrupt={self.n_corrupt}, "
            f"rejected_small={self.n_rejected_small})"
        )


def _describe(src: ImageSource | None) -> str:
    if isinstance(src, Path):
        return str(src)
    if src is None:
        return "<none>"
    return "<in-memory array>"


# ------------------------------------------------------------------------------------------- sources
_COMMON_DOC = "Other keyword arguments are passed to :class:`JointFusionDataset`."


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | os.PathLike):
        return [value]
    return list(value)


def natural_scenes(folders: Iterable[str | os.PathLike], recursive: bool = True) -> list[Scene]:
    """All-in-focus single images (no infrared) from ``folders`` as scenes with ``ir=None``."""
    scenes = []
    for folder in folders:
        d = resolve_path(folder)
        files = list_images(d, recursive=recursive)
        if not files:
            raise EmptyFolderError(f"{d}: natural-image folder contains no image files")
        for f in files:
            scenes.append(Scene(name=f"natural/{f.relative_to(d).as_posix()}", vis=f, kind="natural"))
    return scenes


def pairs_dataset(
    root: str | os.PathLike,
    natural: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    repeat: int = 1,
    natural_repeat: int = 1,
    natural_recursive: bool = True,
    skip_unpaired: bool = False,
    a_dir: str = "A",
    b_dir: str = "B",
    name: str = "pairs",
    **kwargs: Any,
) -> JointFusionDataset:
    """``pairs`` source: ``<root>/A/<name>`` = infrared, ``<root>/B/<name>`` = visible (identical names).

    Args:
        root: the pair folder (e.g. ``../shared/data/train/ivif/LLVIP-samples``).
        natural: optional folder(s) of all-in-focus single images (e.g. BSDS500, Kodak24). They have no
            infrared: their samples carry ``ir := vis`` and ``has_ir=False`` so the training loop can
            mask the IVIF loss; they still train the MFIF/MEIF and reconstruction paths.
        repeat: crops per pair per epoch (large pair images hold many crops).
        natural_repeat: crops per natural image per epoch.
        natural_recursive: list natural folders recursively.
        skip_unpaired: warn about and skip unpaired names instead of raising :class:`PairingError`.
        a_dir, b_dir: sub-folder names of the infrared and visible images.

    {common}
    """
    r = resolve_path(root)
    if not r.is_dir():
        raise FileNotFoundError(f"{name}: pair folder {r} does not exist (expected {r}/{a_dir} and {r}/{b_dir})")
    pairs = match_pairs(r / a_dir, r / b_dir, skip_unpaired=skip_unpaired)
    scenes = [Scene(name=n, ir=pa, vis=pb, kind="pairs") for n, pa, pb in pairs]
    reps = [int(repeat)] * len(scenes)
    nat = natural_scenes(_as_list(natural), recursive=natural_recursive)
    scenes += nat
    reps += [int(natural_repeat)] * len(nat)
    return JointFusionDataset(scenes, repeats=reps, name=name, **kwargs)


def official_dataset(
    root: str | os.PathLike,
    split: str = "train",
    exposure_from_files: bool | str = "auto",
    repeat: int = 1,
    crop_size: int | None = 128,
    augment: bool = False,
    skip_unpaired: bool = False,
    name: str = "official",
    **kwargs: Any,
) -> JointFusionDataset:
    """``official`` source: ``<root>/{{infrared,visible,visible_focus_near,visible_focus_far}}/<split>/<k>.jpg``.

    Files are read as-is (the official 128×128 patches: a 128 crop keeps them whole); near/far come from
    the files and under/over are synthesised from ``visible`` unless ``visible_under``/``visible_over``
    exist (``exposure_from_files="auto"``; ``True`` requires them, ``False`` ignores them). The official
    training used no augmentation, hence ``augment=False`` by default here. A ``manifest_<split>.csv``
    written by :func:`gifnet.data.export.export_official_layout` marks natural-image samples
    (``has_ir=0``): they are loaded with ``has_ir=False``.

    {common}
    """
    r = resolve_path(root)
    if not r.is_dir():
        raise FileNotFoundError(f"{name}: folder {r} does not exist")
    members = ["ir", "vis", "near", "far"]
    if exposure_from_files == "auto":
        use_exp = all((r / OFFICIAL_FOLDERS[k] / split).is_dir() for k in ("under", "over"))
    else:
        use_exp = bool(exposure_from_files)
    if use_exp:
        members += ["under", "over"]
    dirs = {k: r / OFFICIAL_FOLDERS[k] / split for k in members}
    for k, d in dirs.items():
        if not d.is_dir():
            raise FileNotFoundError(f"{name}: missing folder {d} (member {k!r} of the official layout)")
    base = match_pairs(dirs["vis"], dirs["ir"], skip_unpaired=skip_unpaired)
    table = {n: {"vis": pv, "ir": pi} for n, pv, pi in base}
    for k in members[2:]:
        pairs = match_pairs(dirs["vis"], dirs[k], skip_unpaired=skip_unpaired)
        found = {n: p for n, _, p in pairs}
        missing = sorted(set(table) - set(found))
        if missing and not skip_unpaired:
            raise PairingError(f"{name}: {len(missing)} files missing in {dirs[k]}: {missing[:20]}")
        for n in list(table):
            if n in found:
                table[n][k] = found[n]
            else:
                del table[n]
    if not table:
        raise PairingError(f"{name}: no complete scene in {r} (split {split!r})")
    no_ir = _manifest_without_ir(r / f"manifest_{split}.csv")
    scenes = []
    for n, m in sorted(table.items(), key=lambda x: _natural_key(x[0])):
        if Path(n).stem in no_ir:  # written by prepare_data.py from a natural image: ir is a copy of vis
            m = {k: v for k, v in m.items() if k != "ir"}
        scenes.append(Scene(name=n, kind="official", **m))
    return JointFusionDataset(scenes, crop_size=crop_size, augment=augment, repeats=repeat, name=name, **kwargs)


def _manifest_without_ir(path: Path) -> set[str]:
    """Keys ``k`` marked ``has_ir=0`` in a ``manifest_<split>.csv`` of :func:`export_official_layout`."""
    if not path.is_file():
        return set()
    import csv

    with open(path, newline="") as f:
        return {row["k"] for row in csv.DictReader(f) if row.get("has_ir", "1").strip() == "0"}


def _natural_key(s: str) -> tuple:
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s))


def demo_dataset(
    images: Sequence[str] | None = None,
    repeat: int = 8,
    name: str = "demo",
    **kwargs: Any,
) -> JointFusionDataset:
    """``demo`` source: scikit-image's bundled photographs with **simulated** infrared (no download).

    The infrared member is a deterministic, thermal-looking transform of the photograph
    (:func:`gifnet.data.demo.simulate_infrared`), not a real infrared image: **results on the demo data
    mean nothing**; it only lets the pipeline run without any dataset.

    Args:
        images: names in ``skimage.data`` (default :data:`gifnet.data.demo.DEMO_IMAGE_NAMES`).
        repeat: crops per image per epoch.

    {common}
    """
    from .demo import demo_scenes

    scenes = [Scene(name=n, ir=ir, vis=vis, kind="demo") for n, ir, vis in demo_scenes(images)]
    return JointFusionDataset(scenes, repeats=repeat, name=name, **kwargs)


for _f in (pairs_dataset, official_dataset, demo_dataset):
    _f.__doc__ = (_f.__doc__ or "").format(common=_COMMON_DOC)

SOURCES = {"pairs": pairs_dataset, "official": official_dataset, "demo": demo_dataset}


def build_dataset(source: str = "demo", loader: Mapping[str, Any] | None = None, **kwargs: Any) -> JointFusionDataset:
    """Factory used as the Hydra ``_target_`` of ``configs/data/data/*.yaml``.

    Args:
        source: ``"pairs"``, ``"official"`` or ``"demo"``.
        loader: DataLoader defaults (``batch_size``, ``num_workers``, ``shuffle``, ``drop_last``,
            ``pin_memory``, ``persistent_workers``) stored on the dataset for :func:`build_dataloader`.
        **kwargs: options of the source function (:func:`pairs_dataset`, :func:`official_dataset`,
            :func:`demo_dataset`) and of :class:`JointFusionDataset`.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}; choose one of {sorted(SOURCES)}")
    clean = {k: _plain(v) for k, v in kwargs.items()}
    ds = SOURCES[source](**clean)
    ds.loader_defaults = dict(_plain(loader) or {})
    return ds


def _plain(v: Any) -> Any:
    """OmegaConf containers → plain Python (so that dataclass configs and paths get plain values)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(v, DictConfig | ListConfig):
            return OmegaConf.to_container(v, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return v


# ----------------------------------------------------------------------------------------- loaders
def seed_worker(worker_id: int, base_seed: int = 0, rank: int = 0) -> None:
    """``worker_init_fn``: seed ``random``, ``numpy`` and ``torch`` of a worker from (seed, rank, worker).

    The dataset itself draws from per-sample generators (independent of workers), so this only affects
    third-party code that uses the global generators.
    """
    ss = np.random.SeedSequence([int(base_seed), int(rank), int(worker_id)])
    s32 = int(ss.generate_state(1)[0])
    random.seed(s32)
    np.random.seed(s32)  # noqa: NPY002 - seeds third-party code that uses the legacy global generator
    torch.manual_seed(s32)


_LOADER_DEFAULTS = {
    "batch_size": 8,
    "num_workers": 0,
    "shuffle": True,
    "drop_last": False,
    "pin_memory": False,
    "persistent_workers": False,
}


def build_dataloader(
    cfg: Dataset | Mapping[str, Any],
    batch_size: int | None = None,
    num_workers: int | None = None,
    shuffle: bool | None = None,
    drop_last: bool | None = None,
    seed: int | None = None,
    distributed: bool = False,
    rank: int | None = None,
    world_size: int | None = None,
    pin_memory: bool | None = None,
    persistent_workers: bool | None = None,
    batch_sampler: Sampler | None = None,
) -> DataLoader:
    """DataLoader over a dataset (or a data config with ``_target_``, instantiated with Hydra): the one loader
    builder of the project (the trainer's too).

    Unset options come from the config's ``loader`` block (stored on the dataset by
    :func:`build_dataset`), then from defaults (batch 8, 0 workers, shuffle, no drop_last).

    Args:
        cfg: a dataset, or a mapping / DictConfig of ``configs/data/data/*.yaml``.
        seed: shuffling / worker seed (default: the dataset's ``seed``).
        distributed: use a :class:`~torch.utils.data.DistributedSampler`; ``rank``/``world_size``
            default to the initialised ``torch.distributed`` process group. Each rank gets a disjoint
            share of the indices; call :func:`set_epoch` every epoch.
        batch_sampler: yields lists of indices (the trainer's resumable, rank-aware order,
            :class:`gifnet.engine.sampler.BatchListSampler`); it then decides batching, order and sharding, and
            ``batch_size``/``shuffle``/``drop_last``/``distributed`` are not used.
    """
    if isinstance(cfg, Dataset):
        dataset = cfg
    else:
        from hydra.utils import instantiate

        dataset = instantiate(cfg, _convert_="partial")
    defaults = dict(_LOADER_DEFAULTS)
    defaults.update(getattr(dataset, "loader_defaults", {}) or {})
    opts = {
        "batch_size": batch_size,
        "num_workers": num_workers,
        "shuffle": shuffle,
        "drop_last": drop_last,
        "pin_memory": pin_memory,
        "persistent_workers": persistent_workers,
    }
    o = {k: (defaults[k] if v is None else v) for k, v in opts.items()}
    seed = int(getattr(dataset, "seed", 0) if seed is None else seed)
    nw = int(o["num_workers"])
    if o["persistent_workers"] and nw > 0 and getattr(dataset, "online", False):
        warnings.warn(
            "persistent_workers=True: workers keep their own dataset copy, so set_epoch() does not reach "
            "them and online synthesis repeats the same samples every epoch",
            stacklevel=2,
        )
    shared = {"num_workers": nw, "pin_memory": bool(o["pin_memory"]),
              "persistent_workers": bool(o["persistent_workers"]) and nw > 0}  # fmt: skip
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, **shared,
                          worker_init_fn=functools.partial(seed_worker, base_seed=seed, rank=int(rank or 0)))
    if distributed:
        if rank is None or world_size is None:
            import torch.distributed as dist

            if not (dist.is_available() and dist.is_initialized()):
                raise RuntimeError(
                    "build_dataloader(distributed=True) needs rank/world_size or an initialised process group"
                )
            rank = dist.get_rank() if rank is None else rank
            world_size = dist.get_world_size() if world_size is None else world_size
        sampler = DistributedSampler(
            dataset,
            num_replicas=int(world_size),
            rank=int(rank),
            shuffle=bool(o["shuffle"]),
            seed=seed,
            drop_last=bool(o["drop_last"]),
        )
    else:
        rank = 0 if rank is None else int(rank)
        if o["shuffle"]:
            sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
        else:
            sampler = SequentialSampler(dataset)
    return DataLoader(
        dataset,
        batch_size=int(o["batch_size"]),
        sampler=sampler,
        drop_last=bool(o["drop_last"]),
        **shared,
        worker_init_fn=functools.partial(seed_worker, base_seed=seed, rank=int(rank)),  # rank resolved above
    )


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Set the epoch of the loader's sampler (``DistributedSampler``) and dataset (online synthesis)."""
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    ds = getattr(loader, "dataset", None)
    if hasattr(ds, "set_epoch"):
        ds.set_epoch(epoch)
