# nibabel ships py.typed but leaves the image and header methods used here unannotated.
# mypy: disable-error-code="no-untyped-call"
"""Writing label maps as NIfTI files that open aligned over the input scan.

:func:`write_label_nifti` is the inverse of the slicing of
:class:`~brats_sdk.data.nifti.NiftiFolder`: axis 0 of the SDK's ``(D, H, W)`` goes
back to the file's axial axis and the voxel grid, affine and header are the input's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import nibabel as nib
import numpy as np
import numpy.typing as npt

from brats_sdk.atomic import atomic_path
from brats_sdk.constants import MASK_LABELS, VOXEL_SPACING_MM
from brats_sdk.data.nifti import NIFTI_SUFFIXES, NiftiReference
from brats_sdk.errors import ConfigError, DataError

__all__ = ["LABEL_INTENT", "default_affine", "write_label_nifti"]

logger = logging.getLogger(__name__)

#: NIfTI intent written on label maps (NIFTI_INTENT_LABEL): viewers show them as labels.
LABEL_INTENT: Final[str] = "label"
_ALLOWED = frozenset((0, *MASK_LABELS))


def default_affine(
    shape: Sequence[int], spacing: Sequence[float] = VOXEL_SPACING_MM
) -> npt.NDArray[np.float64]:
    """The affine BraTS files carry (LPS, as in the 2020 and 2023 releases), for a label map without a reference.

    The file holds the label map with the SDK's slice axis last, ``data[:, :, k] =
    labels[k]``, the layout of the BraTS NIfTI release from which the Kaggle h5
    slices were cut, and the affine is BraTS's ``diag(-row, -col, slice)`` with the
    column axis offset by ``(W - 1) * col`` (for 240x240x155 at 1 mm: ``[[-1, 0, 0, 0],
    [0, -1, 0, 239], [0, 0, 1, 0]]``). A prediction from h5 slices therefore lands on
    the voxel grid of the BraTS 2020 NIfTI file it came from.

    Args:
        shape: ``(D, H, W)`` of the label map in SDK order.
        spacing: Voxel size in mm as (slice, row, column).

    Returns:
        ``(4, 4)`` float64 affine for a file of shape ``(H, W, D)``.
    """
    sd, sh, sw = (float(x) for x in spacing)
    affine = np.diag([-sh, -sw, sd, 1.0])
    affine[1, 3] = (int(shape[2]) - 1) * sw
    return affine


def write_label_nifti(
    path: Path,
    labels: npt.NDArray[np.integer],
    *,
    reference: NiftiReference | None,
    spacing: Sequence[float] = VOXEL_SPACING_MM,
) -> None:
    """Write a BraTS label map as a uint8 NIfTI file, atomically.

    Args:
        path: Output file; must end in ``.nii.gz`` (compressed) or ``.nii``.
        labels: ``(D, H, W)`` BraTS labels {0, 1, 2, 4}, slice axis first (as the SDK
            predicts them; :func:`~brats_sdk.labels.classes_to_labels` converts class
            indices).
        reference: The input's geometry (:meth:`NiftiFolder.reference_image
            <brats_sdk.data.nifti.NiftiFolder.reference_image>`). When given, the file
            gets the input's voxel grid, affine and header (data type uint8, no
            intensity scaling, intent ``label``, display range 0..4). When None, the
            file holds ``labels`` with the slice axis last and :func:`default_affine`.
        spacing: Voxel size in mm as (slice, row, column); used only without a reference.

    Raises:
        ConfigError: ``path`` does not end in ``.nii.gz`` or ``.nii``.
        DataError: ``labels`` is not 3D, holds values outside {0, 1, 2, 4}, does not fit
            the reference's shape, or the file cannot be written.
    """
    path = Path(path)
    suffix = next((s for s in NIFTI_SUFFIXES if path.name.lower().endswith(s)), None)
    if suffix is None or len(path.name) == len(suffix):
        raise ConfigError(f"{path}: output name must end in .nii.gz or .nii")
    arr = np.asarray(labels)
    if arr.ndim != 3:
        raise DataError(f"{path}: label map has shape {arr.shape}, expected (D, H, W)")
    if arr.dtype.kind not in "iub":
        raise DataError(f"{path}: label map has dtype {arr.dtype}, expected integers")
    lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
    present = (
        {lo, hi}
        if lo < 0 or hi > 255
        else set(np.flatnonzero(np.bincount(arr.astype(np.uint8).ravel())).tolist())
    )
    bad = sorted(present - _ALLOWED)
    if bad:
        raise DataError(f"{path}: labels {bad} are not BraTS labels {sorted(_ALLOWED)}")
    lab = arr.astype(np.uint8)

    if reference is None:
        data = np.moveaxis(lab, 0, 2)
        img: nib.Nifti1Image = nib.Nifti1Image(
            np.ascontiguousarray(data), default_affine(lab.shape, spacing)
        )
        header = img.header
        header.set_xyzt_units("mm")
        sd, sh, sw = (float(x) for x in spacing)
        header.set_zooms((sh, sw, sd))
    else:
        if tuple(lab.shape) != reference.volume_shape:
            raise DataError(
                f"{path}: label map has shape {tuple(lab.shape)}, the reference volume {reference.volume_shape} "
                f"(file shape {reference.shape})"
            )
        data = np.moveaxis(lab, 0, reference.axial_axis)
        header = reference.header.copy()
        cls = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
        img = cls(np.ascontiguousarray(data), reference.affine, header=header)
        header = img.header
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1.0, 0.0)
    header.set_intent(LABEL_INTENT)
    header["cal_min"] = 0
    header["cal_max"] = max(_ALLOWED)
    header["descrip"] = b"brats_sdk labels {0,1,2,4}"
    _save_atomic(img, path, suffix)
    logger.debug("wrote %s %s to %s", data.shape, data.dtype, path)


def _save_atomic(img: nib.Nifti1Image, path: Path, suffix: str) -> None:
    """Save through a temporary file with the same suffix (nibabel compresses by suffix)."""
    try:
        with atomic_path(path, suffix=suffix) as tmp:
            nib.save(img, tmp)
    except OSError as exc:
        raise DataError(f"{path}: cannot write ({exc.strerror or exc})") from exc
