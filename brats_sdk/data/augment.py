"""Random augmentation of segmentation training items: mirroring, rotation and scaling,
and an intensity jitter of the normalised brain.

With a few training patients the network otherwise learns their exact shapes and
intensities; the transforms here are those of the BraTS literature (nnU-Net's, milder),
applied per item in the DataLoader's process from torch's global generator, which the
training loop seeds per epoch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["INTENSITY_JITTER", "MAX_ROTATION_DEG", "SCALE_RANGE", "SPATIAL_PROB", "augment_item"]

#: Each channel's brain intensities are scaled by 1 +- this and shifted by +- this (z units).
INTENSITY_JITTER = 0.1
#: Probability that an item is rotated and scaled.
SPATIAL_PROB = 0.5
#: Largest in-plane rotation, in degrees.
MAX_ROTATION_DEG = 15.0
#: Range of the zoom factor.
SCALE_RANGE = (0.9, 1.1)


def augment_item(image: torch.Tensor, target: torch.Tensor, brain: torch.Tensor) -> None:
    """Augment one item in place.

    In order: each channel's brain intensities get a random scale and shift (background
    stays 0); the item is mirrored along each axis with probability 1/2; with probability
    :data:`SPATIAL_PROB` it is rotated and zoomed about its centre (bilinear for the image,
    nearest for the target; what comes in from outside is background).

    Args:
        image: ``(C, H, W)`` float32 normalised image.
        target: ``(H, W)`` uint8 class indices.
        brain: ``(H, W)`` bool brain mask of the item.
    """
    n = image.shape[0]
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
