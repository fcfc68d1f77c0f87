"""A resumable, rank-aware batch order: deterministic from (seed, epoch), restartable at any batch."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Yields this rank's sample indices of one epoch, starting at batch ``start_batch``.

    The epoch's global order is ``randperm(n)`` seeded by ``(seed, epoch)`` (or ``range(n)`` without shuffle).
    Global batch ``g`` is the slice ``[g·B·W, (g+1)·B·W)`` of that order (B = per-rank batch size, W = world
    size) and rank ``r`` takes its ``r``-th chunk of ``B`` indices, so ``W`` ranks with batch ``B`` see exactly
    the samples one process with batch ``B·W`` sees. An incomplete final global batch is dropped when
    ``drop_last``; otherwise it is split as evenly as possible between ranks (a rank may get none).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ):
        if n <= 0:
            raise ValueError("the training dataset is empty")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world size {world_size}")
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def batches_per_epoch(self) -> int:
        full, rest = divmod(self.n, self.global_batch)
        return full if (self.drop_last or rest == 0) else full + 1

    def _order(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.n, generator=g)

    def rank_batches(self) -> list[list[int]]:
        order = self._order().tolist()
        out = []
        for gb in range(self.start_batch, self.batches_per_epoch()):
            chunk = order[gb * self.global_batch : (gb + 1) * self.global_batch]
            if len(chunk) == self.global_batch:
                mine = chunk[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
            else:  # last, incomplete global batch
                per, extra = divmod(len(chunk), self.world_size)
                lo = self.rank * per + min(self.rank, extra)
                mine = chunk[lo : lo + per + (1 if self.rank < extra else 0)]
            out.append(mine)
        return out

    def __iter__(self) -> Iterator[int]:
        for batch in self.rank_batches():
            yield from batch

    def __len__(self) -> int:
        return sum(len(b) for b in self.rank_batches())


class BatchListSampler(Sampler[list[int]]):
    """Batch sampler view of :class:`ResumableSampler` (keeps batch boundaries exact on every rank)."""

    def __init__(self, sampler: ResumableSampler):
        self.sampler = sampler

    def __iter__(self):
        yield from self.sampler.rank_batches()

    def __len__(self) -> int:
        return len(self.sampler.rank_batches())
