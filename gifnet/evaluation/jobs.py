"""The two costly steps of an evaluation, made reusable: scoring one fused file, and a cache of fused outputs.

- :func:`score_file` scores one fused file against its sources. :class:`MetricPool` runs these jobs in worker
  processes (``workers=N``), so that the metrics of one image run while the next image fuses and the metrics of
  many methods (published methods' files) use every core; ``workers=0`` runs them in this process. The values
  are the same either way (the same function on the same files), and results come back in submission order.
  The workers run at a lower scheduling priority (``nice``): the fusion's threads keep the cores and the
  metrics take the time they leave (see :func:`check_nice`).
- :class:`FusedCache` keeps every fused output under a key made of the checkpoint file's SHA-256, the fusion
  settings, the fusion code and torch version, and the SHA-256 of the source files: evaluating the same checkpoint
  again (re-scoring, adding published methods, another metric list) reads its fused files instead of fusing.

This module imports neither torch nor the model (the workers only score).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections import OrderedDict
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from gifnet.paths import sha256_of

log = logging.getLogger(__name__)

__all__ = ["FusedCache", "MetricPool", "check_nice", "default_cache_dir", "failure", "fusion_code_digest",
           "resolve_workers", "score_file"]

_SOURCES: OrderedDict[str, Any] = OrderedDict()  # per process: the last few source images read (path -> array)
# what a job's seconds are: wall time in this process; in a worker, its CPU time (set by _init_worker), because a
# worker below the fusion's priority waits for the CPU and its wall time would count the wait
_CLOCK = time.perf_counter


def _read_cached(path: str):
    from gifnet.metrics import read_for_metrics

    if path in _SOURCES:
        _SOURCES.move_to_end(path)
        return _SOURCES[path]
    img = read_for_metrics(path)
    _SOURCES[path] = img
    if len(_SOURCES) > 4:
        _SOURCES.popitem(last=False)
    return img


def score_file(convention: str, a_path: str, b_path: str, f_path: str, metrics: list[str]) -> dict[str, Any]:
    """Score one fused file: ``{"values": [(metric, value, roundoff)], "timings": {metric: s}, "read": s}``, or
    ``{"error": reason}`` when the file cannot be read or a metric fails (reason names the file). Seconds are wall
    time in this process, CPU time in a :class:`MetricPool` worker (single-threaded there)."""
    from gifnet.metrics import compute_checked, read_for_metrics

    t0 = _CLOCK()
    timings: dict[str, float] = {}
    try:
        a, b = _read_cached(a_path), _read_cached(b_path)
        f = _read_cached(f_path) if f_path in (a_path, b_path) else read_for_metrics(f_path)
        read = _CLOCK() - t0
        vals = compute_checked(convention, a, b, f, list(metrics), timings=timings, clock=_CLOCK)
    except Exception as e:  # noqa: BLE001 - one bad file is one failure; the evaluation goes on
        from gifnet.io import describe_error

        return {"error": f"{Path(f_path).name}: {describe_error(e)}"}
    return {"values": [(k, v.value, bool(v.roundoff)) for k, v in vals.items()], "timings": timings, "read": read}


def _init_worker(nice: int) -> None:
    """One thread per worker process, ``nice`` added to its niceness: the workers share the cores with each other
    and, below the fusion's priority, with the fusion. Jobs are timed by the process's CPU time."""
    global _CLOCK
    _CLOCK = time.process_time
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[k] = "1"
    if nice and hasattr(os, "nice"):  # Unix; elsewhere the workers keep the parent's priority
        os.nice(nice)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - cv2 is a dependency
        pass


def resolve_workers(workers: int | str, n_images: int) -> int:
    """``workers`` as a count: ``auto`` is every core for 8 or more images (the start of the worker processes,
    a few seconds, costs more than it saves on fewer), else 0 (score in this process)."""
    if workers == "auto":
        return (os.cpu_count() or 1) if n_images >= 8 else 0
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be 'auto' or an integer >= 0, got {workers!r}")
    return workers


def check_nice(nice: int | str) -> int | str:
    """The niceness added to the metric workers, validated: ``"auto"`` or an integer from 0 (the fusion's priority)
    to 19.

    At the fusion's priority the workers take time slices from the fusion's OpenMP threads, and a thread that
    loses its slice leaves the others waiting at the next barrier: the fusion slows by far more than the time the
    metrics take (docs/performance.md, "2026-12-07": MEFB + Lytro 377-385 s at 0, 302-308 s at 19, the same values).
    Niced workers also wait for every other busy process, though, so ``"auto"`` (:class:`MetricPool`) takes 19 only
    when the CPU is free as the workers start.
    """
    if nice == "auto":
        return nice
    if isinstance(nice, bool) or not isinstance(nice, int) or not 0 <= nice <= 19:
        raise ValueError(f"worker_nice must be 'auto' or an integer from 0 to 19, got {nice!r}")
    return nice


def _busy_fraction(interval: float = 0.2) -> float | None:
    """The fraction of the machine's CPU time spent busy over the next ``interval`` seconds (Linux's /proc/stat;
    ``None`` elsewhere). Called while this process waits, it measures the other processes."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            ticks = [int(x) for x in fh.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]  # all, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return None if total1 <= total0 else 1.0 - (idle1 - idle0) / (total1 - total0)


class _Done:
    """A finished result with the interface of a :class:`concurrent.futures.Future` (``workers=0``)."""

    def __init__(self, value: Any):
        self._value = value

    def result(self) -> Any:
        return self._value


def failure(reason: str) -> _Done:
    """A job that failed before it could be submitted (missing file, fusion error), in the shape of a result."""
    return _Done({"error": reason})


class MetricPool:
    """Scores fused files in ``workers`` processes (0: at once, in this process) at niceness +``nice`` (0-19, or
    ``"auto"``: 19 when other processes leave the CPU free as the workers start, else 0); ``submit`` returns a
    future."""

    def __init__(self, workers: int, nice: int | str = "auto"):
        self.workers = workers
        nice = check_nice(nice)
        self.nice = 0  # the niceness the workers run at (no workers: none)
        self._pool: ProcessPoolExecutor | None = None
        if workers > 0:
            import multiprocessing as mp

            busy = bool(nice) and (_busy_fraction() or 0.0) >= 0.5  # None: cannot tell, taken as free
            if nice == "auto":
                self.nice = 0 if busy else 19
                if busy:
                    log.info("other processes keep the CPU busy: metric workers at the fusion's priority "
                             "(worker_nice=auto; niced, they would wait for those processes)")
            else:
                self.nice = nice
                if busy and nice:
                    log.warning("other processes keep the CPU busy: metric workers at niceness +%d run only in the "
                                "time they leave; worker_nice=0 or auto shares the CPU with them", nice)

            # spawn, not fork: forking a process whose torch/OpenMP threads are running is unsafe
            self._pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                             initargs=(self.nice,))

    def submit(self, *args: Any) -> Future | _Done:
        if self._pool is None:
            return _Done(score_file(*args))
        return self._pool.submit(score_file, *args)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> MetricPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -------------------------------------------------------------------------------------------------- cache
def default_cache_dir() -> Path:
    """``$GIFNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/gifnet`` (``~/.cache/gifnet``); fused outputs go to ``fused/``."""
    env = os.environ.get("GIFNET_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gifnet"


def fusion_code_digest() -> str:
    """SHA-256 of the source of every module that decides a fused output (model, fusion, colour, remote sensing,
    image I/O): editing any of them changes every cache key, so a cached output is never one of older code."""
    root = Path(__file__).resolve().parent.parent  # the gifnet package
    inference = ("fusion.py", "color.py", "remote.py", "engine.py", "banded.py")
    files = sorted([*(root / "inference" / f for f in inference), root / "io.py", root / "devices.py",
                    *(root / "models").glob("*.py")])  # fmt: skip
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


class FusedCache:
    """Fused outputs by content key (see the module docstring); ``None`` folder: disabled.

    Files live at ``<dir>/fused/<key[:2]>/<key>.png`` with a ``.json`` beside each naming what the key was made of.
    A cache that cannot be written (read-only disk, full) is reported once and the evaluation goes on without it.
    """

    def __init__(self, folder: str | Path | None):
        self.dir = None if folder is None else Path(folder) / "fused"
        self.hits = self.misses = 0
        self._warned = False
        self._code = fusion_code_digest() if folder is not None else ""
        self._sha: dict[Path, str] = {}  # file -> SHA-256, each file hashed once per evaluation

    def _hash(self, path: Path | None) -> str | None:
        if path is None:
            return None
        p = Path(path).resolve()
        if p not in self._sha:
            self._sha[p] = sha256_of(p)
        return self._sha[p]

    def key(self, checkpoint: Path, settings: dict[str, Any], sources: list[Path | None]) -> tuple[str, dict]:
        import torch

        material = {"checkpoint_sha256": self._hash(checkpoint), "settings": settings, "fusion_code": self._code,
                    "torch": torch.__version__, "sources_sha256": [self._hash(s) for s in sources]}  # fmt: skip
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest(), material

    def _path(self, key: str) -> Path:
        assert self.dir is not None
        return self.dir / key[:2] / f"{key}.png"

    def fetch(self, key: str, target: Path) -> bool:
        """Copy the cached output of ``key`` to ``target`` (atomically); False when there is none."""
        if self.dir is None:
            return False
        src = self._path(key)
        if not src.is_file():
            self.misses += 1
            return False
        from gifnet.paths import atomic_path

        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            shutil.copyfile(src, tmp)
        self.hits += 1
        return True

    def store(self, key: str, material: dict, fused_file: Path) -> None:
        if self.dir is None:
            return
        from gifnet.paths import atomic_path

        dst = self._path(key)
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(dst.with_suffix(".json")) as tmp:
                tmp.write_text(json.dumps(material, indent=1, sort_keys=True))
            with atomic_path(dst) as tmp:
                shutil.copyfile(fused_file, tmp)
        except OSError as e:
            if not self._warned:
                log.warning("fused-output cache %s cannot be written (%s); going on without it", self.dir, e)
                self._warned = True
