"""Whether two NIfTI files of one case lie on the same voxel grid in the scanner's space.

The four modalities and the segmentation of a case are read voxel for voxel together,
which is right only when their affines agree: the same orientation, voxel size, origin
and axis directions. Files written by different tools differ in float rounding of the
affine, so agreement is within a tolerance.
"""

from __future__ import annotations

from typing import Final

import nibabel as nib
import numpy as np
import numpy.typing as npt

__all__ = ["AFFINE_ATOL_MM", "AFFINE_RTOL", "grid_difference"]

#: Absolute tolerance of affine entries (mm, or mm per voxel).
AFFINE_ATOL_MM: Final[float] = 1e-3
#: Relative tolerance of affine entries.
AFFINE_RTOL: Final[float] = 1e-4

F64 = npt.NDArray[np.float64]


def grid_difference(affine: npt.ArrayLike, reference: npt.ArrayLike) -> tuple[str, str, str] | None:
    """How ``affine`` differs from ``reference`` beyond the tolerances, or None.

    Args:
        affine: ``(4, 4)`` voxel -> world (mm) matrix of one file.
        reference: The same of the file it must match.

    Returns:
        None when every entry agrees within :data:`AFFINE_ATOL_MM` +
        :data:`AFFINE_RTOL` x the reference entry; else ``(what, this file's value, the
        reference's value)``, the first of orientation, voxel size, origin and axis
        directions that differs, e.g. ``("voxel size", "(1, 1, 2) mm", "(1, 1, 1) mm")``.
    """
    a, r = np.asarray(affine, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if np.allclose(a, r, atol=AFFINE_ATOL_MM, rtol=AFFINE_RTOL):
        return None
    codes_a, codes_r = _codes(a), _codes(r)
    if codes_a != codes_r:
        return "orientation", codes_a, codes_r
    zooms_a, zooms_r = np.linalg.norm(a[:3, :3], axis=0), np.linalg.norm(r[:3, :3], axis=0)
    if not np.allclose(zooms_a, zooms_r, atol=AFFINE_ATOL_MM, rtol=AFFINE_RTOL):
        return "voxel size", f"{_vec(zooms_a)} mm", f"{_vec(zooms_r)} mm"
    if not np.allclose(a[:3, 3], r[:3, 3], atol=AFFINE_ATOL_MM, rtol=AFFINE_RTOL):
        return "origin", f"{_vec(a[:3, 3])} mm", f"{_vec(r[:3, 3])} mm"
    return "axis directions", _vec(a[:3, :3].ravel()), _vec(r[:3, :3].ravel())


def _codes(affine: F64) -> str:
    codes: tuple[str | None, ...] = nib.aff2axcodes(affine)  # type: ignore[no-untyped-call]  # unannotated in nibabel
    return "".join(map(str, codes))


def _vec(values: F64) -> str:
    return "(" + ", ".join(f"{float(v):g}" for v in values) + ")"
