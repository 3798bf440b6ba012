"""Opening a data folder whatever its layout: one entry point for the CLI and pipelines."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from brats_sdk.data.folder_census import folder_census
from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.nifti import NiftiFolder, looks_like_nifti_folder
from brats_sdk.data.nifti_labels import LabelConvention
from brats_sdk.data.packed import PackedFolder, is_packed_folder
from brats_sdk.data.protocols import DataSource
from brats_sdk.errors import DataError
from brats_sdk.options import OptionEnum
from brats_sdk.summarise import summarise

__all__ = ["DataFormat", "open_source", "source_dirs"]

logger = logging.getLogger(__name__)


class DataFormat(OptionEnum):
    """Layouts the SDK reads.

    AUTO: decide from what the folder holds.
    H5: Kaggle's one-h5-per-slice release (or ``brats convert`` output).
    NIFTI: the original BraTS release, a folder of case folders of NIfTI files.
    PACKED: ``brats pack`` output, one chunked h5 file per volume.
    """

    AUTO = "auto"
    H5 = "h5"
    NIFTI = "nifti"
    PACKED = "packed"


def detect_format(path: Path) -> DataFormat:
    """The layout of ``path``.

    Raises:
        DataError: The folder holds no known layout.
    """
    if not path.is_dir():
        raise DataError(f"{path}: not a folder")
    if is_packed_folder(path):
        return DataFormat.PACKED
    # Only folder listings are read; neither the Kaggle release nor `brats convert`
    # output holds a NIfTI file. When a folder holds both kinds, what most of it holds
    # decides, and what is left out is named.
    if not looks_like_nifti_folder(path):
        return DataFormat.H5
    census = folder_census(path)
    if len(census.slice_files) > len(census.nifti_files):
        logger.warning(
            "%s: read as h5 slices (%d slice files); ignoring %d NIfTI file(s): %s",
            path, len(census.slice_files), len(census.nifti_files), summarise(str(p) for p in census.nifti_files),
        )
        return DataFormat.H5
    if census.slice_files:
        logger.warning(
            "%s: read as NIfTI cases (%d NIfTI files); ignoring %d h5 slice file(s): %s",
            path, len(census.nifti_files), len(census.slice_files), summarise(str(p) for p in census.slice_files),
        )
    return DataFormat.NIFTI


def open_source(
    path: Path | str,
    *,
    fmt: DataFormat | str = DataFormat.AUTO,
    volumes: Iterable[int] | None = None,
    max_volumes: int | None = None,
    require_mask: bool = True,
    skip_broken: bool = False,
    label_convention: LabelConvention | str = LabelConvention.BRATS2017,
) -> DataSource:
    """Open ``path`` as a data source.

    Args:
        path: A data folder (or a parent of one).
        fmt: Its layout, or AUTO to detect it.
        volumes: Keep only these volumes.
        max_volumes: Keep only the first N volumes.
        require_mask: Whether ground-truth masks must be present.
        skip_broken: For batch jobs: volumes that cannot even be listed (a NIfTI case
            missing a modality, a truncated packed file) are left out of ``volumes()``
            and reported by :func:`~brats_sdk.data.broken.broken_volumes` instead of
            raising. (An h5 folder lists volumes by file name; its bad slices show when
            the volume is read.)
        label_convention: What a label 3 in a NIfTI segmentation means (other layouts
            store labels already read).

    Raises:
        DataError: Unknown layout or unreadable folder.
    """
    path = Path(path)
    kind = DataFormat.parse(fmt)
    if kind is DataFormat.AUTO:
        kind = detect_format(path)
    if kind is DataFormat.PACKED:
        return PackedFolder(
            path, volumes=volumes, max_volumes=max_volumes, require_mask=require_mask, skip_broken=skip_broken
        )
    if kind is DataFormat.NIFTI:
        return NiftiFolder(
            path,
            volumes=volumes,
            max_volumes=max_volumes,
            require_mask=require_mask,
            skip_broken=skip_broken,
            label_convention=label_convention,
        )
    return H5SliceFolder(path, volumes=volumes, max_volumes=max_volumes, require_mask=require_mask)


def source_dirs(source: object) -> list[str]:
    """The resolved folders a source reads (its ``data_dirs``, else its ``root``).

    Stored with models and predictions so that a report can tell whether it scores the
    very data a model was trained on (volume numbers alone repeat across cohorts).
    """
    dirs = getattr(source, "data_dirs", None) or [getattr(source, "root", "")]
    return sorted({str(Path(d).resolve()) for d in dirs if str(d)})
