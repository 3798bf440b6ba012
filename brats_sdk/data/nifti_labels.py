"""Reading the voxel values of a BraTS segmentation file as labels {0, 1, 2, 4}.

Segmentations come in whatever dtype the tool that wrote them chose: int16 and uint8 in
the BraTS releases, float32 or float64 after resampling or re-saving. Integer data is
taken as it is; float data is rounded when every value is an integer up to float
rounding (:data:`LABEL_TOLERANCE`). BraTS 2023 labels enhancing tumour 3 instead of 4:
a segmentation with 3 and no 4 is read with 3 mapped to 4.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from brats_sdk.constants import MASK_LABELS
from brats_sdk.errors import DataError

__all__ = ["LABEL_TOLERANCE", "segmentation_labels"]

#: How far a value of a float segmentation may lie from an integer and still be read as
#: that integer. Tools that resample or re-save label maps as float32 store values such as
#: 3.9999998 for 4; a value like 1.5 is no label and stays an error.
LABEL_TOLERANCE: Final[float] = 1e-3

# BraTS 2023 label of enhancing tumour, read as the BraTS 2020 label 4.
_ET_2023: Final[int] = 3
_ET_2020: Final[int] = MASK_LABELS[2]
_ALLOWED_LABELS: Final[frozenset[int]] = frozenset((0, *MASK_LABELS))

U8 = npt.NDArray[np.uint8]


def segmentation_labels(path: Path, raw: npt.NDArray[np.generic]) -> tuple[U8, bool]:
    """A segmentation's voxel values, of any numeric dtype, as BraTS labels.

    Args:
        path: The file the values come from (named in errors).
        raw: Its voxel values, any shape, as stored (scaling applied).

    Returns:
        uint8 labels in {0, 1, 2, 4}, same shape, and whether label 3 was read as 4.

    Raises:
        DataError: NaN or infinite values, float values further than
            :data:`LABEL_TOLERANCE` from an integer, a non-numeric dtype, labels outside
            {0, 1, 2, 4} (3 without 4 is read as 4), or both 3 and 4. The message names
            the file and fits one line.
    """
    labels = _as_uint8(path, raw)
    present = set(np.flatnonzero(np.bincount(labels.ravel(), minlength=1)).tolist())
    mapped = False
    if _ET_2023 in present:
        if _ET_2020 in present:
            raise DataError(f"{path}: holds both labels 3 and 4; cannot tell which is enhancing tumour")
        labels[labels == _ET_2023] = _ET_2020
        present = (present - {_ET_2023}) | {_ET_2020}
        mapped = True
    bad = sorted(present - _ALLOWED_LABELS)
    if bad:
        raise DataError(f"{path}: labels {bad} are not BraTS labels {sorted(_ALLOWED_LABELS)}")
    return labels, mapped


def _as_uint8(path: Path, raw: npt.NDArray[np.generic]) -> U8:
    """Integer-valued data of any numeric dtype -> uint8 (values still unchecked against BraTS labels)."""
    arr = np.asarray(raw)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise DataError(f"{path}: segmentation holds NaN or infinite values")
        rounded = np.rint(arr)
        if arr.size:
            off = np.abs(arr - rounded)
            worst = int(np.argmax(off))
            if float(off.flat[worst]) > LABEL_TOLERANCE:
                raise DataError(
                    f"{path}: segmentation holds non-integer values (e.g. {float(arr.flat[worst]):g})"
                )
        arr = rounded
    elif arr.dtype.kind not in "iub":
        raise DataError(f"{path}: segmentation has dtype {arr.dtype}, expected integers")
    lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
    if lo < 0 or hi > 255:
        bad = sorted({lo, hi} - _ALLOWED_LABELS)
        raise DataError(f"{path}: labels {bad} are not BraTS labels {sorted(_ALLOWED_LABELS)}")
    labels: U8 = arr.astype(np.uint8)
    return labels
