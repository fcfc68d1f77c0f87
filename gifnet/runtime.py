"""Process-level settings that make CPU training and inference faster without changing any value.

:func:`keep_freed_memory` stops glibc's ``malloc`` from handing large freed blocks back to the kernel.
By default every tensor above the mmap threshold (at most 32 MB) is a fresh ``mmap`` and its first write
page-faults once per 4 KiB page: on the project's 2-core machine a new 8×98×130×130 float32 map (53 MB)
costs ~13,000 faults and ~11 ms to fill, against ~4 ms when the memory is reused. Training allocates
hundreds of such maps per iteration, so this alone halves the time of a training step (README, speed).

It is what PyTorch's CPU performance guide obtains by preloading jemalloc or tcmalloc, done in-process
through ``mallopt`` so that no extra library or environment variable is needed. The price is that the
process keeps its peak heap until it exits (RSS never drops after a peak, and the peak itself grows because
freed maps are kept for reuse: README, training table, 6.44 vs 3.91 GB at 128² × 8), so
the entry points (``scripts/train.py``, ``scripts/fuse.py``, the benchmark) call it and the library API
leaves it to the user. The same choice governs the band-wise inference engine's buffer pool: it keeps its
full-resolution buffers between calls only in processes that called :func:`keep_freed_memory`
(:func:`keeps_freed_memory`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4

_applied = False


def keep_freed_memory() -> bool:
    """Serve every allocation from the heap and never trim it (glibc only); returns whether it applied.

    Idempotent; a no-op (returning ``False``) on other C libraries and platforms.
    """
    global _applied
    if _applied:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # pragma: no cover - glibc always has mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = all(
        mallopt(param, value) == 1
        for param, value in ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1), (_M_TOP_PAD, 64 << 20))
    )
    if ok:
        _applied = True
        log.debug("malloc: mmap disabled, trimming disabled (freed memory is reused, not returned)")
    return ok


def keeps_freed_memory() -> bool:
    """Whether :func:`keep_freed_memory` applied in this process (freed memory is kept for reuse)."""
    return _applied


__all__ = ["keep_freed_memory", "keeps_freed_memory"]
