"""Evaluation metrics: pure functions on numpy arrays (torch tensors accepted).

- :mod:`~brats_sdk.metrics.segmentation`: per-volume BraTS region scores (Dice, HD95,
  sensitivity, specificity) on WT/TC/ET.
- :mod:`~brats_sdk.metrics.channels`: the paper's pooled per-channel Dice, the pixel
  confusion matrix and a streaming accumulator.
- :mod:`~brats_sdk.metrics.survival`: survival-bin accuracy, ROC/AUC, the slice vote
  and the BraTS challenge (GTR-only) accuracy.

Every docstring states the result on empty labels.
"""

from __future__ import annotations

from brats_sdk.metrics.channels import (
    SegmentationAccumulator,
    SegmentationResult,
    channel_dice,
    dice_from_confusion,
    pixel_confusion,
)
from brats_sdk.metrics.segmentation import (
    HD95Method,
    RegionScores,
    dice,
    hd95,
    region_mask,
    score_volume,
    sensitivity,
    specificity,
    surface_distances,
)
from brats_sdk.metrics.survival import (
    SurvivalScores,
    brats_challenge_accuracy,
    majority_vote,
    survival_scores,
)

__all__ = [
    "HD95Method",
    "RegionScores",
    "SegmentationAccumulator",
    "SegmentationResult",
    "SurvivalScores",
    "brats_challenge_accuracy",
    "channel_dice",
    "dice",
    "dice_from_confusion",
    "hd95",
    "majority_vote",
    "pixel_confusion",
    "region_mask",
    "score_volume",
    "sensitivity",
    "specificity",
    "surface_distances",
    "survival_scores",
]
