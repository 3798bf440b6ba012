"""Batched inference in eval mode: the loop both models' ``predict`` methods run."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from brats_sdk.errors import ConfigError

__all__ = ["in_batches"]

T = TypeVar("T", bound=np.generic)


def in_batches(
    model: nn.Module,
    count: int,
    step: Callable[[slice, torch.device], npt.NDArray[T]],
    *,
    batch_size: int,
    device: str | torch.device | None,
    empty: npt.NDArray[T],
) -> npt.NDArray[T]:
    """Run ``step`` over ``count`` items, ``batch_size`` at a time, and stack the results.

    The model runs in eval mode under :func:`torch.inference_mode`; its previous
    train/eval mode is restored afterwards (through its own ``train``, so a segmenter's
    frozen backbone keeps its BatchNorm statistics).

    Args:
        model: The network; moved to ``device`` when one is given, and left there.
        count: Number of items.
        step: ``step(items, device)`` -> the results of ``items`` (a slice of the
            inputs), computed on ``device``, as a numpy array ``(len(items), ...)``.
        batch_size: Items per step (>= 1).
        device: Device to run on; None: the model's current device.
        empty: The result when ``count`` is 0.

    Returns:
        The steps' results concatenated along the first axis.

    Raises:
        ConfigError: ``batch_size`` < 1.
    """
    if type(batch_size) is not int or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
    if device is not None:
        model.to(device)
    target = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs: list[npt.NDArray[T]] = []
    try:
        with torch.inference_mode():
            for start in range(0, count, batch_size):
                outputs.append(step(slice(start, start + batch_size), target))
    finally:
        model.train(was_training)
    if not outputs:
        return empty
    return np.concatenate(outputs, axis=0)
