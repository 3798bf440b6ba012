"""Models of brats_sdk: the U-Net segmenter, the survival classifier and the Dice loss."""

from brats_sdk.models.losses import DiceLoss, dice_per_class
from brats_sdk.models.pretrained import ENCODER_WEIGHTS_CHOICES, check_encoder_weights
from brats_sdk.models.segmenter import HeadKind, Segmenter, SegmenterConfig, config_to_dict
from brats_sdk.models.survival import (
    AgeScaler,
    SurvivalClassifier,
    SurvivalConfig,
    prepare_age,
    prepare_masks,
)

__all__ = [
    "ENCODER_WEIGHTS_CHOICES",
    "AgeScaler",
    "DiceLoss",
    "HeadKind",
    "Segmenter",
    "SegmenterConfig",
    "SurvivalClassifier",
    "SurvivalConfig",
    "check_encoder_weights",
    "config_to_dict",
    "dice_per_class",
    "prepare_age",
    "prepare_masks",
]
