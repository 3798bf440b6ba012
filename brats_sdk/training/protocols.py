"""What the loop needs to know about a model: a :class:`Task` and its :class:`Meter`.

The loop is generic; a task turns a batch into a loss and the numbers its metrics
accumulate. Meters keep plain sums in one float64 vector so that distributed runs
can reduce them with a single all-reduce.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import torch
from torch import nn

__all__ = ["Batch", "Meter", "Task"]

Batch = Mapping[str, torch.Tensor]


class Meter(Protocol):
    """Accumulates a metric's sums over batches."""

    def update(self, outputs: torch.Tensor, batch: Batch) -> None:
        """Add one batch (``outputs`` as returned by :meth:`Task.step`)."""
        ...

    def totals(self) -> torch.Tensor:
        """The accumulated sums, a 1-D float64 CPU tensor."""
        ...

    def summarise(self, totals: torch.Tensor) -> dict[str, float]:
        """Metric values from (possibly all-reduced) ``totals``."""
        ...


class Task(Protocol):
    """Turns a batch into a loss; names the metrics it reports."""

    def step(self, model: nn.Module, batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the model on one batch.

        Returns:
            The mean loss over the batch (a scalar tensor with grad) and the model's
            outputs (detached or not; the meter reads them).
        """
        ...

    def new_meter(self) -> Meter:
        """A fresh accumulator for one epoch."""
        ...

    def batch_size_of(self, batch: Batch) -> int:
        """Number of samples in ``batch``."""
        ...
