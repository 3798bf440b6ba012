"""Every convolution of a network through the fastest CPU path for its shape.

Two swaps, each a ``Conv2d`` subclass sharing the layer's parameters (the window
rewrites read their geometry as before):

- the wide 3x3 'same' convolutions become
  :class:`~brats_sdk.predict.accel.winograd.WinogradConv2d` (fewer multiplications);
- every other plain convolution becomes :class:`OneDnnConv2d`, which calls oneDNN
  directly. PyTorch sends a float32 1x1 convolution with a batch under 16 on one thread,
  and a batch of one small map, to its own im2col-and-GEMM kernel instead (a heuristic
  for some shapes); prediction runs exactly those (one thread per worker, survival chunks
  of about 13 masks, tumour windows one mask at a time), and oneDNN does them faster
  (``benchmarks/README.md``).

Both act on CPU float32 inputs only (Winograd also on float64); anything else runs the
plain convolution. Only float rounding changes.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from brats_sdk.predict.accel.shared_conv import SharedConv2d
from brats_sdk.predict.accel.winograd import WinogradConv2d, supports_winograd

__all__ = ["OneDnnConv2d", "supports_onednn", "use_fast_convolutions"]

_HAS_ONEDNN: bool = torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]  # untyped in torch


def supports_onednn(conv: nn.Module) -> bool:
    """Whether ``conv`` is a plain convolution oneDNN can run as it is."""
    return (
        type(conv) is nn.Conv2d
        and isinstance(conv.padding, tuple)
        and conv.padding_mode == "zeros"
        and _HAS_ONEDNN
    )


class OneDnnConv2d(SharedConv2d):
    """A convolution that runs through oneDNN on CPU float32 inputs, whatever their batch
    and size; it shares the parameters of the convolution it is made from.

    Args:
        conv: A convolution for which :func:`supports_onednn` holds.

    Raises:
        TypeError: It does not.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        if not supports_onednn(conv):
            raise TypeError(f"not a plain convolution oneDNN can run: {conv}")
        super().__init__(conv)

    def forward(self, input: Tensor) -> Tensor:
        if input.device.type != "cpu" or input.dtype != torch.float32 or self.weight.dtype != torch.float32:
            return super().forward(input)
        out = torch.ops.aten.mkldnn_convolution(
            input, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups
        )
        return cast(Tensor, out)


def use_fast_convolutions(model: nn.Module) -> tuple[int, int]:
    """Swap, in place, the convolutions of ``model`` (see the module): returns how many
    became Winograd convolutions and how many oneDNN ones."""
    found = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()]
    winograd = onednn = 0
    for parent, name, child in found:
        if supports_winograd(child):
            setattr(parent, name, WinogradConv2d(child))  # type: ignore[arg-type]  # supports_winograd: a Conv2d
            winograd += 1
        elif supports_onednn(child):
            setattr(parent, name, OneDnnConv2d(child))  # type: ignore[arg-type]  # supports_onednn: a Conv2d
            onednn += 1
    return winograd, onednn
