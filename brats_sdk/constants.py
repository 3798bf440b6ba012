"""Named constants of the BraTS 2020 data, kept in one place.

Where a fact is uncertain (see the channel-order note) it lives here so that one
edit changes it everywhere, and the public API lets users override it.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BIN_LABELS_3",
    "BRATS_SURVIVAL_CUTOFFS_DAYS",
    "DEFAULT_PATIENT_ID_FORMAT",
    "DEVICE_CHOICES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_CHANNELS",
    "KAGGLE_DATA_SUBDIR",
    "MASK_CHANNELS",
    "MASK_LABELS",
    "META_CSV",
    "NAME_MAPPING_CSV",
    "N_CLASSES",
    "REGIONS",
    "SLICES_PER_VOLUME",
    "SLICE_SIZE",
    "SURVIVAL_CSV",
    "SURVIVAL_INPUT_SIZE",
    "VOXEL_SPACING_MM",
]

# Image channel order of the Kaggle h5 release. Two independent measurements on the
# real files point to [FLAIR, T1, T1ce, T2]; other sources claim [T1, T1ce, T2, FLAIR].
# Every adapter yields images in this order, so the NIfTI adapter follows it too.
IMAGE_CHANNELS: Final[tuple[str, ...]] = ("flair", "t1", "t1ce", "t2")

# Mask channel order of the Kaggle h5 release and the BraTS label each channel holds.
MASK_CHANNELS: Final[tuple[str, ...]] = ("NCR", "ED", "ET")
MASK_LABELS: Final[tuple[int, ...]] = (1, 2, 4)
# Class indices used by the segmenter: 0 background, then MASK_CHANNELS in order.
N_CLASSES: Final[int] = 1 + len(MASK_CHANNELS)

# BraTS evaluation regions, as sets of BraTS labels.
REGIONS: Final[dict[str, tuple[int, ...]]] = {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}

# HD95 given to a region that is empty in exactly one of truth and prediction
# (nnU-Net's BraTS scorer: the diagonal of the 240x240x155 1 mm box).
HD95_EMPTY_PENALTY: Final[float] = 373.13

# Geometry of the release.
SLICE_SIZE: Final[int] = 240
SLICES_PER_VOLUME: Final[int] = 155
VOXEL_SPACING_MM: Final[tuple[float, float, float]] = (1.0, 1.0, 1.0)

# Kaggle layout.
H5_FILE_PATTERN: Final[str] = r"^volume_(\d+)_slice_(\d+)\.h5$"
H5_IMAGE_KEY: Final[str] = "image"
H5_MASK_KEY: Final[str] = "mask"
KAGGLE_DATA_SUBDIR: Final[tuple[str, ...]] = ("BraTS2020_training_data", "content", "data")
META_CSV: Final[str] = "meta_data.csv"
SURVIVAL_CSV: Final[str] = "survival_info.csv"
NAME_MAPPING_CSV: Final[str] = "name_mapping.csv"

# Volume V -> patient id: what everyone assumes, not confirmed; users can override it.
DEFAULT_PATIENT_ID_FORMAT: Final[str] = "BraTS20_Training_{volume:03d}"

# BraTS challenge survival cut-offs in days (short < 10 months, long > 15 months).
BRATS_SURVIVAL_CUTOFFS_DAYS: Final[tuple[float, float]] = (304.2, 456.25)
BIN_LABELS_3: Final[tuple[str, str, str]] = ("short", "mid", "long")

# Survival-network input.
SURVIVAL_INPUT_SIZE: Final[int] = 224
IMAGENET_MEAN: Final[tuple[float, float, float]] = (0.485, 0.456, 0.406)
IMAGENET_STD: Final[tuple[float, float, float]] = (0.229, 0.224, 0.225)

# The device requests every command accepts (resolved by brats_sdk.device.resolve_device);
# here, beside the other constants, so that option parsing needs no torch.
DEVICE_CHOICES: Final[str] = "auto|cpu|cuda|cuda:N|mps"
