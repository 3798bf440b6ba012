"""Opening a data folder whatever its layout: one entry point for the CLI and pipelines."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.nifti import NiftiFolder, looks_like_nifti_folder
from brats_sdk.data.packed import PackedFolder, is_packed_folder
from brats_sdk.data.protocols import DataSource
from brats_sdk.errors import DataError
from brats_sdk.options import OptionEnum

__all__ = ["DataFormat", "open_source", "source_dirs"]


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
    # output holds a NIfTI file, so NIfTI files anywhere near the top mean NIfTI.
    return DataFormat.NIFTI if looks_like_nifti_folder(path) else DataFormat.H5


def open_source(
    path: Path | str,
    *,
    fmt: DataFormat | str = DataFormat.AUTO,
    volumes: Iterable[int] | None = None,
    max_volumes: int | None = None,
    require_mask: bool = True,
    skip_broken: bool = False,
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
            path, volumes=volumes, max_volumes=max_volumes, require_mask=require_mask, skip_broken=skip_broken
        )
    return H5SliceFolder(path, volumes=volumes, max_volumes=max_volumes, require_mask=require_mask)


def source_dirs(source: object) -> list[str]:
    """The resolved folders a source reads (its ``data_dirs``, else its ``root``).

    Stored with models and predictions so that a report can tell whether it scores the
    very data a model was trained on (volume numbers alone repeat across cohorts).
    """
    dirs = getattr(source, "data_dirs", None) or [getattr(source, "root", "")]
    return sorted({str(Path(d).resolve()) for d in dirs if str(d)})
