"""A small content-keyed cache of per-image intermediates (sources are often re-used across channels and metrics)."""

from __future__ import annotations

import numpy as np

_MEMO: dict[tuple, object] = {}
_MEMO_MAX = 16  # entries
_MEMO_BYTES = 512 << 20  # arrays held at most (oldest entries go first): a 4K source's phase congruency is 200 MB


def _nbytes(val: object) -> int:
    if isinstance(val, np.ndarray):
        return val.nbytes
    if isinstance(val, (tuple, list)):
        return sum(_nbytes(v) for v in val)
    return 0


def _memo(tag: str, x: np.ndarray, fn):
    """Cache ``fn(x)`` by content (sources are often re-used across channels, e.g. a gray IR image, and across the
    methods scored against them). A value larger than the byte budget is returned without being kept."""
    key = (tag, x.shape, x.dtype.str, hash(x.tobytes()))
    if key in _MEMO:
        return _MEMO[key]
    val = fn(x)
    size = _nbytes(val)
    if size > _MEMO_BYTES:
        return val
    while _MEMO and (len(_MEMO) >= _MEMO_MAX or sum(_nbytes(v) for v in _MEMO.values()) + size > _MEMO_BYTES):
        _MEMO.pop(next(iter(_MEMO)))
    _MEMO[key] = val
    return val
