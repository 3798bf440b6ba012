"""U-Net logits of one window of the input, without computing the rest at full resolution.

The predictor needs labels only inside each slice's brain box, but the U-Net sees a
larger crop (the box, a margin of background and the rounding to multiples of 32), and
its last decoder blocks and head, which work at 1/4, 1/2 and full resolution, cost
about a third of the network. Their outputs in the box depend only on their inputs a
few pixels around it (two 3x3 convolutions per block after a nearest 2x upsampling,
and the head's kernels), so those layers run on that neighbourhood alone. The encoder
and the coarse decoder blocks, whose fields span the whole crop, run on all of it. The
result equals the whole crop's logits inside the window up to float rounding.
"""

from __future__ import annotations

from torch import Tensor, nn

from brats_sdk.predict.accel.smp_internals import Unet, UnetDecoder, UnetDecoderBlock
from brats_sdk.predict.accel.upsample import PhaseUpsampleBlock

__all__ = ["head_halo", "supports_windows", "window_logits"]

Span = tuple[int, int]

# A decoder block's output pixel reads its upsampled input two pixels around it.
_BLOCK_HALO = 2


def head_halo(head: nn.Module) -> int | None:
    """Pixels around an output that a head made of stride-1 'same' convolutions and
    pointwise layers reads; None for any other head."""
    halo = 0
    for module in head.modules():
        if isinstance(module, nn.Conv2d):
            k, s, p, d = module.kernel_size, module.stride, module.padding, module.dilation
            if k[0] != k[1] or k[0] % 2 == 0 or s != (1, 1) or d != (1, 1) or p != (k[0] // 2, k[0] // 2):
                return None
            halo += k[0] // 2
        elif type(module).__name__ == "Activation":  # smp's wrapper: per pixel, whatever it holds
            continue
        elif not isinstance(module, nn.Sequential | nn.ReLU | nn.Identity):
            return None
    return halo


def supports_windows(unet: nn.Module) -> bool:
    """Whether :func:`window_logits` can run ``unet``: an smp ``Unet`` without a centre block,
    whose decoder blocks upsample by nearest neighbour without attention, and whose head
    :func:`head_halo` knows."""
    if not isinstance(unet, Unet) or not isinstance(unet.decoder, UnetDecoder):
        return False
    if not isinstance(unet.decoder.center, nn.Identity) or head_halo(unet.segmentation_head) is None:
        return False
    for block in unet.decoder.blocks:
        plain = block.fallback if isinstance(block, PhaseUpsampleBlock) else block
        if not isinstance(plain, UnetDecoderBlock) or plain.interpolation_mode != "nearest":
            return False
        if not isinstance(plain.attention1.attention, nn.Identity) or not isinstance(plain.attention2.attention, nn.Identity):
            return False
    return True


def window_logits(unet: Unet, x: Tensor, rows: Span, cols: Span, *, levels: int = 3) -> Tensor:
    """``unet(x)[..., rows[0]:rows[1], cols[0]:cols[1]]``, with the head and the last
    ``levels`` decoder blocks run only where those logits depend on them.

    Args:
        unet: A model for which :func:`supports_windows` holds, in eval mode.
        x: ``(B, C, H, W)``, ``H`` and ``W`` multiples of the encoder's output stride.
        rows, cols: The window, half-open, inside ``H x W``.
        levels: Decoder blocks run on windows (the coarser ones run on the whole map).

    Returns:
        Logits ``(B, classes, rows[1] - rows[0], cols[1] - cols[0])``.
    """
    features = unet.encoder(x)
    decoder = unet.decoder
    shapes = [f.shape[2:] for f in features][::-1]
    deep = features[1:][::-1]
    skips = deep[1:]
    blocks = list(decoder.blocks)
    first = len(blocks) - levels
    h = decoder.center(deep[0])
    for i in range(first):
        h = blocks[i](h, *shapes[i + 1], skip_connection=skips[i] if i < len(skips) else None)
    # Backwards from the window: the region each windowed block must output, per axis.
    halo = head_halo(unet.segmentation_head) or 0
    need = [_grow(rows, halo, x.shape[2]), _grow(cols, halo, x.shape[3])]
    needs: list[list[Span]] = []
    for i in range(len(blocks) - 1, first - 1, -1):
        needs.append(need)
        low_shape = shapes[i]
        need = [_low(span, int(n)) for span, n in zip(need, low_shape, strict=True)]
    needs.reverse()
    # ``h`` is the coarse map; ``at`` is where its first row/column sits in its full map.
    at = (0, 0)
    for i, out_need in zip(range(first, len(blocks)), needs, strict=True):
        low = [_low(span, int(n)) for span, n in zip(out_need, shapes[i], strict=True)]
        (ya, yb), (xa, xb) = low
        h = h[:, :, ya - at[0] : yb - at[0], xa - at[1] : xb - at[1]]
        skip = skips[i] if i < len(skips) else None
        if skip is not None:
            skip = skip[:, :, 2 * ya : 2 * yb, 2 * xa : 2 * xb]
        h = blocks[i](h, 2 * (yb - ya), 2 * (xb - xa), skip_connection=skip)
        at = (2 * ya, 2 * xa)
    logits: Tensor = unet.segmentation_head(h)
    return logits[:, :, rows[0] - at[0] : rows[1] - at[0], cols[0] - at[1] : cols[1] - at[1]]


def _grow(span: Span, halo: int, size: int) -> Span:
    return max(0, span[0] - halo), min(size, span[1] + halo)


def _low(span: Span, n_low: int) -> Span:
    """The half-resolution input rows a decoder block reads for output rows ``span``."""
    a, b = span
    return max(0, (a - _BLOCK_HALO) // 2), min(n_low, (b - 1 + _BLOCK_HALO) // 2 + 1)
