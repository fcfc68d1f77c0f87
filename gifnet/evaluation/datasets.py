"""Benchmark dataset specs: one YAML per dataset (``configs/eval/<name>.yaml``, schema in docs/evaluation.md), the
suites of ``configs/eval/suites/`` and the selection ``eval=seen|unseen|all|<names>``."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gifnet.inference.fusion import TASKS
from gifnet.metrics import list_conventions, list_metrics
from gifnet.paths import PROJECT_ROOT, default_paths, resolve_path

log = logging.getLogger(__name__)

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
        task: fusion task preset (:data:`gifnet.inference.fusion.TASKS`); decides seen/unseen.
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


