"""Reading the voxel values of a BraTS segmentation file as labels {0, 1, 2, 4}.

Segmentations come in whatever dtype the tool that wrote them chose: int16 and uint8 in
the BraTS releases, float32 or float64 after resampling or re-saving. Integer data is
taken as it is; float data is rounded when every value is an integer up to float
rounding (:data:`LABEL_TOLERANCE`).

Label 3 means different things in different BraTS releases (:class:`LabelConvention`):
non-enhancing tumour core in 2012-2016, nothing in 2017-2022 (the SDK's labels
{0, 1, 2, 4}), enhancing tumour from 2023. A segmentation holding 3 is refused unless
the user names the convention; guessing would silently score the wrong region.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from brats_sdk.constants import MASK_LABELS
from brats_sdk.errors import DataError
from brats_sdk.options import OptionEnum

__all__ = ["LABEL_TOLERANCE", "LabelConvention", "segmentation_labels"]

#: How far a value of a float segmentation may lie from an integer and still be read as
#: that integer. Tools that resample or re-save label maps as float32 store values such as
#: 3.9999998 for 4; a value like 1.5 is no label and stays an error.
LABEL_TOLERANCE: Final[float] = 1e-3

# Label 3: non-enhancing core (2012-2016) or enhancing tumour (2023+).
_LABEL_3: Final[int] = 3
_NCR_2020: Final[int] = MASK_LABELS[0]
_ET_2020: Final[int] = MASK_LABELS[2]


class LabelConvention(OptionEnum):
    """What label 3 of a segmentation means.

    BRATS2017: BraTS 2017-2022 (and this SDK): labels {0, 1, 2, 4}; label 3 is not used,
        and a segmentation holding it is refused (the default: the user must say).
    BRATS2012: BraTS 2012-2016: 3 is non-enhancing tumour core, which BraTS 2017 merged
        with necrosis into label 1 (NCR/NET); read as 1.
    BRATS2023: BraTS 2023 and later: 3 is enhancing tumour (label 4 before); read as 4.
    """

    BRATS2017 = "brats2017"
    BRATS2012 = "brats2012"
    BRATS2023 = "brats2023"
_ALLOWED_LABELS: Final[frozenset[int]] = frozenset((0, *MASK_LABELS))

U8 = npt.NDArray[np.uint8]


def segmentation_labels(
    path: Path, raw: npt.NDArray[np.generic], convention: LabelConvention | str = LabelConvention.BRATS2017
) -> tuple[U8, bool]:
    """A segmentation's voxel values, of any numeric dtype, as BraTS labels.

    Args:
        path: The file the values come from (named in errors).
        raw: Its voxel values, any shape, as stored (scaling applied).
        convention: What label 3 means (see :class:`LabelConvention`).

    Returns:
        uint8 labels in {0, 1, 2, 4}, same shape, and whether a label 3 was mapped.

    Raises:
        DataError: NaN or infinite values, float values further than
            :data:`LABEL_TOLERANCE` from an integer, a non-numeric dtype, labels outside
            {0, 1, 2, 4}, a 3 under the default convention, or both 3 and 4 under
            ``brats2023``. The message names the file and fits one line.
    """
    rule = LabelConvention.parse(convention)
    labels = _as_uint8(path, raw)
    present = set(np.flatnonzero(np.bincount(labels.ravel(), minlength=1)).tolist())
    mapped = False
    if _LABEL_3 in present:
        if rule is LabelConvention.BRATS2017:
            raise DataError(
                f"{path}: holds label 3, which BraTS releases disagree on (2012-2016: non-enhancing core; "
                "2023+: enhancing tumour; 2017-2022: unused); name the convention with "
                "--label-convention brats2012 or brats2023 (to train on it: brats convert or pack with it first)"
            )
        if rule is LabelConvention.BRATS2023 and _ET_2020 in present:
            raise DataError(f"{path}: holds both labels 3 and 4; under brats2023 both would be enhancing tumour")
        target = _ET_2020 if rule is LabelConvention.BRATS2023 else _NCR_2020
        labels[labels == _LABEL_3] = target
        present = (present - {_LABEL_3}) | {target}
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
