"""Brain-box crops that continue into background: every padded layer of a crop run pads
with the features the network computes on background instead of with zeros.

The predictor runs the U-Net on each slice's brain box (:mod:`~brats_sdk.predict.boxes`),
and the result should be the whole slice's. The input outside the box is background,
zero after normalisation, so the first convolution's zero padding is right; but past it
background has features of its own (biases and BatchNorm shifts make them non-zero),
and each later layer's zero padding puts at the crop's edge what a whole slice never
holds there. The encoder's fields span the crop, so that reaches labels inside the box
(``benchmarks/README.md`` counts them).

On background far from anything else, each layer's input is one vector per channel:
the layer's input on an endless zero image (:func:`background_features`, from one run of
a copy whose convolutions pad circularly, so that a constant map stays constant).
Padding every layer with its vector continues the crop with background, as a whole
slice continues it. A convolution padded with ``c`` equals the zero-padded one plus the
convolution of ``c`` on the padding ring alone, which is non-zero only on the outputs
that read the padding: a band of one or two pixels along each edge.
:func:`pad_crops_with_background` adds that band to the layer's output (computed once
per input size), so the work inside the map is untouched.

An exported graph has no per-size state, so :func:`shift_to_background` gives it the same
padding another way: each padded convolution reads its input less ``s * c``, which its
zero padding then pads as ``c`` would pad the input itself, and adds ``s * (W c)`` back
to its output (exact inside the map); ``s`` is a graph input, 1 for crops, 0 for whole
slices.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from brats_sdk.predict.accel.upsample import PhaseUpsampleBlock

__all__ = ["BackgroundBands", "BackgroundSwitch", "background_features", "pad_crops_with_background", "shift_to_background"]

# A multiple of the U-Net's output stride (32) that leaves its deepest map 2 x 2.
_PROBE_SIZE = 64
_FALLBACK = ".fallback"  # PhaseUpsampleBlock keeps the block it replaces under this name


def background_features(network: nn.Module, in_channels: int) -> dict[str, Tensor]:
    """Each padded convolution's input on background, by module name, in float64.

    Args:
        network: The plain network (not rewritten), left as it is.
        in_channels: Its input channels (background is zero in each).

    Returns:
        ``{name: (C,)}`` for every convolution with padding.
    """
    probe = copy.deepcopy(network).eval().cpu().double()
    features: dict[str, Tensor] = {}
    handles: list[RemovableHandle] = []
    for name, module in probe.named_modules():
        if isinstance(module, nn.Conv2d) and _padding(module) != (0, 0):
            module.padding_mode = "circular"

            def record(_: nn.Module, args: tuple[Tensor, ...], name: str = name) -> None:
                x = args[0]
                features[name] = x[0, :, x.shape[2] // 2, x.shape[3] // 2].clone()

            handles.append(module.register_forward_pre_hook(record))
    with torch.inference_mode():
        probe(torch.zeros((1, in_channels, _PROBE_SIZE, _PROBE_SIZE), dtype=torch.float64))
    for handle in handles:
        handle.remove()
    return features


class BackgroundBands:
    """Forward hook of one convolution: adds to its output what padding with ``value``
    instead of zeros adds (see the module), per input size computed once in float64 from
    the ring's parts next to the bands.

    Args:
        conv: The convolution (any ``Conv2d``, rewritten ones included).
        value: Its input's per-channel background ``(C,)``.
    """

    def __init__(self, conv: nn.Conv2d, value: Tensor) -> None:
        self.conv = conv
        self.value = value.detach().to(torch.float64)
        self._bands: dict[
            tuple[int, int, torch.dtype, torch.device, torch.memory_format], tuple[tuple[int, int, int, int], tuple[Tensor, ...]]
        ] = {}

    def __call__(self, _: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        h, w = args[0].shape[-2:]
        # The bands in the output's memory format: adding across formats is several times slower.
        fmt = torch.channels_last if out.dim() == 4 and out.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        key = (int(h), int(w), out.dtype, out.device, fmt)
        rows, cols = int(out.shape[-2]), int(out.shape[-1])
        found = self._bands.get(key)
        if found is None:
            found = self._bands[key] = self._compute(*key, rows, cols)
        (t, b, left, r), (top, bottom, west, east) = found
        out[..., :t, :] += top
        out[..., rows - b :, :] += bottom
        out[..., t : rows - b, :left] += west
        out[..., t : rows - b, cols - r :] += east

    def _compute(
        self, h: int, w: int, dtype: torch.dtype, device: torch.device, fmt: torch.memory_format, rows: int, cols: int
    ) -> tuple[tuple[int, int, int, int], tuple[Tensor, ...]]:
        """The bands of an ``h x w`` input whose output is ``rows x cols``."""
        conv = self.conv
        ph, pw = _padding(conv)
        (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
        t, b = _edge_outputs(h, rows, ph, kh, sh, dh)
        left, r = _edge_outputs(w, cols, pw, kw, sw, dw)
        # float64 on the CPU (MPS has no float64), then on the output's device and dtype.
        weight = conv.weight.detach().cpu().to(torch.float64)
        value = self.value.cpu().view(1, -1, 1, 1)

        def part(r0: int, r1: int, c0: int, c1: int) -> Tensor:
            """The outputs ``[r0, r1) x [c0, c1)`` of the convolution of the padding ring
            (``value`` outside the ``h x w`` input, zero inside), from the ring's part they read."""
            if r1 <= r0 or c1 <= c0:
                return torch.zeros((1, conv.out_channels, max(r1 - r0, 0), max(c1 - c0, 0)), dtype=dtype, device=device)
            y0, y1 = r0 * sh, (r1 - 1) * sh + (kh - 1) * dh + 1
            x0, x1 = c0 * sw, (c1 - 1) * sw + (kw - 1) * dw + 1
            ring = value.expand(1, -1, y1 - y0, x1 - x0).clone()
            ring[..., max(ph - y0, 0) : max(ph + h - y0, 0), max(pw - x0, 0) : max(pw + w - x0, 0)] = 0.0
            out = F.conv2d(ring, weight, None, conv.stride, 0, conv.dilation, conv.groups)
            return out.to(dtype).to(device).contiguous(memory_format=fmt)

        parts = (part(0, t, 0, cols), part(rows - b, rows, 0, cols), part(t, rows - b, 0, left), part(t, rows - b, cols - r, cols))
        return (t, b, left, r), parts


def pad_crops_with_background(network: nn.Module, features: Mapping[str, Tensor]) -> int:
    """Make every padded layer of ``network`` (in place) pad with the background features
    of :func:`background_features`, computed on the plain network it was made from.

    The rewrites of :mod:`~brats_sdk.predict.accel` keep the plain network's module names,
    apart from :class:`PhaseUpsampleBlock`, whose upsampled input is padded with its
    ``conv1``'s background and whose skip convolution gets the skip channels' share.

    Returns:
        How many layers pad with a non-zero background.
    """
    changed = 0
    done: set[int] = set()
    for name, module in network.named_modules():
        if isinstance(module, PhaseUpsampleBlock):
            value = features[name + ".conv1.0"]
            up = module.phase_weight.shape[1]
            if value[:up].any():
                module.pad_value = value[:up].to(module.phase_weight.dtype).to(module.phase_weight.device)
                changed += 1
            if module.skip_conv is not None:
                done.add(id(module.skip_conv))
                changed += _hook(module.skip_conv, value[up:])
        elif isinstance(module, nn.Conv2d) and id(module) not in done and _padding(module) != (0, 0):
            changed += _hook(module, features[name.replace(_FALLBACK, "")])
    return changed


class BackgroundSwitch:
    """How much of the background a network changed by :func:`shift_to_background` pads
    with: ``on`` is a 0-d or ``(1,)`` tensor, 1 for background, 0 for zeros, set before
    each call (an exported graph's input)."""

    def __init__(self) -> None:
        self.on: Tensor = torch.ones(1)


def shift_to_background(network: nn.Module, features: Mapping[str, Tensor], switch: BackgroundSwitch) -> int:
    """Make every padded convolution of the plain ``network`` (in place) pad with
    ``switch.on`` times its background (see the module); ``features`` are
    :func:`background_features` of ``network`` itself.

    Returns:
        How many convolutions pad with a non-zero background.
    """
    changed = 0
    for name, module in network.named_modules():
        if not isinstance(module, nn.Conv2d) or _padding(module) == (0, 0) or not features[name].any():
            continue
        value = features[name].detach()
        (kh, kw), (dh, dw) = module.kernel_size, module.dilation
        field = value.view(1, -1, 1, 1).expand(1, -1, (kh - 1) * dh + 1, (kw - 1) * dw + 1)
        added = F.conv2d(field, module.weight.detach().cpu().double(), None, 1, 0, module.dilation, module.groups).flatten()

        def shift(_: nn.Module, args: tuple[Tensor, ...], value: Tensor = value) -> tuple[Tensor]:
            x = args[0]
            return (x - switch.on.to(x.dtype) * value.to(x.dtype).view(1, -1, 1, 1),)

        def add_back(_: nn.Module, __: tuple[Tensor, ...], out: Tensor, added: Tensor = added) -> Tensor:
            return out + switch.on.to(out.dtype) * added.to(out.dtype).view(1, -1, 1, 1)

        module.register_forward_pre_hook(shift)
        module.register_forward_hook(add_back)
        changed += 1
    return changed


def _hook(conv: nn.Conv2d, value: Tensor) -> int:
    if not value.any():
        return 0
    conv.register_forward_hook(BackgroundBands(conv, value))
    return 1


def _padding(conv: nn.Conv2d) -> tuple[int, int]:
    if conv.padding == "valid":
        return 0, 0
    if conv.padding == "same":
        k, d = conv.kernel_size, conv.dilation
        return d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2
    return cast(tuple[int, int], tuple(conv.padding))


def _edge_outputs(size: int, outputs: int, pad: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """How many outputs at the start and at the end of one axis read its padding (all of
    them at the start when every one does)."""
    reads = [o * stride - pad < 0 or o * stride - pad + (kernel - 1) * dilation > size - 1 for o in range(outputs)]
    if all(reads):
        return outputs, 0
    first = reads.index(False)
    last = reads[::-1].index(False)
    return first, last
