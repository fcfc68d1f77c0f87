"""Locations of the project and of the optional read-only ``../shared`` folder."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def shared_root() -> Path | None:
    """Return the ``shared`` folder beside the project (or ``$GIFNET_SHARED``), or ``None`` if absent.

    The folder holds research-only inputs (released checkpoint, parity fixtures, benchmarks); it is never
    copied into the repository, and every consumer must cope with its absence.
    """
    env = os.environ.get("GIFNET_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(PROJECT_ROOT.parent / "shared")
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return None
