"""Random augmentation of segmentation training items: mirroring, rotation and scaling,
an intensity jitter of the normalised brain and, on request, fainter oedema.

With a few training patients the network otherwise learns their exact shapes and
intensities; the transforms here are those of the BraTS literature (nnU-Net's, milder),
applied per item in the DataLoader's process from torch's global generator, which the
training loop seeds per epoch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from brats_sdk.constants import MASK_CHANNELS

__all__ = [
    "INTENSITY_JITTER",
    "MAX_ROTATION_DEG",
    "OEDEMA_EDGE_PX",
    "OEDEMA_PROB",
    "SCALE_RANGE",
    "SPATIAL_PROB",
    "augment_item",
    "fade_oedema",
]

#: Each channel's brain intensities are scaled by 1 +- this and shifted by +- this (z units).
INTENSITY_JITTER = 0.1
#: Probability that an item is rotated and scaled.
SPATIAL_PROB = 0.5
#: Largest in-plane rotation, in degrees.
MAX_ROTATION_DEG = 15.0
#: Range of the zoom factor.
SCALE_RANGE = (0.9, 1.1)
#: Probability that an item holding oedema gets it faded (when fading is asked for).
OEDEMA_PROB = 0.5
#: Width of the soft edge of the fading, in pixels: oedema has no sharp border, and a hard
#: one would hand the network the label's outline.
OEDEMA_EDGE_PX = 7
#: One fading factor per channel (oedema may stand out on FLAIR and hardly on T2, or the
#: reverse) instead of one for the item.
OEDEMA_PER_CHANNEL = True

_ED_CLASS = 1 + MASK_CHANNELS.index("ED")


def augment_item(
    image: torch.Tensor, target: torch.Tensor, brain: torch.Tensor, *, oedema_contrast_min: float = 1.0
) -> None:
    """Augment one item in place.

    In order: with ``oedema_contrast_min < 1``, an item holding oedema has it faded with
    probability :data:`OEDEMA_PROB` (:func:`fade_oedema`, a factor uniform in
    ``[oedema_contrast_min, 1]`` per channel, see :data:`OEDEMA_PER_CHANNEL`); each channel's brain intensities get a random scale and
    shift (background stays 0); the item is mirrored along each axis with probability 1/2;
    with probability :data:`SPATIAL_PROB` it is rotated and zoomed about its centre
    (bilinear for the image, nearest for the target; what comes in from outside is
    background).

    Args:
        image: ``(C, H, W)`` float32 normalised image.
        target: ``(H, W)`` uint8 class indices.
        brain: ``(H, W)`` bool brain mask of the item.
        oedema_contrast_min: Lowest fading factor; 1 turns fading off.
    """
    n = image.shape[0]
    if oedema_contrast_min < 1.0 and float(torch.rand(())) < OEDEMA_PROB:
        draws = torch.rand(n) if OEDEMA_PER_CHANNEL else torch.rand(()).expand(n)
        fade_oedema(image, target, brain, oedema_contrast_min + (1.0 - oedema_contrast_min) * draws)
    scale = 1.0 + INTENSITY_JITTER * (2.0 * torch.rand(n) - 1.0)
    shift = INTENSITY_JITTER * (2.0 * torch.rand(n) - 1.0)
    image.mul_(scale.view(n, 1, 1)).add_(shift.view(n, 1, 1) * brain)
    flips = torch.rand(2) < 0.5
    for axis, flip in zip((-2, -1), flips.tolist(), strict=True):
        if flip:
            image.copy_(image.flip(axis))
            target.copy_(target.flip(axis))
    if float(torch.rand(())) < SPATIAL_PROB:
        angle = math.radians(MAX_ROTATION_DEG) * (2.0 * float(torch.rand(())) - 1.0)
        lo, hi = SCALE_RANGE
        zoom = lo + (hi - lo) * float(torch.rand(()))
        _rotate_zoom(image, target, angle, zoom)


def _rotate_zoom(image: torch.Tensor, target: torch.Tensor, angle: float, zoom: float) -> None:
    """Rotate by ``angle`` (radians) and zoom by ``zoom`` about the centre, in place."""
    h, w = image.shape[-2:]
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    # affine_grid works in coordinates normalised per axis: a rotation in pixels needs the
    # aspect ratio on its off-diagonal terms.
    theta = torch.tensor([[cos, -sin * h / w, 0.0], [sin * w / h, cos, 0.0]], dtype=torch.float32)
    grid = F.affine_grid(theta[None], [1, 1, h, w], align_corners=False)
    warped = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    labels = F.grid_sample(target[None, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    image.copy_(warped[0])
    target.copy_(labels[0, 0].round().to(target.dtype))


def fade_oedema(image: torch.Tensor, target: torch.Tensor, brain: torch.Tensor, factor: float | torch.Tensor) -> None:
    """Scale the oedema's difference from healthy brain by ``factor``, per channel, in place.

    Scanners and sequences differ in how far oedema stands out on FLAIR and T2, and a few
    training patients span only part of that range; fading their oedema towards the
    median of the item's healthy brain shows the network fainter oedema under the same
    labels. The weight is the oedema mask smoothed over :data:`OEDEMA_EDGE_PX` pixels and
    zero on the tumour core and outside the brain, so the core keeps its contrast. An item
    without oedema or without healthy brain is left as it is.

    Args:
        image: ``(C, H, W)`` float32 normalised image.
        target: ``(H, W)`` uint8 class indices.
        brain: ``(H, W)`` bool brain mask of the item.
        factor: 1 keeps the image; 0 sets the oedema to the healthy median. A float, or
            ``(C,)`` one per channel.
    """
    oedema = target == _ED_CLASS
    healthy = brain & (target == 0)
    if not bool(oedema.any()) or not bool(healthy.any()):
        return
    ref = image[:, healthy].median(dim=1).values.view(-1, 1, 1)
    pad = OEDEMA_EDGE_PX // 2
    weight = F.avg_pool2d(oedema[None, None].float(), OEDEMA_EDGE_PX, stride=1, padding=pad, count_include_pad=False)[0, 0]
    weight = weight * (healthy | (oedema & brain))  # brain outside the core
    keep = torch.as_tensor(factor, dtype=image.dtype).reshape(-1, 1, 1)
    image.sub_((1.0 - keep) * weight * (image - ref))
