"""Memory format of feature maps, shared by the inference rewrites."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["memory_format_of"]


def memory_format_of(x: Tensor) -> torch.memory_format:
    """``channels_last`` for a 4-D tensor stored that way, else ``contiguous_format``.

    Maps that the rewrites write themselves keep their input's memory format, so that the
    convolutions after them see the memory format the network was prepared for.
    """
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format
