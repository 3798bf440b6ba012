# nibabel ships py.typed but leaves the image and header methods used here unannotated.
# mypy: disable-error-code="no-untyped-call"
"""Writing per-voxel maps (uncertainty, class probabilities) as NIfTI files aligned with the input.

The geometry is that of :func:`~brats_sdk.data.nifti_out.write_label_nifti`: the SDK's
slice axis goes back to the file's axial axis, with the input's affine and header, or
the BraTS layout and :func:`~brats_sdk.data.nifti_out.default_affine` without a reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt

from brats_sdk.constants import VOXEL_SPACING_MM
from brats_sdk.data.nifti import NiftiReference
from brats_sdk.data.nifti_out import _save_atomic, default_affine
from brats_sdk.errors import ConfigError, DataError

__all__ = ["write_map_nifti"]


def write_map_nifti(
    path: Path,
    data: npt.NDArray[np.uint8] | npt.NDArray[np.float32],
    *,
    reference: NiftiReference | None,
    spacing: Sequence[float] = VOXEL_SPACING_MM,
    description: str = "",
) -> None:
    """Write a 3D map ``(D, H, W)`` or a 4D stack of maps ``(D, C, H, W)`` atomically.

    Args:
        path: Output file ending in ``.nii.gz`` or ``.nii``.
        data: uint8 or float32 values; a 4D stack is stored with its channels as the
            file's 4th axis.
        reference: The input's geometry (affine, header, axis order), or None.
        spacing: Voxel size in mm as (slice, row, column); used only without a reference.
        description: The header's ``descrip`` (at most 80 characters).

    Raises:
        ConfigError: ``path`` does not end in ``.nii.gz`` or ``.nii``.
        DataError: ``data`` is not 3D or 4D, or does not fit the reference.
    """
    path = Path(path)
    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii" if path.name.lower().endswith(".nii") else None
    if suffix is None:
        raise ConfigError(f"{path}: output name must end in .nii.gz or .nii")
    arr = np.asarray(data)
    if arr.ndim not in (3, 4):
        raise DataError(f"{path}: map has shape {arr.shape}, expected (D, H, W) or (D, C, H, W)")
    maps = arr[:, None] if arr.ndim == 3 else arr  # (D, C, H, W)
    volume_shape = (maps.shape[0], maps.shape[2], maps.shape[3])
    if reference is None:
        moved = np.moveaxis(maps, (0, 1), (2, 3))  # (H, W, D, C)
        img = nib.Nifti1Image(np.ascontiguousarray(moved if arr.ndim == 4 else moved[..., 0]), default_affine(volume_shape, spacing))
        img.header.set_xyzt_units("mm")
        sd, sh, sw = (float(x) for x in spacing)
        img.header.set_zooms((sh, sw, sd, 1.0)[: arr.ndim])
    else:
        if volume_shape != reference.volume_shape:
            raise DataError(f"{path}: map has volume shape {volume_shape}, the reference {reference.volume_shape}")
        file_axes = [k for k in range(3) if k != reference.axial_axis]
        # (D, C, H, W) -> file axes: D to the axial axis, H and W to the others, C last.
        moved = np.moveaxis(maps, (0, 2, 3, 1), (reference.axial_axis, file_axes[0], file_axes[1], 3))
        header = reference.header.copy()
        cls = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
        img = cls(np.ascontiguousarray(moved if arr.ndim == 4 else moved[..., 0]), reference.affine, header=header)
    img.header.set_data_dtype(arr.dtype)
    img.header.set_slope_inter(1.0, 0.0)
    img.header.set_intent("none")
    # The reference's display range is that of its intensities: maps get their own.
    img.header["cal_min"] = 0
    img.header["cal_max"] = 100 if arr.dtype == np.uint8 else 1
    img.header["descrip"] = description.encode()[:80]
    _save_atomic(img, path, suffix)
