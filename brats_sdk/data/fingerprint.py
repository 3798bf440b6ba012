"""A small summary of a volume's images that tells one cohort's volume from another's.

Predictions record, per volume, the shape and this fingerprint of the images they were
made from; a report checks the ground truth's images against it, because volume numbers
and shapes alone repeat across cohorts (every Kaggle volume is 155 x 240 x 240). The
summary survives a lossless change of layout (NIfTI -> h5 -> packed float32 read back
the same values) and, within :data:`FINGERPRINT_RTOL`, float16 packing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["FINGERPRINT_RTOL", "fingerprints_match", "image_fingerprint"]

#: Relative tolerance of a fingerprint entry (of the channel's spread for means).
FINGERPRINT_RTOL: Final[float] = 2e-3


def image_fingerprint(image: npt.NDArray[np.floating]) -> list[float]:
    """Per channel: share of non-zero voxels, mean and standard deviation (float64).

    Computed on every second voxel along each spatial axis (an eighth of the volume, the
    same voxels whatever layout the volume came from), which keeps it to about a tenth
    of a second on a 155 x 240 x 240 case.

    Args:
        image: ``(D, C, H, W)`` raw intensities, as a source's ``load_volume`` gives them.

    Returns:
        ``3 * C`` numbers: ``[nonzero_0, mean_0, std_0, nonzero_1, ...]``.
    """
    arr = np.asarray(image)
    n_channels = arr.shape[1]
    sub = np.ascontiguousarray(arr[::2, :, ::2, ::2]).transpose(1, 0, 2, 3).reshape(n_channels, -1)
    if sub.shape[1] == 0:
        return [0.0] * (3 * n_channels)
    nonzero = np.count_nonzero(sub, axis=1) / sub.shape[1]
    # float64 accumulators without a float64 copy of the volume.
    mean, std = sub.mean(axis=1, dtype=np.float64), sub.std(axis=1, dtype=np.float64)
    return [float(x) for c in range(n_channels) for x in (nonzero[c], mean[c], std[c])]


def fingerprints_match(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two :func:`image_fingerprint` results describe the same images.

    Shares of non-zero voxels agree within :data:`FINGERPRINT_RTOL`; means and standard
    deviations within :data:`FINGERPRINT_RTOL` times the channel's standard deviation
    (plus a hair for constant channels).
    """
    if len(a) != len(b) or len(a) % 3:
        return False
    for k in range(0, len(a), 3):
        nz_a, mean_a, std_a = a[k : k + 3]
        nz_b, mean_b, std_b = b[k : k + 3]
        spread = max(std_a, std_b, 1e-12)
        tol = FINGERPRINT_RTOL * spread + 1e-9
        if abs(nz_a - nz_b) > FINGERPRINT_RTOL or abs(mean_a - mean_b) > tol or abs(std_a - std_b) > tol:
            return False
    return True
