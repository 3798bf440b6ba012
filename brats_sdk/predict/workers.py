"""Independent pieces of CPU inference side by side, each on its own torch threads.

Inference on brain crops and tumour windows is many small convolutions. Split over the
cores, each of them ends at a barrier where every core waits for the slowest; on a busy
machine a core that the scheduler takes away for a moment stalls every operator, and the
whole volume can take several times as long as on one core. Whole pieces of work (a batch
of crops, a chunk of masks, a window) on separate threads, one torch thread each, share
no barrier: the same work, the cores busy as long as there are pieces left.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

__all__ = ["CpuWorkers"]

_T = TypeVar("_T")
_R = TypeVar("_R")

# At most this many workers: each holds a batch's activations in memory, and with more
# workers than this, pieces as coarse as whole batches leave some cores idle at the end.
_MAX_WORKERS = 4


class CpuWorkers:
    """Runs a function on items in parallel threads on a CPU with several torch threads.

    With ``T = torch.get_num_threads()`` in the caller, ``min(T, 4, len(items))`` threads
    run the items, each with ``T // workers`` torch threads; results come back in the
    items' order. With one torch thread, one item or another device, the items run in the
    caller's thread. The pool lives as long as its owner (new threads each call would each
    grow the allocator's per-thread arenas). The caller's grad mode, inference mode and
    autocast state are carried into the workers (all thread-local), and the caller's torch
    thread count, which ``set_num_threads`` in a worker changes for threads started later,
    is put back.
    """

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._size = 0

    @staticmethod
    def size(device: torch.device) -> int:
        """How many workers :meth:`map` uses at most on ``device`` (1: the caller's thread)."""
        return min(torch.get_num_threads(), _MAX_WORKERS) if device.type == "cpu" else 1

    def map(self, fn: Callable[[_T], _R], items: Sequence[_T], *, device: torch.device) -> list[_R]:
        """``[fn(item) for item in items]``, in parallel where that pays (see the class).

        Args:
            fn: Called once per item; it must not write what another item's call reads.
            items: The pieces of work, largest first for the best balance.
            device: Where the work runs (only a CPU gets workers).

        Returns:
            The results, in the items' order.
        """
        threads = torch.get_num_threads()
        workers = min(self.size(device), len(items))
        if workers < 2:
            return [fn(item) for item in items]
        per_worker = threads // workers
        if self._pool is None or self._size != workers:
            if self._pool is not None:
                self._pool.shutdown()
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="brats-cpu")
            self._size = workers
        inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()
        autocast, dtype = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")

        def run(item: _T) -> _R:
            if torch.get_num_threads() != per_worker:
                torch.set_num_threads(per_worker)
            with torch.inference_mode(inference), torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=dtype, enabled=autocast):
                return fn(item)

        try:
            return list(self._pool.map(run, items))
        finally:
            torch.set_num_threads(threads)

    def close(self) -> None:
        """Stop the worker threads (a later :meth:`map` starts new ones)."""
        if self._pool is not None:
            self._pool.shutdown()
        self._pool, self._size = None, 0
