"""U-Net decoder blocks without the upsampled copy: nearest 2x upsampling fused into
the convolution that follows it.

smp's decoder block upsamples its input 2x (nearest), concatenates the skip
connection and runs a 3x3 convolution. On a nearest-upsampled map each output pixel's
nine taps fall on only four input pixels, so the convolution of the upsampled part
equals four 2x2 convolutions of the small map, one per output phase, with summed
kernel taps (exact algebra; only float rounding changes). That does 4 instead of 9
multiply-adds per output and input channel, and never writes the upsampled map or the
concatenation (``benchmarks/bench_predict.py`` measures the time saved and counts the
labels that change).
"""

from __future__ import annotations

from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brats_sdk.predict.accel.memory_format import memory_format_of
from brats_sdk.predict.accel.smp_internals import Unet, UnetDecoder, UnetDecoderBlock

__all__ = ["PhaseUpsampleBlock", "fuse_upsampling"]

M = TypeVar("M", bound=nn.Module)

# Which 3x3 kernel rows land on low-resolution rows (i-1, i) for even output rows and
# (i, i+1) for odd ones, when the input was upsampled 2x by repetition.
_COLLAPSE = (
    torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]),
    torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
)
_PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))


class PhaseUpsampleBlock(nn.Module):
    """An eval-only stand-in for a BatchNorm-folded smp ``UnetDecoderBlock`` without attention.

    Args:
        block: The folded block (kept, for inputs whose target size is not twice theirs).
        up_channels: Channels of the block's upsampled input (the rest of ``conv1``'s
            input channels are the skip connection's).
    """

    def __init__(self, block: UnetDecoderBlock, up_channels: int) -> None:
        super().__init__()
        conv = block.conv1[0]
        if not isinstance(conv, nn.Conv2d) or conv.kernel_size != (3, 3) or conv.bias is None:
            raise TypeError("expected a decoder block with BatchNorm folded into a 3x3 conv1")
        self.fallback = block
        self.post = nn.Sequential(*list(block.conv1)[1:])  # the folded norm (Identity), ReLU
        self.conv2 = block.conv2
        weight = conv.weight.detach()
        up, skip = weight[:, :up_channels], weight[:, up_channels:]
        # Phase (py, px): the 3x3 kernel's rows and columns summed onto 2x2.
        phases = [
            torch.einsum("ak,oikl,bl->oiab", _COLLAPSE[py].to(up), up, _COLLAPSE[px].to(up))
            for py in (0, 1)
            for px in (0, 1)
        ]
        # One convolution computes the four phases, stacked along its output channels; each
        # phase reads the padded input one row/column further for odd output rows/columns.
        self.phase_weight = nn.Parameter(torch.cat(phases).contiguous(), requires_grad=False)  # (4 O, I, 2, 2)
        bias = conv.bias.detach().clone()
        self.phase_bias = nn.Parameter(bias.repeat(4), requires_grad=False)
        # The skip connection's part: a 3x3 convolution module of its own, so that the
        # rewrites of plain convolutions (Winograd) reach it.
        self.skip_conv: nn.Conv2d | None = None
        # The value the upsampled input is padded with, per channel (None: zeros; see
        # brats_sdk.predict.accel.background).
        self.pad_value: Tensor | None = None
        if skip.shape[1]:
            self.skip_conv = nn.Conv2d(skip.shape[1], skip.shape[0], 3, padding=1, device="meta")
            self.skip_conv.weight = nn.Parameter(skip.contiguous(), requires_grad=False)
            self.skip_conv.bias = nn.Parameter(bias, requires_grad=False)

    def forward(
        self, feature_map: Tensor, target_height: int, target_width: int, skip_connection: Tensor | None = None
    ) -> Tensor:
        h, w = feature_map.shape[-2:]
        if (target_height, target_width) != (2 * h, 2 * w) or (skip_connection is None) != (self.skip_conv is None):
            return self.fallback(feature_map, target_height, target_width, skip_connection)  # type: ignore[no-any-return]  # smp is untyped
        padded = F.pad(feature_map, (1, 1, 1, 1))
        if self.pad_value is not None:
            edge = self.pad_value.to(padded.dtype).view(1, -1, 1)
            padded[:, :, 0, :] = edge
            padded[:, :, -1, :] = edge
            padded[:, :, :, 0] = edge
            padded[:, :, :, -1] = edge
        n = self.phase_bias.shape[0] // 4
        if self.skip_conv is not None and skip_connection is not None:
            out = self.skip_conv(skip_connection)
            phases = F.conv2d(padded, self.phase_weight)
            for k, (py, px) in enumerate(_PHASES):
                out[:, :, py::2, px::2] += phases[:, k * n : (k + 1) * n, py : py + h, px : px + w]
        else:
            phases = F.conv2d(padded, self.phase_weight, self.phase_bias)
            out = torch.empty(
                (phases.shape[0], n, 2 * h, 2 * w), dtype=phases.dtype, device=phases.device,
                memory_format=memory_format_of(phases),
            )
            for k, (py, px) in enumerate(_PHASES):
                out[:, :, py::2, px::2] = phases[:, k * n : (k + 1) * n, py : py + h, px : px + w]
        return self.conv2(self.post(out))  # type: ignore[no-any-return]  # smp blocks are untyped


def fuse_upsampling(model: M) -> M:
    """``model`` with the decoder blocks of every smp ``Unet`` inside it replaced by
    :class:`PhaseUpsampleBlock`, in place. Call it on an eval copy whose BatchNorm is
    folded (:func:`~brats_sdk.predict.accel.batchnorm.fold_batchnorm`); blocks with attention or
    another interpolation, and decoders with a centre block, are left as they are."""
    for unet in [m for m in model.modules() if isinstance(m, Unet)]:
        decoder = unet.decoder
        if not isinstance(decoder, UnetDecoder) or not isinstance(decoder.center, nn.Identity):
            continue
        up_channels = int(unet.encoder.out_channels[-1])
        for i, block in enumerate(decoder.blocks):
            if (
                not isinstance(block, UnetDecoderBlock)
                or block.interpolation_mode != "nearest"
                or not isinstance(block.attention1.attention, nn.Identity)
            ):
                break
            conv = block.conv1[0]
            if not isinstance(conv, nn.Conv2d) or conv.bias is None:  # BatchNorm not folded
                break
            decoder.blocks[i] = PhaseUpsampleBlock(block, up_channels)
            up_channels = int(block.conv2[0].out_channels)
    return model
