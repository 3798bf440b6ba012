"""Converting a BraTS NIfTI folder to the Kaggle h5 layout, so every h5 reader works on it.

Written under ``out_dir/BraTS2020_training_data/content/data/``:

* ``volume_<V>_slice_<S>.h5`` for every slice of every case: dataset ``image``
  ``(H, W, 4)`` float32 in :data:`~brats_sdk.constants.IMAGE_CHANNELS` order, raw
  intensities as in the NIfTI files (the release stores float64, normalised; the SDK
  normalises its input itself, and float32 halves the size), and dataset ``mask``
  ``(H, W, 3)`` uint8 one-hot in :data:`~brats_sdk.constants.MASK_CHANNELS` order.
  A case without a segmentation gets no ``mask`` dataset (read it with
  ``require_mask=False``). Slices are cut as :class:`~brats_sdk.data.nifti.NiftiFolder`
  cuts them (axial axis of the file, ``image[..., c] = data[:, :, S]`` for BraTS files).
  Datasets are gzip-compressed (level 1, one chunk per dataset) unless
  ``compress=False``: about 10x smaller (17 MB instead of 170 MB for a 240x240x155
  case) for about 2.5 ms more per slice read.
* ``meta_data.csv`` (``slice_path,target,volume,slice``, ``slice_path`` as in the
  release: ``/content/data/volume_<V>_slice_<S>.h5``; ``target`` 1 when the slice holds
  tumour, 0 otherwise or without segmentation).
* ``volume_map.csv`` (``volume,patient_id``): volume number -> case folder name, for
  :meth:`PatientIdMap.from_csv <brats_sdk.data.clinical.PatientIdMap.from_csv>`.
* ``conversion.json``: the source folder and the label convention its segmentations
  were read under (:class:`~brats_sdk.data.nifti_labels.LabelConvention`).
* ``survival_info.csv`` and ``name_mapping.csv``, copied when the NIfTI folder holds
  them (the BraTS 2020 NIfTI release does, beside the case folders).

Volume numbers are those of :class:`~brats_sdk.data.nifti.NiftiFolder`: 1..N in natural
order of the case names.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

import h5py
import numpy as np
import numpy.typing as npt

from brats_sdk.atomic import atomic_path, atomic_write_text
from brats_sdk.constants import (
    H5_FILE_PATTERN,
    H5_IMAGE_KEY,
    H5_MASK_KEY,
    KAGGLE_DATA_SUBDIR,
    META_CSV,
    NAME_MAPPING_CSV,
    SURVIVAL_CSV,
)
from brats_sdk.data.nifti import NiftiFolder
from brats_sdk.data.nifti_labels import LabelConvention
from brats_sdk.errors import DataError

__all__ = ["CONVERSION_JSON", "VOLUME_MAP_CSV", "convert_nifti_to_h5"]

logger = logging.getLogger(__name__)

#: What a conversion read (the source folder, the label convention), beside ``meta_data.csv``.
CONVERSION_JSON: Final[str] = "conversion.json"
#: Volume number -> case name table written beside ``meta_data.csv``.
VOLUME_MAP_CSV: Final[str] = "volume_map.csv"
_META_HEADER: Final[tuple[str, ...]] = ("slice_path", "target", "volume", "slice")
_H5_RE = re.compile(H5_FILE_PATTERN)
_GZIP_LEVEL: Final[int] = 1


def convert_nifti_to_h5(
    src: Path,
    out_dir: Path,
    *,
    progress: Callable[[int], None] | None = None,
    volumes: Iterable[int] | None = None,
    compress: bool = True,
    overwrite: bool = False,
    label_convention: LabelConvention | str = LabelConvention.BRATS2017,
) -> Path:
    """Write the cases of a NIfTI folder in the Kaggle h5 layout (see the module docstring).

    Each file is written to a temporary name and moved into place. One case is in
    memory at a time.

    Args:
        src: A folder of case folders, or one case folder (as for
            :class:`~brats_sdk.data.nifti.NiftiFolder`).
        out_dir: Where ``BraTS2020_training_data/content/data`` is created.
        progress: Called with 1 after each slice written.
        volumes: Convert only these volume numbers (1..N in case-name order).
        compress: gzip-compress the h5 datasets.
        overwrite: Allow a data folder that already holds slice files; slice files not
            written by this conversion are then deleted, so that the folder holds exactly
            this conversion. Without it such a folder is an error.
        label_convention: What a label 3 in the segmentations means (refused by
            default); recorded in ``conversion.json`` beside ``meta_data.csv``.

    Returns:
        The data folder, ``out_dir/BraTS2020_training_data/content/data``.

    Raises:
        DataError: A case is malformed (see :meth:`NiftiFolder.load_volume
            <brats_sdk.data.nifti.NiftiFolder.load_volume>`), the data folder already
            holds slice files and ``overwrite`` is False, or a file cannot be written.
    """
    source = NiftiFolder(src, volumes=volumes, require_mask=False, label_convention=label_convention)
    data_dir = Path(out_dir).joinpath(*KAGGLE_DATA_SUBDIR)
    existing = _existing_slices(data_dir)
    if existing and not overwrite:
        raise DataError(
            f"{data_dir}: already holds {len(existing)} slice files; use an empty folder or overwrite"
        )
    start = time.perf_counter()
    meta: list[tuple[str, int, int, int]] = []
    names: list[tuple[int, str]] = []
    written: set[str] = set()
    n_tumour = 0
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        for info in source.volumes():
            rec = source.load_volume(info.volume)
            names.append((info.volume, info.name))
            for s in range(rec.image.shape[0]):
                name = f"volume_{info.volume}_slice_{s}.h5"
                image = np.ascontiguousarray(rec.image[s].transpose(1, 2, 0))
                mask = (
                    None
                    if rec.mask is None
                    else np.ascontiguousarray(rec.mask[s].transpose(1, 2, 0))
                )
                _write_slice(data_dir / name, image, mask, compress=compress)
                target = int(mask is not None and bool(mask.any()))
                n_tumour += target
                meta.append((f"/content/data/{name}", target, info.volume, s))
                written.add(name)
                if progress is not None:
                    progress(1)
            logger.debug("%s -> volume %d: %d slices", info.name, info.volume, rec.image.shape[0])
        atomic_write_text(data_dir / META_CSV, _csv(_META_HEADER, meta))
        atomic_write_text(data_dir / VOLUME_MAP_CSV, _csv(("volume", "patient_id"), names))
        record = {"source": str(source.root), "label_convention": source.label_convention.value}
        atomic_write_text(data_dir / CONVERSION_JSON, json.dumps(record, indent=1) + "\n")
        copied = _copy_tables(source, data_dir)
        stale = [p for p in existing if p.name not in written]
        for p in stale:
            p.unlink(missing_ok=True)
    except OSError as exc:
        raise DataError(f"cannot write h5 slices to {data_dir}: {exc}") from exc
    logger.info(
        "converted %d cases (%d slices, %d with tumour) from %s to %s in %.1f s%s%s",
        len(names),
        len(meta),
        n_tumour,
        source.root,
        data_dir,
        time.perf_counter() - start,
        f"; copied {', '.join(copied)}" if copied else "",
        f"; removed {len(stale)} stale slice files" if stale else "",
    )
    return data_dir


def _existing_slices(data_dir: Path) -> list[Path]:
    if not data_dir.is_dir():
        return []
    return [p for p in data_dir.iterdir() if _H5_RE.match(p.name)]


def _write_slice(
    path: Path,
    image: npt.NDArray[np.float32],
    mask: npt.NDArray[np.uint8] | None,
    *,
    compress: bool,
) -> None:
    """Write one slice file: ``image`` ``(H, W, 4)`` float32, ``mask`` ``(H, W, 3)`` uint8 or none."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as fh:
        for key, arr in ((H5_IMAGE_KEY, image), (H5_MASK_KEY, mask)):
            if arr is None:
                continue
            if compress:
                fh.create_dataset(
                    key,
                    data=arr,
                    chunks=arr.shape,
                    compression="gzip",
                    compression_opts=_GZIP_LEVEL,
                    track_times=False,
                )
            else:
                fh.create_dataset(key, data=arr, track_times=False)


def _csv(header: tuple[str, ...], rows: Iterable[tuple[object, ...]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _copy_tables(source: NiftiFolder, data_dir: Path) -> list[str]:
    """Copy ``survival_info.csv`` and ``name_mapping.csv`` found beside the case folders or in the root."""
    folders: list[Path] = [source.root]
    for info in source.volumes():
        parent = source.case_dir(info.volume).parent
        if parent not in folders:
            folders.append(parent)
    copied: list[str] = []
    for table in (SURVIVAL_CSV, NAME_MAPPING_CSV):
        found = next((f / table for f in folders if (f / table).is_file()), None)
        if found is None:
            continue
        with atomic_path(data_dir / table) as tmp:
            shutil.copyfile(found, tmp)
        copied.append(table)
    return copied
