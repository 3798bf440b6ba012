"""Tumour windows: ResNet inference that skips the early layers where the input is background.

The survival network's input is a tumour mask: outside the tumour's bounding box every
pixel holds the same background value. An output of a convolution stack depends only
on the input inside its receptive field, so wherever that field holds background alone
the feature map equals the one of an all-background image, which is computed once.
The stem, ``layer1`` (receptive field 35 pixels) and ``layer2`` (91 pixels) therefore
run block by block, each block on a window around the region its input differs from
the background's, pasted into the background's map for the next block; ``layer3`` on
(fields of 267 pixels and more: the whole image) run on the full map as before. The
windows are small, so on a CPU several of them run side by side, one core each
(:class:`~brats_sdk.predict.workers.CpuWorkers`). The
algebra is exact; float rounding may differ slightly (``benchmarks/bench_predict.py``
compares the labels and probabilities).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchvision.models.resnet import Bottleneck, ResNet

from brats_sdk.constants import MASK_CHANNELS
from brats_sdk.models.survival import SurvivalClassifier, prepare_masks
from brats_sdk.predict.accel.memory_format import memory_format_of
from brats_sdk.predict.workers import CpuWorkers

__all__ = ["TumourWindowResNet", "use_tumour_windows"]

logger = logging.getLogger(__name__)

_SNAP = 8


@dataclass(frozen=True, slots=True)
class _Geometry:
    """Output ``o`` of a layer stack reads input ``[o * jump - pad, o * jump - pad + field)``."""

    jump: int
    field: int
    pad: int

    @staticmethod
    def of(layers: Sequence[tuple[int, int, int]]) -> _Geometry:
        """Compose ``(kernel, stride, padding)`` layers, first to last."""
        jump, field, pad = 1, 1, 0
        for kernel, stride, padding in layers:
            field += (kernel - 1) * jump
            pad += padding * jump
            jump *= stride
        return _Geometry(jump, field, pad)

    def affected(self, lo: int, hi: int, n_out: int) -> tuple[int, int]:
        """Outputs ``[a, b)`` whose field meets inputs ``[lo, hi)``."""
        a = max(0, math.ceil((lo + self.pad - self.field + 1) / self.jump))
        b = min(n_out, (hi - 1 + self.pad) // self.jump + 1)
        return a, b

    def window(self, a: int, b: int, n_in: int) -> tuple[int, int]:
        """Inputs ``[s, e)`` from which outputs ``[a, b)`` come out exact; ``s`` is a
        multiple of ``jump`` so that the window's outputs sit on the full run's grid."""
        first = max(0, a - math.ceil(self.pad / self.jump))
        return first * self.jump, min(n_in, (b - 1) * self.jump - self.pad + self.field)


def _conv_layers(module: nn.Module) -> list[tuple[int, int, int]]:
    if isinstance(module, nn.Conv2d):
        k, s, p = module.kernel_size, module.stride, module.padding
        if not (k[0] == k[1] and s[0] == s[1] and isinstance(p, tuple) and p[0] == p[1]) or module.dilation != (1, 1):
            raise TypeError(f"unsupported convolution {module}")
        return [(k[0], s[0], p[0])]
    if isinstance(module, nn.MaxPool2d):
        size, step, margin = module.kernel_size, module.stride, module.padding
        if not (isinstance(size, int) and isinstance(step, int) and isinstance(margin, int)) or module.dilation != 1:
            raise TypeError(f"unsupported pooling {module}")
        return [(size, step, margin)]
    if isinstance(module, Bottleneck):
        # The main path's receptive field contains the shortcut's (a 1x1 convolution or none).
        return _conv_layers(module.conv1) + _conv_layers(module.conv2) + _conv_layers(module.conv3)
    if isinstance(module, nn.Sequential):
        return [layer for child in module for layer in _conv_layers(child)]
    if isinstance(module, nn.ReLU | nn.Identity | nn.BatchNorm2d):
        return []
    raise TypeError(f"unsupported layer {type(module).__name__}")


Span = tuple[int, int]


class TumourWindowResNet(nn.Module):
    """A torchvision Bottleneck ResNet (eval only) whose stem, ``layer1`` and ``layer2``
    run, block by block, only on a window around each input's non-background pixels.

    Args:
        resnet: The network (typically a BatchNorm-folded copy); it is used, not copied.
        background: ``(C,)`` the value of every background pixel, per channel.

    Raises:
        TypeError: ``resnet`` has layers whose geometry this class does not know.
    """

    def __init__(self, resnet: ResNet, background: Tensor) -> None:
        super().__init__()
        self.resnet = resnet
        units = [nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu), resnet.maxpool, *resnet.layer1, *resnet.layer2]
        self.units = nn.ModuleList(units)
        self.geometry = [_Geometry.of(_conv_layers(u)) for u in units]
        self.register_buffer("background", background.detach().clone().reshape(1, -1, 1, 1), persistent=False)
        self._cache: dict[tuple[object, ...], list[Tensor]] = {}
        self._workers = CpuWorkers()

    def forward(self, x: Tensor) -> Tensor:
        """Same as ``resnet(x)`` for ``x`` ``(B, C, H, W)``."""
        r = self.resnet
        background: Tensor = self.background  # type: ignore[assignment]  # a registered buffer
        bg = self._background_maps(x)
        foreground = (x != background.to(x.dtype)).any(dim=1)
        rows, cols = foreground.any(dim=2), foreground.any(dim=1)
        maps = bg[-1].expand(x.shape[0], -1, -1, -1).contiguous(memory_format=memory_format_of(bg[-1]))
        boxes: list[tuple[int, Span, Span]] = []
        for i in range(x.shape[0]):
            ys, xs = torch.nonzero(rows[i]).flatten(), torch.nonzero(cols[i]).flatten()
            if ys.numel():  # else all background: the background's features
                boxes.append((i, _snap(int(ys[0]), int(ys[-1]) + 1, x.shape[2]), _snap(int(xs[0]), int(xs[-1]) + 1, x.shape[3])))

        def paste(item: tuple[int, Span, Span]) -> None:
            i, box_y, box_x = item
            self._paste_foreground(x[i : i + 1], box_y, box_x, bg, maps[i : i + 1])

        self._workers.map(paste, boxes, device=x.device)
        h = r.layer4(r.layer3(maps))
        return r.fc(torch.flatten(r.avgpool(h), 1))  # type: ignore[no-any-return]  # torchvision is untyped

    def _paste_foreground(self, x: Tensor, rows: Span, cols: Span, bg: list[Tensor], out: Tensor) -> None:
        """Run the units on windows around ``rows x cols`` of ``x`` ``(1, C, H, W)``, each
        unit's input being the background's map with the previous unit's outputs in it,
        and write the last unit's outputs there into ``out``."""
        part = x
        span_y, span_x = (0, x.shape[2]), (0, x.shape[3])  # where ``part`` sits in its map
        source = x
        for unit, geo, bg_out in zip(self.units, self.geometry, bg, strict=True):
            ry, rx = geo.affected(*rows, bg_out.shape[2]), geo.affected(*cols, bg_out.shape[3])
            wy, wx = geo.window(*ry, source.shape[2]), geo.window(*rx, source.shape[3])
            patch = source[:, :, wy[0] : wy[1], wx[0] : wx[1]]
            if part is not source:  # background around, the computed part pasted in
                patch = patch.clone(memory_format=memory_format_of(source))
                iy, ix = _meet(span_y, wy), _meet(span_x, wx)
                patch[:, :, iy[0] - wy[0] : iy[1] - wy[0], ix[0] - wx[0] : ix[1] - wx[0]] = part[
                    :, :, iy[0] - span_y[0] : iy[1] - span_y[0], ix[0] - span_x[0] : ix[1] - span_x[0]
                ]
            oy, ox = wy[0] // geo.jump, wx[0] // geo.jump
            part = unit(patch)[:, :, ry[0] - oy : ry[1] - oy, rx[0] - ox : rx[1] - ox]
            rows, cols, span_y, span_x, source = ry, rx, ry, rx, bg_out
        out[:, :, span_y[0] : span_y[1], span_x[0] : span_x[1]] = part

    def _background_maps(self, x: Tensor) -> list[Tensor]:
        """Every unit's output map for an all-background input like ``x``, cached."""
        key = (
            tuple(x.shape[1:]), x.dtype, x.device, memory_format_of(x),
            torch.is_autocast_enabled(x.device.type), torch.is_inference_mode_enabled(),
        )
        maps = self._cache.get(key)
        if maps is None:
            background: Tensor = self.background  # type: ignore[assignment]  # a registered buffer
            h = background.to(x.dtype).expand(1, *x.shape[1:]).contiguous(memory_format=memory_format_of(x))
            maps = []
            for unit in self.units:
                h = unit(h)
                maps.append(h)
            self._cache = {key: maps}  # one input shape at a time in practice
        return maps


def _snap(lo: int, hi: int, size: int) -> Span:
    """``[lo, hi)`` widened to multiples of :data:`_SNAP` (within ``[0, size)``): windows then
    come in few shapes, and oneDNN builds a kernel once per shape, not once per tumour."""
    return lo // _SNAP * _SNAP, min(size, -(-hi // _SNAP) * _SNAP)


def _meet(a: Span, b: Span) -> Span:
    return max(a[0], b[0]), min(a[1], b[1])


def use_tumour_windows(net: SurvivalClassifier) -> None:
    """Make ``net`` (a copy the caller owns) run its backbone's first layers on tumour
    windows; a backbone of another shape is left to run on whole masks."""
    if not isinstance(net.backbone, ResNet):
        return
    size = net.config.input_size
    background = prepare_masks(torch.zeros(1, len(MASK_CHANNELS), size, size), size=size)[0, :, 0, 0]
    try:
        net.backbone = TumourWindowResNet(net.backbone, background)
    except TypeError as exc:
        logger.debug("survival network runs on whole masks: %s", exc)
