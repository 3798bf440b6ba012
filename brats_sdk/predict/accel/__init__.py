"""Inference rewrites: plain networks in, fast networks out, computing the same function.

Each rewrite changes only float rounding (``tests/`` compares them in float64):

- :mod:`~brats_sdk.predict.accel.batchnorm`: BatchNorm folded into the convolutions;
- :mod:`~brats_sdk.predict.accel.upsample`: the U-Net decoder's nearest 2x upsampling
  fused into the convolution after it;
- :mod:`~brats_sdk.predict.accel.unet_window`: the U-Net's last decoder blocks and head
  run only around a window of the crop (the brain boxes);
- :mod:`~brats_sdk.predict.accel.tumour_windows`: the survival ResNet's first layers run
  only on a window around the tumour;
- :mod:`~brats_sdk.predict.accel.convolutions`: on a CPU in float32, the wide 3x3
  convolutions run as Winograd F(m x m, 3 x 3) (:mod:`~brats_sdk.predict.accel.winograd`)
  and every other one through oneDNN whatever its batch.

:mod:`~brats_sdk.predict.accel.smp_internals` is the one module that reads
segmentation-models-pytorch internals. The predictor calls :func:`accelerate` only;
``brats predict --plain-networks`` turns every rewrite off.

:mod:`~brats_sdk.predict.accel.background` is no rewrite of that kind: it changes what the
layers of a brain-box crop pad with, so that the crop's labels are the whole slice's; it
applies with or without the rewrites, to a copy that runs the crops only.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch
from torch import nn

from brats_sdk.models.segmenter import Segmenter
from brats_sdk.models.survival import SurvivalClassifier
from brats_sdk.predict.accel.background import background_features, pad_crops_with_background
from brats_sdk.predict.accel.batchnorm import fold_batchnorm
from brats_sdk.predict.accel.convolutions import use_fast_convolutions
from brats_sdk.predict.accel.smp_internals import Unet
from brats_sdk.predict.accel.tumour_windows import use_tumour_windows
from brats_sdk.predict.accel.unet_window import supports_windows, window_logits
from brats_sdk.predict.accel.upsample import fuse_upsampling

__all__ = ["AccelOptions", "FastNetworks", "accelerate", "window_logits"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AccelOptions:
    """Which rewrites to apply and where the networks run.

    Attributes:
        device: Device of the fast networks.
        dtype: Their parameter dtype (float32 or bfloat16; float64 for exact comparisons).
        memory_format: Their weights' memory format (channels-last is faster on a CPU).
        fold_batchnorm: Fold BatchNorm into the convolutions.
        fuse_upsampling: Fuse the decoder's upsampling into its convolutions (needs
            ``fold_batchnorm``).
        tumour_windows: Run the survival backbone's first layers on tumour windows (CPU only).
        fast_convolutions: Swap the convolutions for Winograd and oneDNN ones (CPU, float32;
            Winograd also float64).
        crop_background: Give the crops' copy of the segmenter background padding
            (:mod:`~brats_sdk.predict.accel.background`).
    """

    device: torch.device
    dtype: torch.dtype = torch.float32
    memory_format: torch.memory_format = torch.channels_last
    fold_batchnorm: bool = True
    fuse_upsampling: bool = True
    tumour_windows: bool = True
    fast_convolutions: bool = True
    crop_background: bool = True


@dataclass(frozen=True, slots=True)
class FastNetworks:
    """Eval-mode copies of the networks, rewritten; the models passed in are untouched.

    Attributes:
        segmenter: Runs ``(B, 4, H, W) -> (B, 4, H, W)`` logits of whole slices like the segmenter.
        crops: Runs brain-box crops: ``segmenter`` itself, or a copy that pads with background.
        window_unet: The U-Net of ``crops`` when :func:`window_logits` can run it on windows, else None.
        survival: Runs ``(masks, age) -> logits`` like the classifier, or None.
    """

    segmenter: nn.Module
    crops: nn.Module
    window_unet: Unet | None
    survival: nn.Module | None


def accelerate(segmenter: Segmenter, survival: SurvivalClassifier | None, options: AccelOptions) -> FastNetworks:
    """The fast copies of ``segmenter`` and ``survival`` that the predictor runs.

    Args:
        segmenter: A segmenter (its mode, device and memory format are left as they are).
        survival: A survival classifier, or None.
        options: Rewrites, device, dtype and memory format.

    Returns:
        The copies, in eval mode, on ``options.device`` in ``options.dtype``.
    """
    fold = options.fold_batchnorm
    # bf16 keeps PyTorch's convolutions (oneDNN's, whatever the shape): Winograd's
    # transforms would spend its 8-bit mantissa.
    fast = options.fast_convolutions and options.device.type == "cpu" and options.dtype in (torch.float32, torch.float64)

    def rewritten() -> nn.Module:
        net: nn.Module = fold_batchnorm(segmenter) if fold else copy.deepcopy(segmenter).eval()
        if fold and options.fuse_upsampling:
            net = fuse_upsampling(net)
        net = net.to(device=options.device, dtype=options.dtype).to(memory_format=options.memory_format)
        if fast:
            use_fast_convolutions(net)
        return net

    seg_net = rewritten()
    crop_net = seg_net
    if options.crop_background:
        features = background_features(segmenter, segmenter.config.in_channels)
        if any(f.any() for f in features.values()):  # else zeros are the background
            crop_net = rewritten()
            pad_crops_with_background(crop_net, features)
    unet = getattr(crop_net, "unet", None)
    window_unet = unet if isinstance(unet, Unet) and supports_windows(unet) else None
    surv_net: nn.Module | None = None
    if survival is not None:
        surv_net = fold_batchnorm(survival) if fold else copy.deepcopy(survival).eval()
        surv_net = surv_net.to(device=options.device, dtype=options.dtype).to(memory_format=options.memory_format)
        if fast:
            use_fast_convolutions(surv_net)
        if options.tumour_windows and options.device.type == "cpu" and isinstance(surv_net, SurvivalClassifier):
            use_tumour_windows(surv_net)
    return FastNetworks(segmenter=seg_net, crops=crop_net, window_unet=window_unet, survival=surv_net)
