"""Our checkpoint format: weights + model config + trained tasks + provenance (+ optional training state).

A checkpoint is a ``torch.save``-d dict::

    {"format": "gifnet", "format_version": 1,
     "model_config": {...GIFNetConfig fields...},
     "state_dict": {...},
     "trained_tasks": ["ivif", "mfif"],
     "provenance": {...},
     ...extra (optimizer, scheduler, step, rng states, train config) ...}

Files are written atomically (temporary file in the same folder, then ``os.replace``).

**Loading never runs code.** Every read goes through :func:`torch_load_file`, which unpickles with
``torch.load(weights_only=True)``: tensors, plain containers, numbers and strings only. Everything we store is of
those types (the NumPy RNG state is stored as a tensor, the torch version as ``str``). A file that needs any other
object (a crafted checkpoint, or one written by gifnet before the safe format) is refused with
:class:`UnsafeCheckpointError`; a checkpoint of an earlier gifnet that the user trusts can be rewritten once with
:func:`convert_legacy_checkpoint` (``gifnet import format=legacy trust=true src=SRC dst=DST``).
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


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint needs objects other than tensors and plain types to load: refused (it could run code)."""


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
        "torch_version": str(torch.__version__),  # a plain str: TorchVersion is no plain type
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


def torch_load_file(path: str | Path) -> Any:
    """The one way this project reads a torch file: on CPU, tensors and plain types only (never runs code).

    Raises:
        CheckpointError: missing or unreadable file (the message names it).
        UnsafeCheckpointError: the file needs other objects to load (what, why, and what to do).
    """
    import pickle

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        for line in str(e).splitlines():
            if "GLOBAL" in line or "Unsupported" in line:
                first = line.strip()
                break
        raise UnsafeCheckpointError(
            f"{path}: refused: loading it would need Python objects other than tensors and plain types "
            f"({first}). Such a file can run arbitrary code when loaded, so gifnet never unpickles it. If it is "
            f"a checkpoint written by an earlier gifnet and you trust its origin, rewrite it once in the safe "
            f"format: gifnet import format=legacy trust=true src={path} dst=NEW.pt"
        ) from None
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise CheckpointError(f"{path}: cannot be read as a torch checkpoint ({type(e).__name__}: {e})") from None


def read_checkpoint(path: str | Path, _obj: Any = None) -> dict:
    """Read (safely) and validate a checkpoint dict (does not build the model); ``_obj``: already read."""
    path = Path(path)
    obj = torch_load_file(path) if _obj is None else _obj
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


def _plain_rng(state: Any) -> Any:
    """An RNG state from an earlier gifnet with NumPy's tuple state → the safe layout of :func:`rng_state`."""
    import numpy as np

    if isinstance(state, dict) and isinstance(state.get("numpy"), tuple):
        kind, keys, pos, has_gauss, cached = state["numpy"]
        state = {**state, "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                                    "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}
    return state


def _plain(obj: Any) -> Any:
    """Nested containers with tensors and plain types only (str subclasses such as TorchVersion → str)."""
    import numpy as np

    if isinstance(obj, torch.Tensor) or obj is None or type(obj) in (bool, int, float, str):
        return obj
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, dict):
        return {_plain(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        items = [_plain(v) for v in obj]
        return tuple(items) if type(obj) is tuple else items
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    raise CheckpointError(f"cannot convert a {type(obj).__name__} to a plain type")


def convert_legacy_checkpoint(src: str | Path, dst: str | Path, trust: bool = False) -> Path:
    """Rewrite a checkpoint of an earlier gifnet (full pickle) in the safe format; a one-off the user asks for.

    ``trust=True`` is required: the source is unpickled with full pickle, which runs whatever code the file
    holds. Only do this for files you wrote yourself or otherwise trust. The result loads through the safe path.
    """
    import warnings

    src, dst = Path(src), Path(dst)
    if not trust:
        raise CheckpointError(f"{src}: converting unpickles the file with full pickle; pass trust=True (--trust) "
                              "only for a file you trust")
    if dst.resolve() == src.resolve():
        raise CheckpointError(f"{dst}: refusing to overwrite the source; choose another output path")
    warnings.warn(f"unpickling {src} with full pickle (trusted by the user)", stacklevel=2)
    obj = torch.load(src, map_location="cpu", weights_only=False)  # noqa: S614 - explicit, user-trusted one-off
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{src}: not a gifnet checkpoint")
    if "rng" in obj:
        obj["rng"] = _plain_rng(obj["rng"])
    out = _plain(obj)
    atomic_torch_save(out, dst)
    read_checkpoint(dst)  # the result must load through the safe path
    return dst
