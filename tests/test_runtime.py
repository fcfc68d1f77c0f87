"""gifnet.runtime: the allocator setting of the entry points (no value changes, fewer page faults)."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

_PROBE = textwrap.dedent(
    """
    import ctypes, sys
    import torch
    from gifnet.runtime import keep_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    mallinfo2.restype = MallInfo2
    if sys.argv[1] == "keep":
        assert keep_freed_memory() and keep_freed_memory()  # applies, and is idempotent
    y = torch.full((16 << 20,), 2.0)  # 64 MB
    assert float(y[-1]) == 2.0
    info = mallinfo2()
    print(info.hblkhd, info.arena)
    """
)


def _malloc_state(mode: str) -> tuple[int, int]:
    """(bytes in mmap'ed blocks, bytes of the heap) while a 64 MB tensor is alive."""
    r = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, timeout=120, check=True)
    mapped, heap = (int(v) for v in r.stdout.split())
    return mapped, heap


@pytest.mark.skipif(not GLIBC or platform.libc_ver()[1] < "2.33", reason="mallopt/mallinfo2 are glibc's (>= 2.33)")
def test_keep_freed_memory_serves_big_tensors_from_the_reusable_heap():
    mb64 = 64 << 20
    mapped, heap = _malloc_state("default")
    assert mapped >= mb64  # glibc maps (and unmaps on free) a fresh block: page faults on every reuse
    mapped, heap = _malloc_state("keep")
    assert mapped < mb64 <= heap  # from the heap, which is never trimmed: freed pages are reused as they are


def test_keep_freed_memory_is_a_safe_noop_elsewhere(monkeypatch):
    import gifnet.runtime as rt

    monkeypatch.setattr(rt, "_applied", False)
    monkeypatch.setattr(rt.platform, "system", lambda: "Darwin")
    assert rt.keep_freed_memory() is False
