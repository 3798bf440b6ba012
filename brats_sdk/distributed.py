"""Process-group context: a no-op for one process, DDP-aware under torchrun.

Training and prediction ask this object, never ``torch.distributed`` directly, so the
single-process path has no distributed branches. The library owns the process group:
:meth:`DistContext.from_env` joins it and leaves it at interpreter exit, so callers
(the CLI among them) never set it up or tear it down. :func:`process_rank` is the one
place that reads ``RANK``; it needs no torch, so the CLI asks it at start-up for free
(torch is imported on first use of a process group).
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import torch

__all__ = ["DistContext", "is_main_process", "process_rank"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def process_rank() -> int:
    """This process's global rank: ``RANK`` under torchrun, 0 otherwise."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """True outside torchrun and on rank 0 under it (rank 0 speaks for all)."""
    return process_rank() == 0


def _leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


@dataclass(frozen=True, slots=True)
class DistContext:
    """Rank and world size of this process.

    Attributes:
        rank: Global rank (0 for a single process).
        world_size: Number of processes (1 for a single process).
        local_rank: Rank on this node (chooses the CUDA device under torchrun).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device_type: str) -> DistContext:
        """Join the process group torchrun describes in the environment, if any.

        NCCL on CUDA, gloo on the CPU. Without ``WORLD_SIZE`` > 1 this is a single process.
        """
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if device_type == "cuda" else "gloo"
            dist.init_process_group(backend=backend)
            # Joined here, left at exit: the group outlives every pipeline of one command
            # (``brats train all`` runs two), and no caller has to remember to leave it.
            atexit.register(_leave_process_group)
            logger.info("joined process group: backend %s, rank %d of %d", backend, dist.get_rank(), world)
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0")))

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum ``values`` over ranks (identity for a single process)."""
        if not self.is_distributed:
            return values
        import torch.distributed as dist

        out = values.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def any_flag(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (so that all ranks stop together)."""
        if not self.is_distributed:
            return flag
        import torch

        return bool(self.all_reduce_sum(torch.tensor([1 if flag else 0], dtype=torch.int64)).item() > 0)

    def gather_objects(self, value: T) -> list[T]:
        """Every rank's ``value``, in rank order (``[value]`` for a single process)."""
        if not self.is_distributed:
            return [value]
        import torch.distributed as dist

        gathered: list[T | None] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return [v for v in gathered if v is not None]

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (so that all ranks stop together)."""
        if not self.is_distributed:
            return flag
        import torch
        import torch.distributed as dist

        t = torch.tensor([1 if flag else 0], dtype=torch.int64)
        dist.broadcast(t, src=0)
        return bool(t.item())

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Run the block on rank 0 first, then on the other ranks (which then find the
        files rank 0 wrote, e.g. the cached scan and the split)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def barrier(self) -> None:
        if self.is_distributed:
            import torch.distributed as dist

            dist.barrier()

    def shutdown(self) -> None:
        """Leave the process group now (it is otherwise left at interpreter exit)."""
        if self.is_distributed:
            _leave_process_group()
