"""A convolution module standing in for another one: its geometry, its very parameters."""

from __future__ import annotations

from typing import cast

from torch import nn

__all__ = ["SharedConv2d"]


class SharedConv2d(nn.Conv2d):
    """A ``Conv2d`` with the geometry of ``conv`` whose ``weight`` and ``bias`` are
    ``conv``'s own tensors (not copies): the swapped-in layers of
    :mod:`~brats_sdk.predict.accel.convolutions` change how a convolution runs, never what
    it computes or holds, and the window rewrites read their geometry as a ``Conv2d``'s."""

    def __init__(self, conv: nn.Conv2d) -> None:
        pair = tuple[int, int]  # a Conv2d's geometry, typed as tuples of any length
        super().__init__(
            conv.in_channels, conv.out_channels, cast(pair, conv.kernel_size), stride=cast(pair, conv.stride),
            padding=cast(pair, conv.padding), dilation=cast(pair, conv.dilation), groups=conv.groups,
            bias=conv.bias is not None, padding_mode=conv.padding_mode, device="meta",
        )
        self.weight = conv.weight
        self.bias = conv.bias
