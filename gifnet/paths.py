"""Locations of the project and of the optional read-only ``../shared`` folder."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_paths() -> dict[str, str]:
    """The ``paths`` config group (``configs/common/paths/default.yaml``, the one place for data locations)
    resolved as every command composes it by default (``$GIFNET_SHARED`` honoured); values are as configured
    (relative ones resolve with :func:`resolve_path`)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"paths": OmegaConf.load(PROJECT_ROOT / "configs" / "common" / "paths" / "default.yaml")})
    return {str(k): str(v) for k, v in OmegaConf.to_container(cfg.paths, resolve=True).items()}


def shared_root() -> Path | None:
    """The ``shared`` folder of :func:`default_paths` (beside the project, or ``$GIFNET_SHARED``), or ``None`` if
    absent.

    The folder holds research-only inputs (released checkpoint, parity fixtures, benchmarks); it is never
    copied into the repository, and every consumer must cope with its absence.
    """
    p = resolve_path(default_paths()["shared"])
    return p.resolve() if p.is_dir() else None


def resolve_path(path: str | os.PathLike) -> Path:
    """Resolve a configured path: absolute as is; relative to the current folder if it exists there,
    else relative to the project root (so ``../shared/...`` works from the project root and from Hydra
    run folders); falls back to the current folder (the later error then names that path)."""
    p = Path(os.path.expanduser(str(path)))
    if p.is_absolute():
        return p
    cwd_p = Path.cwd() / p
    if cwd_p.exists():
        return cwd_p.resolve()
    root_p = PROJECT_ROOT / p
    if root_p.exists():
        return root_p.resolve()
    return cwd_p


def sha256_of(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks: the one file hash of the project (checkpoint
    identity, study stamps, the fused-output cache keys)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path beside ``path``; on success it replaces ``path`` in one step.

    The single implementation of "nothing half-written" for every output of the project (checkpoints, images,
    TIFFs, tables): the writer writes to the yielded path; on any exception the temporary file is removed and
    ``path`` is untouched. The final file gets the usual permissions (``0666 & ~umask``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
