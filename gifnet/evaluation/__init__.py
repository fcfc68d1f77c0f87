"""Benchmark evaluation: fuse every pair of benchmark datasets with a checkpoint and tabulate metrics.

>>> from gifnet.evaluation import load_eval_config, evaluate_from_config
>>> cfg = load_eval_config(["checkpoint=ckpt.pt", "eval=ivif_vifb", "limit=2"])
>>> result = evaluate_from_config(cfg)      # writes per_image.csv, summary.{md,csv,tex} under cfg.out

Datasets are described by one YAML file each (``configs/eval/<name>.yaml``, schema in docs/evaluation.md): task
preset, source folders, metric convention, metric subset and the order in which the sources are passed to the
convention (``metric_sources``; e.g. VIFB expects (VIS, IR) = (B, A), Tang (IR, VIS) = (A, B)). Metrics are
always computed on the saved 8-bit files read back with :func:`gifnet.metrics.read_for_metrics`.

The package: :mod:`.datasets` (dataset specs and selection), :mod:`.run` (the run loop and its configuration),
:mod:`.reports` (tables and figures), :mod:`.jobs` (metric workers and the fused-output cache), :mod:`.figure`
(comparison figures) and :mod:`.compare` (two evaluations side by side).
"""

from __future__ import annotations

import importlib

# Public API, loaded on first use (PEP 562): the metric worker processes import ``gifnet.evaluation.jobs`` only,
# and must not pay for torch and the model that the run loop imports.
_EXPORTS = {
    "CONVENTION_NOTES": "datasets", "DEFAULT_DATASETS_DIR": "datasets", "DatasetSpec": "datasets",
    "EvaluationError": "datasets", "default_data_root": "datasets", "list_datasets": "datasets",
    "list_suites": "datasets", "load_dataset": "datasets", "load_suite": "datasets", "select_datasets": "datasets",
    "write_figures": "reports", "write_reports": "reports", "EvalResult": "run", "Failure": "run",
    "check_eval_config": "run", "evaluate": "run", "evaluate_from_config": "run", "load_eval_config": "run",
}  # fmt: skip


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "CONVENTION_NOTES",
    "DEFAULT_DATASETS_DIR",
    "DatasetSpec",
    "EvalResult",
    "EvaluationError",
    "Failure",
    "check_eval_config",
    "default_data_root",
    "evaluate",
    "evaluate_from_config",
    "list_datasets",
    "list_suites",
    "load_dataset",
    "load_eval_config",
    "load_suite",
    "select_datasets",
    "write_figures",
    "write_reports",
]
