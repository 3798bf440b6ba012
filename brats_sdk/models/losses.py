"""Soft Dice loss of the paper, with per-sample, per-class Dice for metrics."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brats_sdk.errors import ConfigError

__all__ = ["DiceCELoss", "DiceLoss", "dice_per_class"]


def _target_as_one_hot(target: Tensor, shape: torch.Size, dtype: torch.dtype) -> Tensor:
    """One-hot ``(B, C, *spatial)`` from a one-hot or class-index target, checked against ``shape``."""
    n_classes = shape[1]
    if target.shape == shape:
        return target.to(dtype)
    expected_index_shape = (shape[0], *shape[2:])
    if tuple(target.shape) != expected_index_shape:
        raise ConfigError(
            f"target shape {tuple(target.shape)} matches neither the input shape {tuple(shape)} "
            f"(one-hot) nor {expected_index_shape} (class indices)"
        )
    if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
        raise ConfigError(f"class-index targets must be an integer tensor, got {target.dtype}")
    if target.numel() > 0:
        lo, hi = int(target.min()), int(target.max())
        if lo < 0 or hi >= n_classes:
            raise ConfigError(
                f"class-index target holds values in [{lo}, {hi}]; expected 0..{n_classes - 1}"
            )
    one_hot = F.one_hot(target.long(), n_classes)  # (B, *spatial, C)
    return one_hot.movedim(-1, 1).to(dtype)


def dice_per_class(
    input: Tensor,
    target: Tensor,
    *,
    smooth: float = 1.0,
    from_logits: bool = True,
    batch_dice: bool = False,
) -> Tensor:
    """Soft Dice of each class in each sample.

    ``D[b, c] = (2 * sum(p * g) + smooth) / (sum(p) + sum(g) + smooth)``, the sums running
    over the pixels of sample ``b``. A class absent from both prediction and truth scores
    1 when ``smooth > 0`` (and NaN when ``smooth == 0``).

    Args:
        input: Logits ``(B, C, H, W)`` (any number of spatial dims), or probabilities
            when ``from_logits`` is False.
        target: One-hot ``(B, C, H, W)`` (any numeric dtype) or integer class indices
            ``(B, H, W)`` in ``0..C-1``.
        smooth: Added to numerator and denominator; must be finite and >= 0.
        from_logits: Apply a softmax over ``C`` to ``input`` first.
        batch_dice: Pool the sums over the whole batch (nnU-Net's "batch Dice") and
            return ``(1, C)``: a slice without tumour then no longer scores a perfect 1
            for predicting nothing, which is what makes per-sample Dice slow to leave the
            all-background solution on data with many tumour-free slices.

    Returns:
        Dice scores ``(B, C)`` (``(1, C)`` with ``batch_dice``; float32 for half-precision
        input), differentiable in ``input``.

    Raises:
        ConfigError: Shapes do not match, ``input`` has fewer than 3 dims, class indices
            are out of range or not integers, or ``smooth`` is negative or not finite.
    """
    if not (math.isfinite(smooth) and smooth >= 0):
        raise ConfigError(f"smooth must be finite and >= 0, got {smooth}")
    if input.ndim < 3:
        raise ConfigError(f"input must be (B, C, H, W), got shape {tuple(input.shape)}")
    x = input.float() if input.dtype in (torch.float16, torch.bfloat16) else input
    probs = torch.softmax(x, dim=1) if from_logits else x
    truth = _target_as_one_hot(target, probs.shape, probs.dtype)
    p = probs.flatten(2)  # (B, C, N)
    g = truth.flatten(2)
    if batch_dice:
        p = p.transpose(0, 1).reshape(1, p.shape[1], -1)  # (1, C, B*N)
        g = g.transpose(0, 1).reshape(1, g.shape[1], -1)
    intersection = (p * g).sum(dim=2)
    denominator = p.sum(dim=2) + g.sum(dim=2)
    return (2.0 * intersection + smooth) / (denominator + smooth)


class DiceLoss(nn.Module):
    """The paper's Dice loss: ``1 - mean_b( sum_c w_c D[b, c] / sum_c w_c )``.

    With the default weights ``(0, 1, 1, 1)`` the background class is left out and the
    three tumour classes count equally.

    Args:
        class_weights: One non-negative weight per class, not all zero.
        smooth: Smoothing term of :func:`dice_per_class` (finite, >= 0).
        from_logits: ``input`` holds logits (softmax is applied) rather than probabilities.
        batch_dice: Pool Dice over the batch instead of per sample (off: the paper's
            formula; see :func:`dice_per_class`).

    Raises:
        ConfigError: A weight is negative or not finite, all weights are zero, no weight is
            given, or ``smooth`` is invalid.
    """

    class_weights: Tensor

    def __init__(
        self,
        *,
        class_weights: Sequence[float] = (0.0, 1.0, 1.0, 1.0),
        smooth: float = 1.0,
        from_logits: bool = True,
        batch_dice: bool = False,
    ) -> None:
        super().__init__()
        weights = [float(w) for w in class_weights]
        if not weights:
            raise ConfigError("class_weights must hold one weight per class, got none")
        if any(not math.isfinite(w) or w < 0 for w in weights):
            raise ConfigError(f"class_weights must be finite and >= 0, got {weights}")
        if sum(weights) == 0:
            raise ConfigError(f"class_weights must not all be zero, got {weights}")
        if not (math.isfinite(smooth) and smooth >= 0):
            raise ConfigError(f"smooth must be finite and >= 0, got {smooth}")
        self.smooth = float(smooth)
        self.from_logits = bool(from_logits)
        self.batch_dice = bool(batch_dice)
        # Not persistent: the loss has no state worth saving, but .to(device) moves it.
        self.register_buffer(
            "class_weights", torch.tensor(weights, dtype=torch.float32), persistent=False
        )

    def dice_per_class(self, input: Tensor, target: Tensor) -> Tensor:
        """Per-sample, per-class Dice with this loss's ``smooth`` and ``from_logits``.

        Args:
            input: Logits (or probabilities) ``(B, C, H, W)``.
            target: One-hot ``(B, C, H, W)`` or class indices ``(B, H, W)``.

        Returns:
            Dice scores ``(B, C)``.

        Raises:
            ConfigError: As :func:`dice_per_class`.
        """
        return dice_per_class(
            input, target, smooth=self.smooth, from_logits=self.from_logits, batch_dice=self.batch_dice
        )

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """The loss.

        Args:
            input: Logits (or probabilities) ``(B, C, H, W)``.
            target: One-hot ``(B, C, H, W)`` or class indices ``(B, H, W)``.

        Returns:
            Scalar loss in ``[0, 1]`` (for ``smooth >= 0`` and valid probabilities).

        Raises:
            ConfigError: The input has a different number of classes than ``class_weights``,
                or as :func:`dice_per_class`.
        """
        if input.ndim < 3 or input.shape[1] != self.class_weights.numel():
            raise ConfigError(
                f"DiceLoss has {self.class_weights.numel()} class weights but the input shape "
                f"{tuple(input.shape)} has {input.shape[1] if input.ndim >= 2 else 'no'} classes"
            )
        dice = self.dice_per_class(input, target)  # (B, C)
        # The weights follow the input, so a loss built on the CPU works on any device.
        w = self.class_weights.to(device=dice.device, dtype=dice.dtype)
        per_sample = (dice * w).sum(dim=1) / w.sum()
        return 1.0 - per_sample.mean()


class DiceCELoss(nn.Module):
    """:class:`DiceLoss` plus ``ce_weight`` times the cross-entropy of the classes.

    The Dice term follows the metric; the cross-entropy gives every pixel a gradient
    from the first step, which makes training on few steps faster and the softmax
    better calibrated (nnU-Net trains with the same sum).

    Args:
        dice: The Dice term.
        ce_weight: Weight of the cross-entropy term (finite, >= 0; 0 gives ``dice``'s loss).

    Raises:
        ConfigError: ``ce_weight`` is negative or not finite.
    """

    def __init__(self, dice: DiceLoss, *, ce_weight: float = 1.0) -> None:
        super().__init__()
        if not (math.isfinite(ce_weight) and ce_weight >= 0):
            raise ConfigError(f"ce_weight must be finite and >= 0, got {ce_weight}")
        if not dice.from_logits:
            raise ConfigError("DiceCELoss needs a Dice term on logits (from_logits=True)")
        self.dice = dice
        self.ce_weight = float(ce_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """The loss.

        Args:
            input: Logits ``(B, C, H, W)``.
            target: Class indices ``(B, H, W)`` or one-hot ``(B, C, H, W)``.

        Returns:
            Scalar loss.

        Raises:
            ConfigError: As :class:`DiceLoss`.
        """
        loss: Tensor = self.dice(input, target)
        if self.ce_weight == 0:
            return loss
        index = target.argmax(dim=1) if target.shape == input.shape else target.long()
        ce: Tensor = F.cross_entropy(input.float(), index)
        return loss + self.ce_weight * ce
