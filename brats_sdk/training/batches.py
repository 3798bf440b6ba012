"""Batches from DataLoader workers through reused shared memory.

A torch ``DataLoader`` with workers collates every batch into a fresh shared-memory
segment, which both processes then fault in page by page: on a 2-core machine that
alone caps a batch of 16 whole BraTS slices (16 MB) at about 1,150 slices/s with one
worker, below what reading the packed layout costs. Here each worker writes its batch
into one of a few slots allocated once (``slots`` of ``(B, *shape)`` per key) and
sends only the slot number; the main process hands out views of the slot, which goes
back to the workers when the last view is freed. The values are those of
``default_collate``, bit for bit.

Without workers the slots serve the main process the same way: what they save there is
the fresh arrays of every item and batch. When no slot is free (a consumer that keeps
batches) or a batch does not fit (another shape or dtype), the ordinary collate runs
instead, so nothing can block on the ring. CUDA training (pinned memory) keeps torch's
own path.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from multiprocessing.synchronize import Lock as SyncLock
from typing import Protocol, runtime_checkable

import torch
import torch.multiprocessing as tmp
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

__all__ = ["BatchLoader", "Fillable", "make_loader"]

logger = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]
Item = Mapping[str, torch.Tensor]

# A ring larger than this (all slots together) is not worth its memory.
_MAX_RING_BYTES = 1 << 30


@runtime_checkable
class Fillable(Protocol):
    """A dataset that can write an item into a given buffer (one row of a batch)."""

    def fill(self, i: int, out: Mapping[str, torch.Tensor]) -> bool:
        """Write item ``i`` into ``out``; False (nothing written) when its shape differs."""
        ...


def _shared(t: torch.Tensor) -> torch.Tensor:
    t.share_memory_()  # type: ignore[no-untyped-call]  # Tensor.share_memory_ is untyped
    return t


@dataclass(frozen=True, slots=True)
class _Ticket:
    """What a worker sends for a batch written into the ring."""

    slot: int
    n: int


class _Ring:
    """``slots`` shared buffers of one batch each, and which of them are taken.

    ``taken[s]`` is 1 from a worker's claim until the main process has freed every view
    of slot ``s``; claims go through ``lock`` (workers race for slots), releases are a
    single byte store by the main process.
    """

    def __init__(self, like: Mapping[str, torch.Tensor], batch_size: int, slots: int, lock: SyncLock) -> None:
        self.batch_size = batch_size
        self.shapes = {k: tuple(v.shape) for k, v in like.items()}
        self.dtypes = {k: v.dtype for k, v in like.items()}
        self.buffers = {
            k: _shared(torch.empty((slots, batch_size, *v.shape), dtype=v.dtype)) for k, v in like.items()
        }
        self.taken = _shared(torch.zeros(slots, dtype=torch.uint8))
        self.lock = lock

    def fits(self, samples: Sequence[object]) -> bool:
        if not 0 < len(samples) <= self.batch_size:
            return False
        for s in samples:
            if not isinstance(s, dict) or s.keys() != self.shapes.keys():
                return False
            for k, v in s.items():
                if not isinstance(v, torch.Tensor) or tuple(v.shape) != self.shapes[k] or v.dtype != self.dtypes[k]:
                    return False
        return True

    def claim(self) -> int | None:
        with self.lock:
            free = (self.taken == 0).nonzero()
            if free.numel() == 0:
                return None
            slot = int(free[0, 0])
            self.taken[slot] = 1
            return slot

    def release(self, slot: int) -> None:
        self.taken[slot] = 0

    def rows(self, slot: int, n: int) -> list[Batch]:
        """Views of the first ``n`` rows of ``slot``, one dict per row."""
        return [{k: buf[slot, j] for k, buf in self.buffers.items()} for j in range(n)]

    def write(self, slot: int, samples: Sequence[Item]) -> None:
        for k, buf in self.buffers.items():
            torch.stack([s[k] for s in samples], out=buf[slot, : len(samples)])

    def read(self, ticket: _Ticket) -> Batch:
        """Views of the ticket's slot; the slot is released when all of them are freed."""
        pending = [len(self.buffers)]

        def release() -> None:
            pending[0] -= 1
            if pending[0] == 0:
                self.release(ticket.slot)

        batch: Batch = {}
        for k, buf in self.buffers.items():
            # torch keeps the numpy view alive exactly as long as any tensor shares its
            # storage (views and slices included), so its finalizer marks the end of use.
            view = buf[ticket.slot, : ticket.n].numpy()
            weakref.finalize(view, release)
            batch[k] = torch.from_numpy(view)
        return batch


class _RingWriter(Dataset[Item]):
    """The dataset as the workers see it: whole batches, written into the ring."""

    def __init__(self, data: Dataset[Item], ring: _Ring) -> None:
        self.data = data
        self.ring = ring

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]  # map-style datasets have __len__

    def __getitem__(self, i: int) -> Item:
        return self.data[i]

    def __getitems__(self, indices: Sequence[int]) -> list[Item] | _Ticket:
        data = self.data
        if isinstance(data, Fillable) and 0 < len(indices) <= self.ring.batch_size:
            # Straight into the slot: no per-sample arrays to allocate, fault in and stack.
            slot = self.ring.claim()
            if slot is not None:
                if all(data.fill(i, row) for i, row in zip(indices, self.ring.rows(slot, len(indices)), strict=True)):
                    return _Ticket(slot, len(indices))
                self.ring.release(slot)
        samples = [data[i] for i in indices]
        if not self.ring.fits(samples):
            return samples
        slot = self.ring.claim()
        if slot is None:
            return samples
        self.ring.write(slot, samples)
        return _Ticket(slot, len(samples))


def _collate(items: list[Item] | _Ticket) -> Batch | _Ticket:
    return items if isinstance(items, _Ticket) else default_collate(items)


class BatchLoader:
    """Iterates batches (dicts of stacked tensors) like a ``DataLoader``.

    Use :func:`make_loader` to build one.
    """

    def __init__(self, loader: DataLoader[Item], ring: _Ring | None) -> None:
        self.loader = loader
        self.ring = ring

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        ring = self.ring
        item: Batch | _Ticket
        for item in self.loader:
            yield ring.read(item) if isinstance(item, _Ticket) and ring is not None else item  # type: ignore[misc]  # a _Ticket only comes with a ring


def make_loader(
    data: Dataset[Item],
    *,
    batch_size: int,
    sampler: Sampler[int] | None = None,
    num_workers: int = 0,
    generator: torch.Generator | None = None,
    pin_memory: bool = False,
    shared_ring: bool = True,
    prefetch_factor: int = 2,
) -> BatchLoader:
    """A loader over ``data`` in ``sampler``'s order (or the dataset's).

    Args:
        data: Map-style dataset of dicts of fixed-shape tensors.
        batch_size: Samples per batch (the last one may be smaller).
        sampler: Index order; None: ``0 .. len(data) - 1``.
        num_workers: Worker processes; 0 reads in the main process.
        generator: Passed to the ``DataLoader`` (worker seeds).
        pin_memory: Pin batches for a CUDA copy; this path keeps torch's own transfer,
            whose pinning copy the ring would not save.
        shared_ring: Move batches from workers through reused shared memory (see the
            module docstring); False: torch's default transfer.
        prefetch_factor: Batches each worker prepares ahead.

    Returns:
        The loader; its batches equal ``default_collate``'s.
    """
    ring: _Ring | None = None
    if shared_ring and not pin_memory and len(data) > 0:  # type: ignore[arg-type]  # map-style datasets have __len__
        slots = max(num_workers, 1) * prefetch_factor + 2  # those in flight, and the one in use
        ring = _new_ring(data, batch_size, slots=slots, ctx=tmp.get_context())
    workers: dict[str, object] = (
        {"prefetch_factor": prefetch_factor, "multiprocessing_context": tmp.get_context()} if num_workers > 0 else {}
    )
    dl: DataLoader[Item] = DataLoader(
        data if ring is None else _RingWriter(data, ring),
        batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=num_workers, generator=generator,
        pin_memory=pin_memory, collate_fn=default_collate if ring is None else _collate,
        **workers,  # type: ignore[arg-type]  # both options are refused without workers
    )
    return BatchLoader(dl, ring)


def _new_ring(data: Dataset[Item], batch_size: int, *, slots: int, ctx: BaseContext) -> _Ring | None:
    # An item that draws random windows or poses must not move the global generator:
    # the training order and augmentations stay those of a run without the ring.
    with torch.random.fork_rng(devices=[]):
        like = data[0]
    if not isinstance(like, dict) or not all(isinstance(v, torch.Tensor) and _numpy_dtype(v.dtype) for v in like.values()):
        return None
    nbytes = slots * batch_size * sum(v.numel() * v.element_size() for v in like.values())
    if nbytes > _MAX_RING_BYTES:
        logger.debug("batch ring of %d bytes is over the limit; torch's transfer is used", nbytes)
        return None
    return _Ring(like, batch_size, slots, ctx.Lock())


def _numpy_dtype(dtype: torch.dtype) -> bool:
    """Whether tensors of ``dtype`` have a numpy view (batches are handed out through one)."""
    try:
        torch.empty(0, dtype=dtype).numpy()
    except TypeError:
        return False
    return True
