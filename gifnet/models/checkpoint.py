"""Our checkpoint format: weights + model config + trained tasks + provenance (+ optional training state).

A checkpoint is a ``torch.save``-d dict::

    {"format": "gifnet", "format_version": 1,
     "model_config": {...GIFNetConfig fields...},
     "state_dict": {...},
     "trained_tasks": ["ivif", "mfif"],
     "provenance": {...},
     ...extra (optimizer, scheduler, step, rng states, train config) ...}

Files are written atomically (temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import torch

from gifnet.paths import atomic_path

from .gifnet import GIFNet, GIFNetConfig

FORMAT = "gifnet"
FORMAT_VERSION = 1
KNOWN_TASKS = ("ivif", "mfif", "meif", "medical", "nir_vis", "remote", "enhance")


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not in our format."""


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` without ever leaving a half-written file there."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def save_checkpoint(
    path: str | Path,
    model: GIFNet,
    trained_tasks: list[str],
    provenance: dict | None = None,
    **extra: Any,
) -> Path:
    unknown = sorted(set(trained_tasks) - set(KNOWN_TASKS))
    if unknown:
        raise ValueError(f"unknown trained tasks {unknown}; known: {list(KNOWN_TASKS)}")
    from gifnet import __version__

    prov = {
        "gifnet_version": __version__,
        "torch_version": torch.__version__,
        "saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **(provenance or {}),
    }
    obj = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "trained_tasks": list(trained_tasks),
        "provenance": prov,
        **extra,
    }
    return atomic_torch_save(obj, path)


def torch_load_file(path: str | Path, weights_only: bool = False) -> Any:
    """``torch.load`` on CPU with errors that name the file (missing file: :class:`CheckpointError`)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise CheckpointError(f"{path}: cannot be read as a torch checkpoint ({e})") from e


def read_checkpoint(path: str | Path) -> dict:
    """Read and validate a checkpoint dict (does not build the model)."""
    path = Path(path)
    obj = torch_load_file(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        hint = ""
        if isinstance(obj, dict) and any(str(k).startswith("getSharedFeatures") for k in obj):
            hint = " It looks like the official Final.model: convert it with scripts/import_official.py first."
        raise CheckpointError(f"{path}: not a gifnet checkpoint.{hint}")
    if obj.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {obj['format_version']} is newer than this gifnet supports")
    for key in ("model_config", "state_dict", "trained_tasks"):
        if key not in obj:
            raise CheckpointError(f"{path}: missing {key!r}")
    return obj


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[GIFNet, dict]:
    """Build the model stored in ``path`` (strict loading) and return ``(model.eval(), checkpoint dict)``."""
    obj = read_checkpoint(path)
    try:
        model = GIFNet.from_config(GIFNetConfig.from_dict(obj["model_config"]))
        model.load_state_dict(obj["state_dict"], strict=True)
    except (RuntimeError, ValueError) as e:
        raise CheckpointError(f"{path}: weights do not match the stored model config: {e}") from e
    return model.to(map_location).eval(), obj
