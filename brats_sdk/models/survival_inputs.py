"""The survival network's inputs and its one probability path.

:func:`prepare_masks` and :func:`prepare_age` turn tumour masks and ages into network
inputs; :func:`bin_probabilities` runs a network on them. Training, the classifier's
``predict_proba``, the predictor (with its rewritten network) and the report all use
these, so the survival inputs are prepared in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brats_sdk.constants import IMAGENET_MEAN, IMAGENET_STD, MASK_CHANNELS, SURVIVAL_INPUT_SIZE
from brats_sdk.errors import DataError

if TYPE_CHECKING:
    from brats_sdk.data.age_scaling import AgeScaler

__all__ = ["bin_probabilities", "prepare_age", "prepare_masks"]

_N_MASK_CHANNELS = len(MASK_CHANNELS)


def prepare_masks(
    mask: Tensor | npt.NDArray[np.generic], *, size: int = SURVIVAL_INPUT_SIZE
) -> Tensor:
    """Tumour masks -> network input: bilinear resize, then ImageNet normalisation.

    Args:
        mask: One-hot masks ``(N, 3, H, W)`` (NCR, ED, ET) with values in ``[0, 1]``:
            float, uint8 or bool, tensor or numpy.
        size: Output side (224 in the paper).

    Returns:
        Float32 ``(N, 3, size, size)`` on ``mask``'s device, resized with
        ``align_corners=False`` and normalised with
        :data:`~brats_sdk.constants.IMAGENET_MEAN` / :data:`~brats_sdk.constants.IMAGENET_STD`.

    Raises:
        DataError: Wrong shape, or values outside ``[0, 1]`` / not finite.
    """
    x = torch.as_tensor(mask)
    if x.ndim != 4 or x.shape[1] != _N_MASK_CHANNELS:
        raise DataError(
            f"masks must be (N, {_N_MASK_CHANNELS}, H, W) one-hot {'/'.join(MASK_CHANNELS)}, "
            f"got shape {tuple(x.shape)}"
        )
    if x.numel() and x.dtype != torch.bool:
        # One pass, before the float copy (integer masks are a quarter of its bytes): a NaN
        # makes both ends NaN, an infinity falls outside [0, 1].
        low, high = torch.aminmax(x)
        if not (float(low) >= 0 and float(high) <= 1):
            raise DataError("masks must hold finite values in [0, 1]")
    x = x.to(torch.float32)
    if x.shape[0] == 0:
        return x.new_zeros((0, _N_MASK_CHANNELS, size, size))
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


def prepare_age(ages: Sequence[float] | npt.NDArray[np.floating], scaler: AgeScaler) -> Tensor:
    """Ages in years -> scaled network input.

    Args:
        ages: ``N`` ages in years.
        scaler: The scaler fitted on the training patients.

    Returns:
        Float32 ``(N, 1)`` of ``scaler.transform(age)``.

    Raises:
        DataError: An age is NaN or infinite.
    """
    arr = np.asarray(ages, dtype=np.float64).ravel()
    if not np.isfinite(arr).all():
        raise DataError("ages hold NaN or infinite values; age is needed for every patient")
    return torch.from_numpy(scaler.transform_array(arr).astype(np.float32)).view(-1, 1)


def bin_probabilities(
    net: nn.Module,
    masks_one_hot: Tensor,
    scaled_age: Tensor,
    *,
    size: int = SURVIVAL_INPUT_SIZE,
    to_input: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """The one survival probability path: masks and scaled ages -> bin probabilities.

    :meth:`SurvivalClassifier.predict_proba`, the predictor (with its rewritten network),
    the training pipeline's test evaluation and the report all call it. The caller holds
    ``torch.inference_mode`` and puts ``net`` in eval mode.

    Args:
        net: A :class:`SurvivalClassifier` or a network computing the same function
            (``net(masks, age) -> logits``).
        masks_one_hot: One-hot masks ``(N, 3, H, W)`` on the network's device.
        scaled_age: Scaled ages ``(N, 1)`` (see :meth:`AgeScaler.transform`).
        size: Network input side.
        to_input: Casts the prepared masks to the network's dtype and memory format;
            the ages follow to its device and dtype. None: as prepared (float32).

    Returns:
        Float64 ``(N, n_bins)`` softmax probabilities on the network's device.
    """
    x = prepare_masks(masks_one_hot, size=size)
    if to_input is not None:
        x = to_input(x)
    age = scaled_age.to(device=x.device, dtype=x.dtype)
    logits: Tensor = net(x, age)
    return torch.softmax(logits.double(), dim=1)
