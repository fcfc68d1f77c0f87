"""Benchmark evaluation: fuse every pair of benchmark datasets with a checkpoint and tabulate metrics.

>>> from gifnet.evaluation import load_eval_config, evaluate_from_config
>>> cfg = load_eval_config(["checkpoint=ckpt.pt", "eval=ivif_vifb", "limit=2"])
>>> result = evaluate_from_config(cfg)      # writes per_image.csv, summary.{md,csv,tex} under cfg.out

Datasets are described by one YAML file each (``configs/eval/<name>.yaml``, schema in docs/evaluation.md): task
preset, source folders, metric convention, metric subset and the order in which the sources are passed to the
convention (``metric_sources``; e.g. VIFB expects (VIS, IR) = (B, A), Tang (IR, VIS) = (A, B)). Metrics are
always computed on the saved 8-bit files read back with :func:`gifnet.metrics.read_for_metrics`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gifnet.data.io import list_images, match_pairs, read_image, write_image_atomic
from gifnet.evaluation_jobs import FusedCache, MetricPool, default_cache_dir, failure, resolve_workers
from gifnet.fusion import TASKS, Fuser, describe_error
from gifnet.metrics import METRICS, list_conventions, list_metrics, read_for_metrics
from gifnet.paths import PROJECT_ROOT, atomic_path, default_paths, resolve_path

log = logging.getLogger(__name__)

__all__ = [
    "CONVENTION_NOTES",
    "DatasetSpec",
    "EvalResult",
    "EvaluationError",
    "Failure",
    "default_data_root",
    "evaluate",
    "evaluate_from_config",
    "list_datasets",
    "load_dataset",
    "load_eval_config",
    "select_datasets",
    "write_figures",
    "write_reports",
]

DEFAULT_DATASETS_DIR = PROJECT_ROOT / "configs" / "eval"
_SOURCE_SLOTS = ("A", "B")
_DATASET_KEYS = {"name", "task", "description", "root", "a", "b", "convention", "metrics", "metric_sources",
                 "source_methods", "peers"}  # fmt: skip

#: Units and variants of each convention, printed in every table header (METRICS.md: never compare across them).
CONVENTION_NOTES: dict[str, str] = {
    "vifb": "VIFB MATLAB: per-channel mean; Mutinf in nats after min-max stretch (sum over sources); "
    "Ssim = sum over sources (0-2); Variance = SD; Psnr/Rmse VIFB definitions; SF channels side by side",
    "tang": "Tang toolbox, legacy (= Metric_TNO.xlsx): gray via rgb2gray; MI in bits (sum); SD saturating uint8 "
    "(<= 15.97); SF on [0,1]; VIF = VIFp sum with uint8 saturation; PSNR/MSE on [0,1]; Qabf on [0,1]",
    "tang_2023": "Tang toolbox, 2023 code: gray via rgb2gray; MI in bits (sum); float SD; SF/Qabf on 0-255",
    "mefb": "MEFB (values as MEFB under Octave): per-channel mean; VIF = Han's VIFF; NMI 0-2; TE Tsallis; "
    "MEF_SSIM on gray; Psnr VIFB definition",
    "standard": "standard definitions (METRICS.md §2) on gray images (rounded rgb2gray): MI in bits (sum); "
    "SSIM = mean over sources (0-1); VIF = VIFp sum; PSNR = 10 log10(255^2/MSE)",
}


class EvaluationError(ValueError):
    """A configuration problem of the evaluation (unknown dataset, bad dataset YAML...)."""


# ----------------------------------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class DatasetSpec:
    """One benchmark dataset as described by its YAML file.

    Attributes:
        name: dataset name (= YAML file stem).
        task: fusion task preset (:data:`gifnet.fusion.TASKS`); decides seen/unseen.
        root: dataset folder.
        a: sub-folder of the A sources (relative to ``root``).
        b: sub-folder of the B sources, or ``None`` for single-input tasks (enhance).
        convention: metric convention (:func:`gifnet.metrics.list_conventions`).
        metrics: metric names (all of the convention when the YAML says ``null``).
        metric_sources: which sources are the convention's arguments ``a`` and ``b`` (e.g. ``("B", "A")``).
        source_methods: extra method rows that score a source folder itself (``{"Original": "A"}``).
        description: free text shown in the table header.
        peers: folder of published methods' fused images, one sub-folder per method (``peers=true`` adds them),
            or ``None`` where none are shared.
    """

    name: str
    task: str
    root: Path
    a: str
    b: str | None
    convention: str
    metrics: tuple[str, ...]
    metric_sources: tuple[str, str]
    source_methods: dict[str, str] = field(default_factory=dict)
    description: str = ""
    images: tuple[str, ...] | None = None  # a fixed subset of image stems (suites such as eval=quick)
    peers: Path | None = None

    @property
    def dir_a(self) -> Path:
        return self.root / self.a

    @property
    def dir_b(self) -> Path | None:
        return None if self.b is None else self.root / self.b


def default_data_root() -> Path:
    """The benchmark root of the ``paths`` group (``paths.data_root``: ``../shared/data/benchmarks``)."""
    return resolve_path(default_paths()["data_root"])


def list_suites(datasets_dir: str | Path | None = None) -> list[str]:
    """Names of the suites (fixed subsets of several datasets) in ``<datasets_dir>/suites``."""
    d = (Path(datasets_dir) if datasets_dir else DEFAULT_DATASETS_DIR) / "suites"
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def load_suite(
    name: str, data_root: str | Path | None = None, datasets_dir: str | Path | None = None,
    metrics: dict[str, Sequence[str]] | None = None,
) -> list[DatasetSpec]:
    """The datasets of suite ``name`` (``suites/<name>.yaml``: ``datasets: {dataset: [image stems]}``)."""
    from dataclasses import replace

    from omegaconf import OmegaConf

    path = (Path(datasets_dir) if datasets_dir else DEFAULT_DATASETS_DIR) / "suites" / f"{name}.yaml"
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(raw, dict) or not isinstance(raw.get("datasets"), dict) or not raw["datasets"]:
        raise EvaluationError(f"{path}: needs a non-empty mapping 'datasets: {{dataset: [image stems]}}'")
    extra = sorted(set(raw) - {"description", "datasets"})
    if extra:
        raise EvaluationError(f"{path}: unknown key(s) {extra}; allowed: ['datasets', 'description']")
    specs = []
    for ds, stems in raw["datasets"].items():
        if not isinstance(stems, list) or not stems:
            raise EvaluationError(f"{path}: datasets.{ds} must be a non-empty list of image stems")
        spec = load_dataset(str(ds), data_root, datasets_dir, (metrics or {}).get(str(ds)))
        specs.append(replace(spec, images=tuple(str(x) for x in stems)))
    return specs


def list_datasets(datasets_dir: str | Path | None = None) -> list[str]:
    """Names of the dataset YAMLs in ``datasets_dir`` (default ``configs/eval``)."""
    d = Path(datasets_dir) if datasets_dir else DEFAULT_DATASETS_DIR
    if not d.is_dir():
        raise EvaluationError(f"datasets folder not found: {d}")
    return sorted(p.stem for p in d.glob("*.yaml"))


def _check_metrics(convention: str, names: Iterable[str], where: str) -> tuple[str, ...]:
    valid = list_metrics(convention)  # ValueError listing the conventions if unknown
    names = tuple(str(n) for n in names)
    bad = [n for n in names if n not in valid]
    if bad:
        raise EvaluationError(
            f"{where}: unknown metric(s) {bad} for convention {convention!r}; valid metrics: {', '.join(valid)}"
        )
    if not names:
        raise EvaluationError(f"{where}: empty metric list")
    return names


def load_dataset(
    name: str,
    data_root: str | Path | None = None,
    datasets_dir: str | Path | None = None,
    metrics: Sequence[str] | None = None,
) -> DatasetSpec:
    """Load and validate ``<datasets_dir>/<name>.yaml``; ``${paths.data_root}`` resolves to ``data_root``.

    Args:
        name: dataset name.
        data_root: benchmark root (default :func:`default_data_root`).
        datasets_dir: folder of dataset YAMLs (default ``configs/eval``).
        metrics: optional metric list overriding the YAML's.

    Raises:
        EvaluationError (a ValueError): unknown dataset (valid names listed), unknown task, convention (valid
            names listed) or metric, malformed YAML.
    """
    from omegaconf import OmegaConf

    names = list_datasets(datasets_dir)
    if name not in names:
        raise EvaluationError(f"unknown dataset {name!r}; valid datasets: {', '.join(names)}")
    path = (Path(datasets_dir) if datasets_dir else DEFAULT_DATASETS_DIR) / f"{name}.yaml"
    raw = OmegaConf.load(path)
    extra = sorted(set(raw.keys()) - _DATASET_KEYS)
    if extra:
        raise EvaluationError(f"{path}: unknown key(s) {extra}; allowed: {sorted(_DATASET_KEYS)}")
    root_dir = resolve_path(data_root) if data_root else default_data_root()
    merged = OmegaConf.merge({"paths": {"data_root": str(root_dir)}}, raw)
    d = OmegaConf.to_container(merged, resolve=True)
    for key in ("task", "root", "a", "convention"):
        if not d.get(key):
            raise EvaluationError(f"{path}: missing required key {key!r}")
    if d.get("name", name) != name:
        raise EvaluationError(f"{path}: name {d['name']!r} differs from the file name {name!r}")
    task = str(d["task"]).lower().replace("-", "_")
    if task not in TASKS:
        raise EvaluationError(f"{path}: unknown task {d['task']!r}; valid tasks: {', '.join(TASKS)}")
    convention = str(d["convention"])
    if convention not in list_conventions():
        raise EvaluationError(
            f"{path}: unknown convention {convention!r}; valid conventions: {', '.join(list_conventions())}"
        )
    b = d.get("b")
    if b is None and TASKS[task].kind != "enhance":
        raise EvaluationError(f"{path}: task {task!r} needs two sources (key 'b')")
    chosen = metrics if metrics is not None else d.get("metrics")
    metric_names = tuple(list_metrics(convention)) if chosen is None else _check_metrics(convention, chosen, name)
    ms = tuple(d.get("metric_sources") or ("A", "B"))
    available = ("A",) if b is None else _SOURCE_SLOTS
    if len(ms) != 2 or any(s not in available for s in ms):
        raise EvaluationError(f"{path}: metric_sources must be two of {list(available)}, got {list(ms)}")
    src_methods = {str(k): str(v) for k, v in (d.get("source_methods") or {}).items()}
    bad = {k: v for k, v in src_methods.items() if v not in available}
    if bad:
        raise EvaluationError(f"{path}: source_methods must map names to one of {list(available)}, got {bad}")
    return DatasetSpec(
        name=name, task=task, root=Path(d["root"]), a=str(d["a"]), b=None if b is None else str(b),
        convention=convention, metrics=metric_names, metric_sources=(ms[0], ms[1]), source_methods=src_methods,
        description=str(d.get("description") or ""), peers=Path(d["peers"]) if d.get("peers") else None,
    )  # fmt: skip


def select_datasets(
    selection: str | Sequence[str],
    trained_tasks: Sequence[str],
    data_root: str | Path | None = None,
    datasets_dir: str | Path | None = None,
    metrics: dict[str, Sequence[str]] | None = None,
) -> list[DatasetSpec]:
    """Datasets for ``selection``: ``seen``/``unseen``/``all`` (by task vs ``trained_tasks``), a suite or names.

    Names may be given as a list or a comma-separated string. ``metrics`` maps dataset names to metric lists
    overriding their YAML; its keys must be dataset names.
    """
    names_all = list_datasets(datasets_dir)
    metrics = dict(metrics or {})
    bad = sorted(set(metrics) - set(names_all))
    if bad:
        raise EvaluationError(f"metrics.<dataset>: unknown dataset(s) {bad}; valid datasets: {', '.join(names_all)}")
    if isinstance(selection, str):
        items = [s.strip() for s in selection.split(",") if s.strip()]
    else:
        items = [str(s).strip() for s in selection]
    if not items:
        raise EvaluationError("eval: empty selection (use seen, unseen, all or dataset names)")
    if len(items) == 1 and items[0] in list_suites(datasets_dir):
        return load_suite(items[0], data_root, datasets_dir, metrics)
    if len(items) == 1 and items[0] in ("seen", "unseen", "all"):
        specs = [load_dataset(n, data_root, datasets_dir, metrics.get(n)) for n in names_all]
        if items[0] == "all":
            return specs
        want_seen = items[0] == "seen"
        return [s for s in specs if (s.task in trained_tasks) == want_seen]
    unknown = [n for n in items if n not in names_all]
    if unknown:
        suites = "".join(f"{x}, " for x in list_suites(datasets_dir))
        raise EvaluationError(
            f"unknown dataset(s) {unknown}; valid: seen, unseen, all, {suites}or {', '.join(names_all)}"
        )
    return [load_dataset(n, data_root, datasets_dir, metrics.get(n)) for n in dict.fromkeys(items)]


# --------------------------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class Failure:
    """One image that could not be scored for one method."""

    dataset: str
    method: str
    image: str
    error: str


@dataclass
class EvalResult:
    """Everything an evaluation produced (per-image values, failures, the datasets and methods scored)."""

    checkpoint: str
    trained_tasks: list[str]
    datasets: list[DatasetSpec] = field(default_factory=list)
    methods: dict[str, list[str]] = field(default_factory=dict)  # dataset -> method names (table order)
    images: dict[str, list[str]] = field(default_factory=dict)  # dataset -> image stems evaluated
    values: list[tuple[str, str, str, str, float]] = field(default_factory=list)  # dataset, method, image, metric, v
    roundoff: set[tuple[str, str, str, str]] = field(default_factory=set)  # values that round-off decides
    files: dict[tuple[str, str, str], Path] = field(default_factory=dict)  # (dataset, method, image) -> file scored
    sources: dict[tuple[str, str], tuple[Path, Path | None]] = field(default_factory=dict)  # (dataset, image)
    checkpoint_names: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, dict[str, float]] = field(default_factory=dict)  # dataset -> {"fusion"|"metrics"|"read": s}
    metric_seconds: dict[str, dict[str, float]] = field(default_factory=dict)  # dataset -> {metric: s}
    workers: int = 0
    cache: dict[str, object] = field(default_factory=dict)  # dir, hits, misses

    def seen(self, spec: DatasetSpec) -> bool:
        return spec.task in self.trained_tasks

    def __str__(self) -> str:
        n_img = sum(len(v) for v in self.images.values())
        return (
            f"evaluated {len(self.datasets)} dataset(s), {n_img} image(s), {len(self.values)} values, "
            f"{len(self.failures)} failure(s) in {self.seconds:.1f} s"
        )


def _pairs(spec: DatasetSpec, images: Sequence[str] | None, limit: int | None) -> list[tuple[str, Path, Path | None]]:
    """(stem, path A, path B or None) of the dataset, sorted, filtered by ``images`` then ``limit``."""
    for d in (spec.dir_a, spec.dir_b):
        if d is not None and not d.is_dir():
            raise FileNotFoundError(f"dataset {spec.name}: folder not found: {d} (set paths.data_root=...)")
    if spec.dir_b is None:
        pairs = [(p.name, p, None) for p in list_images(spec.dir_a)]
    else:
        pairs = [(n, pa, pb) for n, pa, pb in match_pairs(spec.dir_a, spec.dir_b)]
    out = [(Path(n).stem, pa, pb) for n, pa, pb in pairs]
    stems = [s for s, _, _ in out]
    if len(set(stems)) != len(stems):
        raise EvaluationError(f"dataset {spec.name}: two source files share a name stem")
    if images is None:
        images = spec.images
    if images is not None:
        wanted = [Path(str(i)).stem for i in images]
        missing = [w for w in wanted if w not in stems]
        if missing:
            raise EvaluationError(f"dataset {spec.name}: image(s) {missing} not found; available: {', '.join(stems)}")
        out = [t for t in out if t[0] in wanted]
    if limit is not None:
        if limit < 1:
            raise EvaluationError(f"limit must be >= 1, got {limit}")
        out = out[:limit]
    return out


def _index_by_stem(folder: Path) -> dict[str, Path | str]:
    """Image files of ``folder`` by stem; duplicated stems map to an error message."""
    table: dict[str, Path | str] = {}
    for p in list_images(folder):
        if p.stem in table:
            other = table[p.stem]
            names = other if isinstance(other, str) else f"{other.name}, {p.name}"
            table[p.stem] = f"ambiguous fused files for {p.stem!r} in {folder}: {names}"
        else:
            table[p.stem] = p
    return table


def _method_dir(spec: DatasetSpec, location: object, dataset_names: Sequence[str]) -> Path | None:
    """Folder of an extra method's fused images for ``spec`` (``None``: the method is not evaluated there).

    ``{dataset: DIR}`` gives one folder per dataset. A plain ``DIR`` organised per dataset (it has a
    sub-folder named after one of the selected datasets) gives ``DIR/<dataset>`` where that exists; any
    other ``DIR`` holds the fused images directly and is used for every selected dataset.
    """
    if isinstance(location, dict):
        if spec.name not in location:
            return None
        return Path(str(location[spec.name]))
    d = Path(str(location))
    if any((d / n).is_dir() for n in dataset_names):
        return d / spec.name if (d / spec.name).is_dir() else None
    return d


def _to_gray_band(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3:
        if img.shape[2] >= 3 and not (np.array_equal(img[..., 0], img[..., 1])
                                      and np.array_equal(img[..., 0], img[..., 2])):  # fmt: skip
            raise ValueError("remote: band/PAN files must be single-band (gray) images")
        img = img[..., 0]
    return img


def _fuse_one(fuser: Fuser, pa: Path, pb: Path | None) -> np.ndarray:
    if fuser.task.kind == "remote":
        assert pb is not None
        band, pan = _to_gray_band(read_image(pa)), _to_gray_band(read_image(pb))
        return fuser.fuse_remote(band, pan)[..., 0]
    img_a = read_image(pa)
    img_b = None if pb is None else read_image(pb)
    return fuser.fuse_arrays(img_a, img_b, names=(str(pa), str(pb)))


def _device_kind(device) -> str:
    """The device type and, on CPU, the instruction set torch dispatches to (kernels, hence the last bits of a
    fused value, differ between them): part of the fused-output cache key."""
    import torch

    if device.type == "cpu":
        return f"cpu-{torch.backends.cpu.get_cpu_capability()}"
    return device.type


def _peer_dirs(spec: DatasetSpec) -> dict[str, Path]:
    """Published methods of ``spec`` (sub-folders of its ``peers`` folder), sorted by name."""
    if spec.peers is None:
        return {}
    if not spec.peers.is_dir():
        raise FileNotFoundError(f"dataset {spec.name}: peers folder not found: {spec.peers} (set paths.data_root=...)")
    return {d.name: d for d in sorted(spec.peers.iterdir(), key=lambda p: p.name) if d.is_dir()}


def evaluate(
    checkpoint: str | Path | None,
    datasets: Sequence[DatasetSpec] | str = "all",
    out: str | Path | None = None,
    name: str | None = "GIFNet",
    methods: dict[str, object] | None = None,
    limit: int | None = None,
    images: Sequence[str] | None = None,
    color_mode: str = "standard",
    precision: str = "fp32",
    device: str = "auto",
    progress: bool = True,
    data_root: str | Path | None = None,
    datasets_dir: str | Path | None = None,
    checkpoints: dict[str, str | Path] | None = None,
    peers: bool = False,
    figure: bool = False,
    figure_image: str | None = None,
    figure_top: int = 4,
    cache_dir: str | Path | None = None,
    workers: int | str = 0,
    metrics: dict[str, Sequence[str]] | None = None,
) -> EvalResult:
    """Fuse and score every selected dataset, then write the reports (see :func:`write_reports`).

    Args:
        checkpoint: our checkpoint or the official ``Final.model`` (``None``: only ``checkpoints``, ``methods``
            and ``peers`` are scored); its trained tasks decide seen/unseen.
        datasets: :class:`DatasetSpec` list, or a selection string for :func:`select_datasets`.
        out: output folder (default ``outputs/eval/<checkpoint stem>``); fused images go to
            ``out/fused/<dataset>/<method>/<stem>.png``.
        name: method name of the checkpoint (``None``: the checkpoint's stem).
        methods: other methods: ``{name: DIR}`` or ``{name: {dataset: DIR}}`` (see :func:`_method_dir`); fused
            files are matched to the sources by file stem (``x.jpg`` source ↔ ``x.png`` fused).
        limit: first N pairs of each dataset only.
        images: only these image stems.
        color_mode, precision, device: :class:`gifnet.fusion.Fuser` options.
        progress: tqdm progress bars.
        data_root, datasets_dir: see :func:`load_dataset` (used when ``datasets`` is a string).
        checkpoints: more checkpoints to fuse and score beside ``checkpoint``, ``{name: path}``.
        peers: add every published method shared for each dataset (its YAML's ``peers`` folder).
        figure: write ``out/figures/<dataset>.png`` (:func:`write_figures`) for image ``figure_image`` (default:
            the first evaluated), with the ``figure_top`` best-ranked other methods beside the checkpoints.
        cache_dir: a folder for the fused-output cache (:class:`gifnet.evaluation_jobs.FusedCache`; ``None``: no
            cache): a checkpoint's outputs are fused once per checkpoint file, settings, code and source files.
        workers: processes that compute the metrics while the next image fuses (``"auto"``: every core for 8 or
            more images; 0: in this process). Values do not depend on it.
        metrics: ``{dataset: [metric, ...]}`` overriding datasets' metric lists (when ``datasets`` is a string).

    Missing or unreadable fused files, size mismatches and metric errors become per-image :class:`Failure` s
    (listed in the tables' footers), never silently dropped. Values that floating-point round-off decides
    (:attr:`gifnet.metrics.MetricValue.roundoff`) are kept in ``per_image.csv``, flagged, and left out of means.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    ckpts: dict[str, Path] = {}
    if checkpoint is not None:
        ckpts[name or Path(checkpoint).stem] = Path(checkpoint)
    for n, p in (checkpoints or {}).items():
        if str(n) in ckpts:
            raise EvaluationError(f"checkpoints.{n}: method name used twice")
        ckpts[str(n)] = Path(p)
    from gifnet.models.convert import read_any_checkpoint

    read = {n: read_any_checkpoint(p) for n, p in ckpts.items()}  # each file read once: tasks, then the model
    trained = list(next(iter(read.values())).trained_tasks) if read else []
    if isinstance(datasets, str):  # selected (and validated) before any model is built
        datasets = select_datasets(datasets, trained, data_root, datasets_dir, metrics)
    for n, ck in read.items():
        if ck.format == "official":
            log.info("%s is an official checkpoint: converted on the fly", ckpts[n])
    models = {n: (ck.build_model(), ck.trained_tasks) for n, ck in read.items()}
    del read
    if not datasets:
        raise EvaluationError(f"no dataset selected (checkpoint trained on {trained})")
    methods = dict(methods or {})
    peer_dirs = {spec.name: (_peer_dirs(spec) if peers else {}) for spec in datasets}
    if not ckpts and not methods and not any(peer_dirs.values()):
        raise EvaluationError("nothing to evaluate: give checkpoint=PATH, checkpoints.<name>=PATH, methods or peers")
    for spec in datasets:
        names = [*ckpts, *methods, *spec.source_methods, *peer_dirs[spec.name]]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise EvaluationError(f"dataset {spec.name}: method name(s) {dup} used twice")
    first = next(iter(ckpts.values()), None)
    out = Path(out) if out else Path("outputs") / "eval" / (first.stem if first else "methods")
    label = ", ".join(f"{n}: {p}" for n, p in ckpts.items()) if len(ckpts) > 1 else str(first or "none")
    result = EvalResult(checkpoint=label, trained_tasks=trained, datasets=list(datasets), checkpoint_names=list(ckpts))
    if figure_top < 0:
        raise EvaluationError(f"figure_top must be >= 0, got {figure_top}")
    jobs = [(spec, _pairs(spec, images, limit)) for spec in datasets]  # validate every dataset before fusing
    extra_dirs: dict[str, dict[str, Path]] = {}
    for spec, _ in jobs:
        extra_dirs[spec.name] = {}
        for m, loc in methods.items():
            d = _method_dir(spec, loc, [x.name for x in datasets])
            if d is None:
                continue
            if not d.is_dir():
                raise FileNotFoundError(f"methods.{m}: folder not found: {d}")
            extra_dirs[spec.name][m] = d
        extra_dirs[spec.name].update(peer_dirs[spec.name])
    cache = FusedCache(cache_dir)
    n_workers = resolve_workers(workers, sum(len(p) for _, p in jobs))
    pending: list[tuple[str, str, str, Path | None, object]] = []  # dataset, method, image, file, result/future
    with MetricPool(n_workers) as pool:
        for spec, pairs in jobs:
            fusers = {n: Fuser(model, task=spec.task, color_mode=color_mode, device=device, precision=precision)
                      for n, (model, _) in models.items()}  # fmt: skip
            settings = {n: {"task": spec.task, "color_mode": color_mode, "precision": precision,
                            "device": _device_kind(f.device)} for n, f in fusers.items()}  # fmt: skip
            indexes = {m: _index_by_stem(d) for m, d in extra_dirs[spec.name].items()}
            result.methods[spec.name] = [*ckpts, *spec.source_methods, *indexes]
            result.images[spec.name] = [s for s, _, _ in pairs]
            timing = result.timings.setdefault(spec.name, {"fusion": 0.0, "metrics": 0.0, "read": 0.0})
            for stem, pa, pb in tqdm(pairs, desc=f"eval {spec.name}", disable=not progress):
                try:
                    read_for_metrics(pa)
                    if pb is not None:
                        read_for_metrics(pb)
                except Exception as e:  # noqa: BLE001 - one bad item is recorded, the evaluation goes on
                    for m in result.methods[spec.name]:
                        pending.append((spec.name, m, stem, None, failure(f"cannot read sources: {describe_error(e)}")))
                    continue
                result.sources[(spec.name, stem)] = (pa, pb)
                candidates: list[tuple[str, Path | str | None]] = []
                t_fuse = time.perf_counter()
                for n, fuser in fusers.items():
                    try:
                        target = out / "fused" / spec.name / n / f"{stem}.png"
                        key, material = cache.key(ckpts[n], settings[n], [pa, pb]) if cache.dir else (None, None)
                        if key is None or not cache.fetch(key, target):
                            write_image_atomic(target, _fuse_one(fuser, pa, pb))
                            if key is not None:
                                cache.store(key, material, target)
                        candidates.append((n, target))
                    except Exception as e:  # noqa: BLE001 - recorded as this image's failure
                        candidates.append((n, f"fusion failed: {describe_error(e)}"))
                timing["fusion"] += time.perf_counter() - t_fuse
                for m, slot in spec.source_methods.items():
                    candidates.append((m, pa if slot == "A" else pb))
                for m, table in indexes.items():
                    missing = f"missing fused file {stem}.* in {extra_dirs[spec.name][m]}"
                    candidates.append((m, table.get(stem, missing)))
                slots = {"A": pa, "B": pb}
                a_path, b_path = (str(slots[x]) for x in spec.metric_sources)
                for m, where in candidates:
                    if not isinstance(where, Path):
                        pending.append((spec.name, m, stem, None, failure(str(where))))
                        continue
                    job = pool.submit(spec.convention, a_path, b_path, str(where), list(spec.metrics))
                    pending.append((spec.name, m, stem, where, job))
        for ds, m, stem, where, job in pending:  # in submission order: the same result for any number of workers
            r = job.result()
            if "error" in r:
                result.failures.append(Failure(ds, m, stem, r["error"]))
                continue
            result.values.extend((ds, m, stem, k, v) for k, v, _ in r["values"])
            result.roundoff.update((ds, m, stem, k) for k, _, flag in r["values"] if flag)
            result.files[(ds, m, stem)] = where
            per_metric = result.metric_seconds.setdefault(ds, {})
            for k, t in r["timings"].items():
                per_metric[k] = per_metric.get(k, 0.0) + t
            result.timings[ds]["metrics"] += sum(r["timings"].values())
            result.timings[ds]["read"] += r["read"]
    result.workers, result.cache = n_workers, {"dir": None if cache.dir is None else str(cache.dir),
                                               "hits": cache.hits, "misses": cache.misses}  # fmt: skip
    for spec in datasets:
        t = result.timings.get(spec.name, {})
        log.info("%s: %d image(s), fusion %.1f s, metrics %.1f s (summed over %s), reading %.1f s", spec.name,
                 len(result.images.get(spec.name, [])), t.get("fusion", 0.0), t.get("metrics", 0.0),
                 f"{n_workers} worker(s)" if n_workers else "this process", t.get("read", 0.0))
    result.seconds = time.perf_counter() - t0
    write_reports(result, out)
    if figure:
        write_figures(result, out, figure_image, figure_top)
    log.info("%s; reports in %s", result, out)
    return result


# ------------------------------------------------------------------------------------------------ reports
@dataclass
class _Cell:
    n: int  # values in the mean (round-off-dominated ones excluded)
    mean: float
    std: float
    best: bool = False
    second: bool = False
    rank: float = math.nan  # 1 = best in the column (ties share the mean rank)
    roundoff: int = 0  # values left out because round-off decides them


def _write_text_atomic(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
    return path


def _csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _stats(result: EvalResult, spec: DatasetSpec) -> dict[tuple[str, str], _Cell]:
    """(method, metric) -> mean/std (population SD over images), best/second flags and rank per column.

    Round-off-dominated values are left out of the mean and counted. Best and second need >= 2 (>= 3) methods
    with finite means; ranks are 1-based, ties share their mean rank.
    """
    acc: dict[tuple[str, str], list[float]] = {}
    flagged: dict[tuple[str, str], int] = {}
    for ds, m, img, metric, v in result.values:
        if ds != spec.name:
            continue
        if (ds, m, img, metric) in result.roundoff:
            flagged[(m, metric)] = flagged.get((m, metric), 0) + 1
            acc.setdefault((m, metric), [])
        else:
            acc.setdefault((m, metric), []).append(v)
    cells = {
        k: _Cell(len(v), float(np.mean(v)) if v else math.nan, float(np.std(v)) if v else math.nan,
                 roundoff=flagged.get(k, 0))
        for k, v in acc.items()
    }  # fmt: skip
    for metric in spec.metrics:
        col = [cells[(m, metric)] for m in result.methods.get(spec.name, []) if (m, metric) in cells]
        col = [c for c in col if math.isfinite(c.mean)]
        if not col:
            continue
        lower = METRICS[spec.convention][metric].direction == "lower"
        key = (lambda c: c.mean) if lower else (lambda c: -c.mean)
        order = sorted(col, key=key)
        for c in col:
            better = sum(1 for o in col if key(o) < key(c) and not _same(o.mean, c.mean))
            ties = sum(1 for o in col if _same(o.mean, c.mean))
            c.rank = better + (ties + 1) / 2
        if len(col) < 2:
            continue
        best = order[0].mean
        for c in col:
            c.best = _same(c.mean, best)
        rest = [c for c in order if not c.best]
        if len(col) >= 3 and rest:
            for c in rest:
                c.second = _same(c.mean, rest[0].mean)
    return cells


def _same(x: float, y: float) -> bool:
    return math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-15)


def _avg_rank(cells: dict[tuple[str, str], _Cell], method: str, metrics: Sequence[str]) -> float:
    """Mean of the method's ranks over the metrics where it has one (NaN if none)."""
    ranks = [c.rank for c in (cells.get((method, k)) for k in metrics) if c is not None and math.isfinite(c.rank)]
    return float(np.mean(ranks)) if ranks else math.nan


def _decimals(x: float) -> int:
    ax = abs(x) if math.isfinite(x) else 0.0
    return 4 if ax < 10 else 3 if ax < 100 else 2 if ax < 1000 else 1


def _cell_text(c: _Cell, pm: str | None = "±", dagger: str = "†") -> str:
    """``mean ± std`` (``pm=None``: the mean only) with decimals chosen from the mean's magnitude; ``(†k)`` when
    k values were left out as round-off, ``† (k)`` when all were."""
    if not math.isfinite(c.mean) and c.roundoff:
        return f"{dagger} ({c.roundoff})"
    d = _decimals(c.mean)
    text = f"{c.mean:.{d}f}" if pm is None else f"{c.mean:.{d}f} {pm} {c.std:.{d}f}"
    return f"{text} ({dagger}{c.roundoff})" if c.roundoff else text


def _roundoff_note(result: EvalResult, spec: DatasetSpec) -> list[str]:
    """Footer lines naming the round-off-dominated values of ``spec``, per metric and method."""
    per: dict[str, list[str]] = {}
    for ds, m, img, metric in sorted(result.roundoff):
        if ds == spec.name:
            per.setdefault(metric, []).append(f"{m}/{img}")
    return [f"{metric}: {len(v)} value(s) — {', '.join(v)}" for metric, v in per.items()]


_ROUNDOFF_TEXT = ("† values that floating-point round-off decides (Liu's C = 2e-16 on flat windows; docs/metrics.md) "
                  "are left out of the means and ranks, with their count; per-image values in per_image.csv")


def _arrow(spec: DatasetSpec, metric: str) -> bool:
    return METRICS[spec.convention][metric].direction == "lower"


def _header_note(spec: DatasetSpec) -> str:
    order = f"metric arguments a = {spec.metric_sources[0]}, b = {spec.metric_sources[1]}"
    return f"convention: {spec.convention} ({CONVENTION_NOTES.get(spec.convention, '')}); {order}"


def _sections(result: EvalResult) -> list[tuple[str, list[DatasetSpec]]]:
    seen = [s for s in result.datasets if result.seen(s)]
    unseen = [s for s in result.datasets if not result.seen(s)]
    return [(title, specs) for title, specs in (("Seen tasks", seen), ("Unseen tasks", unseen)) if specs]


def _failures_of(result: EvalResult, spec: DatasetSpec) -> list[Failure]:
    return [f for f in result.failures if f.dataset == spec.name]


def _markdown(result: EvalResult, stats: dict[str, dict[tuple[str, str], _Cell]]) -> str:
    lines = [
        "# Evaluation summary", "",
        f"- checkpoint: `{result.checkpoint}` (trained tasks: {', '.join(result.trained_tasks) or 'none'})",
        "- cells: mean ± population SD over the images scored (n); ↑ higher is better, ↓ lower is better; "
        "best mean per column in **bold**, second <ins>underlined</ins>; rank = the method's mean rank over the "
        "metrics (1 = best)",
        f"- failures: {len(result.failures)}; wall time {result.seconds:.1f} s",
    ]  # fmt: skip
    if result.timings:
        where = f"summed over {result.workers} worker processes, run while fusing" if result.workers else "in turn"
        lines.append(f"- time per dataset, fusion + metrics ({where}; timings.json per metric): " + "; ".join(
            f"{k} {v['fusion']:.1f} + {v['metrics']:.1f} s" for k, v in result.timings.items()))
    lines.append("")
    for title, specs in _sections(result):
        lines += [f"## {title}", ""]
        for spec in specs:
            n_img = len(result.images.get(spec.name, []))
            lines += [f"### {spec.name} — task {spec.task}, {n_img} image(s)", ""]
            if spec.description:
                lines += [f"{spec.description}.", ""]
            lines += [_header_note(spec), ""]
            head = ["method", "n"] + [f"{m} {'↓' if _arrow(spec, m) else '↑'}" for m in spec.metrics] + ["rank ↓"]
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            cells = stats[spec.name]
            for m in result.methods.get(spec.name, []):
                row = [m]
                ns = [cells[(m, k)].n + cells[(m, k)].roundoff for k in spec.metrics if (m, k) in cells]
                row.append(f"{max(ns) if ns else 0}/{n_img}")
                for k in spec.metrics:
                    c = cells.get((m, k))
                    if c is None:
                        row.append("–")
                        continue
                    s = _cell_text(c)
                    row.append(f"**{s}**" if c.best else f"<ins>{s}</ins>" if c.second else s)
                r = _avg_rank(cells, m, spec.metrics)
                row.append(f"{r:.2f}" if math.isfinite(r) else "–")
                lines.append("| " + " | ".join(row) + " |")
            fails = _failures_of(result, spec)
            lines.append("")
            notes = _roundoff_note(result, spec)
            if notes:
                lines += [_ROUNDOFF_TEXT + ":", *[f"- {n}" for n in notes], ""]
            if fails:
                lines.append(f"Failures ({len(fails)}):")
                lines += [f"- {f.method} / {f.image}: {f.error}" for f in fails]
            else:
                lines.append("Failures: none.")
            lines.append("")
    return "\n".join(lines)


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                 ("$", r"\$"), ("{", r"\{"), ("}", r"\}"), ("±", r"$\pm$"), ("–", "--"), ("—", "---"),
                 ("^", r"\^{}"), ("≤", r"$\leq$"), ("§", r"\S{}")):  # fmt: skip
        s = s.replace(a, b) if a != "\\" else s.replace(a, "\x00")
    return s.replace("\x00", r"\textbackslash{}")


def _latex(result: EvalResult, stats: dict[str, dict[tuple[str, str], _Cell]]) -> str:
    lines = [
        "% GIFNet evaluation summary (generated by scripts/evaluate.py); needs \\usepackage{booktabs}",
        f"% checkpoint: {result.checkpoint}; trained tasks: {', '.join(result.trained_tasks)}",
    ]
    for title, specs in _sections(result):
        lines += ["", f"\\section*{{{title}}}"]
        for spec in specs:
            n_img = len(result.images.get(spec.name, []))
            cells = stats[spec.name]
            lines += [
                "\\begin{table}[ht]", "\\centering", "\\scriptsize",
                f"\\caption{{{_tex_escape(spec.name)} (task {_tex_escape(spec.task)}, {n_img} images). "
                f"{_tex_escape(_header_note(spec))}. Mean over the images; best in bold, second underlined; "
                "Rank: mean rank over the metrics.}",
                "\\begin{tabular}{l" + "c" * (len(spec.metrics) + 2) + "}", "\\toprule",
                " & ".join(["Method", "n"] + [f"{_tex_escape(k)}$\\{'downarrow' if _arrow(spec, k) else 'uparrow'}$"
                                              for k in spec.metrics] + ["Rank$\\downarrow$"]) + " \\\\",
                "\\midrule",
            ]  # fmt: skip
            for m in result.methods.get(spec.name, []):
                ns = [cells[(m, k)].n + cells[(m, k)].roundoff for k in spec.metrics if (m, k) in cells]
                row = [_tex_escape(m), f"{max(ns) if ns else 0}/{n_img}"]
                for k in spec.metrics:
                    c = cells.get((m, k))
                    if c is None:
                        row.append("--")
                        continue
                    s = _cell_text(c, None, "$\\dagger$")
                    row.append(f"\\textbf{{{s}}}" if c.best else f"\\underline{{{s}}}" if c.second else s)
                r = _avg_rank(cells, m, spec.metrics)
                row.append(f"{r:.2f}" if math.isfinite(r) else "--")
                lines.append(" & ".join(row) + " \\\\")
            lines += ["\\bottomrule", "\\end{tabular}"]
            notes = _roundoff_note(result, spec)
            if notes:
                note = _tex_escape(_ROUNDOFF_TEXT).replace("†", "$\\dagger$") + ": " + _tex_escape("; ".join(notes))
                lines.append("\\\\[2pt]\\parbox{\\linewidth}{\\tiny " + note + "}")
            fails = _failures_of(result, spec)
            if fails:
                lines.append(
                    f"\\\\[2pt]\\parbox{{\\linewidth}}{{\\tiny Failures ({len(fails)}): "
                    + "; ".join(_tex_escape(f"{f.method}/{f.image}: {f.error}") for f in fails)
                    + "}"
                )
            lines += ["\\end{table}"]
    return "\n".join(lines) + "\n"


def write_figures(result: EvalResult, out: str | Path, image: str | None = None, top: int = 4) -> dict[str, Path]:
    """One comparison figure per dataset, ``out/figures/<dataset>.png`` (:mod:`gifnet.evaluation_figure`).

    Panels: source A (and B), every checkpoint, then the ``top`` other methods (published, extra, source rows)
    with the best mean rank over the dataset's metrics, for ``image`` (default: the first image evaluated).
    Methods without a scored file for that image are left out.
    """
    from gifnet.evaluation_figure import write_figure

    paths = {}
    for spec in result.datasets:
        stems = result.images.get(spec.name, [])
        if not stems:
            continue
        stem = Path(image).stem if image else stems[0]
        if stem not in stems:
            raise EvaluationError(f"figure_image {image!r} is not an evaluated image of {spec.name}")
        pa, pb = result.sources[(spec.name, stem)]
        panels = [("source A", read_image(pa))] + ([("source B", read_image(pb))] if pb is not None else [])
        cells = _stats(result, spec)
        others = [m for m in result.methods[spec.name] if m not in result.checkpoint_names]
        others.sort(key=lambda m: (_avg_rank(cells, m, spec.metrics), m))
        for m in [*result.checkpoint_names, *others[:top]]:
            f = result.files.get((spec.name, m, stem))
            if f is not None:
                rank = _avg_rank(cells, m, spec.metrics)
                panels.append((m if not math.isfinite(rank) else f"{m} (rank {rank:.1f})", read_image(f)))
        paths[spec.name] = write_figure(Path(out) / "figures" / f"{spec.name}.png", panels,
                                        f"{spec.name} / {stem} (task {spec.task})")  # fmt: skip
    return paths


def write_reports(result: EvalResult, out: str | Path) -> dict[str, Path]:
    """Write ``per_image.csv``, ``failures.csv``, ``summary.md``, ``summary.csv`` and ``summary.tex`` atomically."""
    out = Path(out)
    stats = {spec.name: _stats(result, spec) for spec in result.datasets}
    paths = {}
    paths["per_image"] = _write_text_atomic(
        out / "per_image.csv",
        _csv_text(["dataset", "method", "image", "metric", "value", "roundoff"],
                  [(*r[:4], repr(r[4]), int(tuple(r[:4]) in result.roundoff)) for r in result.values]),
    )  # fmt: skip
    paths["failures"] = _write_text_atomic(
        out / "failures.csv",
        _csv_text(["dataset", "method", "image", "error"], [(f.dataset, f.method, f.image, f.error)
                                                            for f in result.failures]),
    )  # fmt: skip
    rows = []
    for title, specs in _sections(result):
        for spec in specs:
            for m in result.methods.get(spec.name, []):
                for k in spec.metrics:
                    c = stats[spec.name].get((m, k))
                    if c is not None:
                        rows.append((title.split()[0].lower(), spec.name, spec.task, spec.convention, m, k,
                                     METRICS[spec.convention][k].direction, c.n, repr(c.mean), repr(c.std),
                                     int(c.best), int(c.second), repr(c.rank), c.roundoff,
                                     repr(_avg_rank(stats[spec.name], m, spec.metrics))))  # fmt: skip
    paths["summary_csv"] = _write_text_atomic(
        out / "summary.csv",
        _csv_text(["section", "dataset", "task", "convention", "method", "metric", "better", "n", "mean", "std",
                   "best", "second", "rank", "roundoff", "avg_rank"], rows),
    )  # fmt: skip
    timings = {"seconds": result.seconds, "workers": result.workers, "cache": result.cache,
               "datasets": {d: {**t, "images": len(result.images.get(d, [])),
                                "per_metric": result.metric_seconds.get(d, {})} for d, t in result.timings.items()}}
    paths["timings"] = _write_text_atomic(out / "timings.json", json.dumps(timings, indent=1) + "\n")
    paths["summary_md"] = _write_text_atomic(out / "summary.md", _markdown(result, stats))
    paths["summary_tex"] = _write_text_atomic(out / "summary.tex", _latex(result, stats))
    return paths


# ------------------------------------------------------------------------------------------ configuration
def load_eval_config(overrides: Sequence[str] = ()):
    """``configs/evaluate/evaluate.yaml`` composed with ``key=value`` overrides, as ``gifnet evaluate`` composes it
    (struct mode: unknown keys are errors).

    ``methods.<name>=DIR``, ``checkpoints.<name>=PATH`` and ``metrics.<dataset>=[...]`` may add keys;
    ``checkpoint=null`` is allowed when other checkpoints, methods or ``peers=true`` give something to score.
    """
    from gifnet.config import compose

    cfg = compose("evaluate", overrides)
    check_eval_config(cfg)
    return cfg


def check_eval_config(cfg) -> None:
    """The required options of an evaluation config are given (``checkpoint``)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_missing(cfg, "checkpoint"):
        raise ValueError("missing required option: checkpoint=PATH (e.g. checkpoint='${paths.official}')")


def evaluate_from_config(cfg) -> EvalResult:
    """Run :func:`evaluate` as described by a :func:`load_eval_config` config."""
    from omegaconf import OmegaConf

    c = OmegaConf.to_container(cfg, resolve=True)
    sel = c["eval"] if isinstance(c["eval"], str) else ",".join(map(str, c["eval"]))
    metrics = {str(k): (None if v is None else ([v] if isinstance(v, str) else list(v)))
               for k, v in (c.get("metrics") or {}).items()}  # fmt: skip
    checkpoint = None if c["checkpoint"] is None else Path(c["checkpoint"])
    extra = {str(k): Path(str(v)) for k, v in (c.get("checkpoints") or {}).items()}
    for where, p in ([("checkpoint", checkpoint)] if checkpoint else []) + [(f"checkpoints.{k}", v) for k, v in
                                                                           extra.items()]:  # fmt: skip
        if not p.is_file():
            raise FileNotFoundError(f"{where}: checkpoint not found: {p}")
    if not isinstance(c["cache"], bool):
        raise ValueError(f"cache must be true or false, got {c['cache']!r}")
    images = c.get("images")
    if isinstance(images, str):
        images = [images]
    return evaluate(
        checkpoint, sel, out=c["out"], name=c["name"], methods=c.get("methods") or {}, limit=c["limit"],
        images=images, color_mode=c["color_mode"], precision=c["precision"], device=c["device"],
        progress=bool(c["progress"]), checkpoints=extra, peers=bool(c["peers"]), figure=bool(c["figure"]),
        figure_image=c["figure_image"], figure_top=int(c["figure_top"]),
        cache_dir=(c["cache_dir"] or default_cache_dir()) if c["cache"] else None, workers=c["workers"],
        metrics=metrics, data_root=c["paths"]["data_root"], datasets_dir=c["datasets_dir"],
    )  # fmt: skip
