"""Process-group set-up for ``torchrun`` and gradient averaging across ranks."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

_USED = False  # a process group was created in this process (see exit_after_distributed_run)


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> DistInfo:
    """Initialise from torchrun's environment (gloo on CPU, NCCL on CUDA); a no-op for one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    global _USED
    _USED = True
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def average_gradients(params: list[torch.nn.Parameter], world_size: int) -> None:
    """All-reduce (mean) the gradients that exist; every rank has the same set (the graph is deterministic)."""
    if world_size <= 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Make every rank start from rank 0's weights and buffers."""
    if dist.is_available() and dist.is_initialized():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def cleanup(synchronize: bool = False) -> None:
    """Destroy the process group (a no-op for one process).

    ``synchronize=True`` is for a run that ended normally on every rank: the ranks meet at a barrier first, so
    none tears its connections down while another is still finishing (rank 0 writes the summary and the last
    checkpoint). After an error the barrier is left out: the other ranks may be inside a collective, and a
    mismatched barrier would hang or abort there. The process still leaves through
    :func:`exit_after_distributed_run` (the barrier alone did not stop the abort at exit described there).
    """
    if dist.is_available() and dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()


def exit_after_distributed_run(code: int) -> None:
    """End a process that used a process group: flush, then leave without the interpreter's finalisation.

    Once a gloo process group has been used and destroyed, the interpreter's finalisation (static C++
    destructors, objects freed without the GIL) was seen to abort the process with ``terminate called without
    an active exception`` about once in 40-90 two-rank CPU runs: the run had finished and written every file,
    yet torchrun reported the rank as failed (SIGABRT) and killed the others. Everything a run writes is
    written atomically and closed before this point (checkpoints, summary, TensorBoard), so the process
    flushes its streams and log handlers and exits with ``os._exit``. A no-op (returns) in a process that
    never created a process group: one-process runs and tests end normally.
    """
    if not _USED:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: nothing left to flush
            pass
    logging.shutdown()
    os._exit(code)
