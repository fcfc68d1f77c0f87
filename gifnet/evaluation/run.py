"""The evaluation run: fuse every pair of the selected datasets with each checkpoint (through the fused-output
cache), score the fused files in metric worker processes while the next image fuses, and write the reports."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gifnet.evaluation.jobs import FusedCache, MetricPool, default_cache_dir, failure, resolve_workers
from gifnet.inference.fusion import Fuser, describe_error
from gifnet.io import list_images, match_pairs, read_image, write_image_atomic
from gifnet.metrics import read_for_metrics

from .datasets import DatasetSpec, EvaluationError, select_datasets
from .reports import write_figures, write_reports

log = logging.getLogger(__name__)


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
    # dataset -> {"fusion"|"metrics"|"read": s}; metric and reading seconds are CPU seconds in worker processes
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    metric_seconds: dict[str, dict[str, float]] = field(default_factory=dict)  # dataset -> {metric: s}
    workers: int = 0
    worker_nice: int = 0
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
    """The device type and, on CPU, the instruction set torch dispatches to and torch's thread count (kernels,
    hence the last bits of a fused value, differ between instruction sets, and MKL's matrix products between
    some thread counts: 2 and 4 threads on the 2026-12-07 AVX2 machine): part of the fused-output cache key."""
    import torch

    if device.type == "cpu":
        return f"cpu-{torch.backends.cpu.get_cpu_capability()}-{torch.get_num_threads()}threads"
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
    worker_nice: int | str = "auto",
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
        color_mode, precision, device: :class:`gifnet.inference.fusion.Fuser` options.
        progress: tqdm progress bars.
        data_root, datasets_dir: see :func:`load_dataset` (used when ``datasets`` is a string).
        checkpoints: more checkpoints to fuse and score beside ``checkpoint``, ``{name: path}``.
        peers: add every published method shared for each dataset (its YAML's ``peers`` folder).
        figure: write ``out/figures/<dataset>.png`` (:func:`write_figures`) for image ``figure_image`` (default:
            the first evaluated), with the ``figure_top`` best-ranked other methods beside the checkpoints.
        cache_dir: a folder for the fused-output cache (:class:`gifnet.evaluation.jobs.FusedCache`; ``None``: no
            cache): a checkpoint's outputs are fused once per checkpoint file, settings, code and source files.
        workers: processes that compute the metrics while the next image fuses (``"auto"``: every core for 8 or
            more images; 0: in this process). Values do not depend on it.
        worker_nice: niceness added to the worker processes (0-19, or ``"auto"``: 19 unless other processes keep
            the CPU busy; :func:`gifnet.evaluation.jobs.check_nice`): the fusion keeps the cores, the metrics take
            the time it leaves. Values do not depend on it.
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
    with MetricPool(n_workers, worker_nice) as pool:
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
        result.workers, result.worker_nice = n_workers, pool.nice
    result.cache = {"dir": None if cache.dir is None else str(cache.dir), "hits": cache.hits, "misses": cache.misses}
    for spec in datasets:
        t = result.timings.get(spec.name, {})
        log.info("%s: %d image(s), fusion %.1f s, metrics %.1f s (%s), reading %.1f s", spec.name,
                 len(result.images.get(spec.name, [])), t.get("fusion", 0.0), t.get("metrics", 0.0),
                 f"CPU, summed over {n_workers} worker(s)" if n_workers else "this process", t.get("read", 0.0))
    result.seconds = time.perf_counter() - t0
    write_reports(result, out)
    if figure:
        write_figures(result, out, figure_image, figure_top)
    log.info("%s; reports in %s", result, out)
    return result


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
        worker_nice=c["worker_nice"], metrics=metrics, data_root=c["paths"]["data_root"],
        datasets_dir=c["datasets_dir"],
    )  # fmt: skip
