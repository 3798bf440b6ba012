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
from dataclasses import dataclass
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
from brats_sdk.data.broken import BrokenVolume, broken_volumes
from brats_sdk.data.convert_state import (
    PENDING_MARKER,
    VOLUME_MAP_CSV,
    finished_cases,
    journal_case,
    start_journal,
)
from brats_sdk.data.nifti import NiftiFolder
from brats_sdk.data.nifti_labels import LabelConvention
from brats_sdk.errors import DataError, first_line

__all__ = ["CONVERSION_JSON", "VOLUME_MAP_CSV", "ConvertResult", "convert_folder", "convert_nifti_to_h5"]

logger = logging.getLogger(__name__)

#: What a conversion read (the source folder, the label convention), beside ``meta_data.csv``.
CONVERSION_JSON: Final[str] = "conversion.json"
_META_HEADER: Final[tuple[str, ...]] = ("slice_path", "target", "volume", "slice")
_H5_RE = re.compile(H5_FILE_PATTERN)
_GZIP_LEVEL: Final[int] = 1


@dataclass(frozen=True, slots=True)
class ConvertResult:
    """Outcome of :func:`convert_folder`.

    Attributes:
        data_dir: The h5 data folder written.
        converted: Volumes written by this run.
        kept: Volumes an earlier run into the folder had finished, left as they were.
        failed: Volumes that could not be converted (their reason names the file); none
            of them has a slice file in ``data_dir``.
        slices: Slice files the folder holds for ``converted`` and ``kept``.
    """

    data_dir: Path
    converted: tuple[int, ...]
    kept: tuple[int, ...]
    failed: tuple[BrokenVolume, ...]
    slices: int

    @property
    def ok(self) -> bool:
        """Whether every volume asked for is in the folder."""
        return not self.failed


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
    """:func:`convert_folder`, raising when a case failed (after converting the others).

    Returns:
        The data folder, ``out_dir/BraTS2020_training_data/content/data``.

    Raises:
        DataError: As :func:`convert_folder`, or a case is malformed (the first one's reason).
    """
    result = convert_folder(
        src,
        out_dir,
        progress=progress,
        volumes=volumes,
        compress=compress,
        overwrite=overwrite,
        label_convention=label_convention,
    )
    if result.failed:
        raise DataError(result.failed[0].reason)
    return result.data_dir


def convert_folder(
    src: Path,
    out_dir: Path,
    *,
    progress: Callable[[int], None] | None = None,
    volumes: Iterable[int] | None = None,
    compress: bool = True,
    overwrite: bool = False,
    label_convention: LabelConvention | str = LabelConvention.BRATS2017,
) -> ConvertResult:
    """Write the cases of a NIfTI folder in the Kaggle h5 layout (see the module docstring).

    Atomic per case: a case that fails (a modality missing, a 4-D image, bad labels)
    leaves no slice file behind and the others are converted; ``meta_data.csv`` and
    ``volume_map.csv`` list what the folder holds. Each file is written to a temporary
    name and moved into place; one case is in memory at a time. Into a folder an earlier
    conversion of the same cases wrote (even one that was killed or failed cases), a
    rerun keeps the cases it finished and converts the rest.

    Args:
        src: A folder of case folders, or one case folder (as for
            :class:`~brats_sdk.data.nifti.NiftiFolder`).
        out_dir: Where ``BraTS2020_training_data/content/data`` is created.
        progress: Called with 1 after each slice written, and with a case's slice count
            when the case is kept from an earlier run.
        volumes: Convert only these volume numbers (1..N in case-name order).
        compress: gzip-compress the h5 datasets.
        overwrite: Allow a data folder that already holds other slice files and convert
            every case again; slice files not written by this conversion are then
            deleted, so that the folder holds exactly this conversion.
        label_convention: What a label 3 in the segmentations means (refused by
            default); recorded in ``conversion.json`` beside ``meta_data.csv``.

    Returns:
        What was converted, kept and failed.

    Raises:
        DataError: The data folder holds slice files of something else and ``overwrite``
            is False, or a file cannot be written.
    """
    source = NiftiFolder(
        src, volumes=volumes, require_mask=False, skip_broken=True, label_convention=label_convention
    )
    data_dir = Path(out_dir).joinpath(*KAGGLE_DATA_SUBDIR)
    infos = list(source.volumes())
    existing = _existing_slices(data_dir)
    done: dict[int, list[tuple[str, int, int, int]]] = {}
    if existing and not overwrite:
        names = {i.volume: i.name for i in infos}
        done = finished_cases(data_dir, names, {i.volume: i.n_slices for i in infos})
        ours = (data_dir / VOLUME_MAP_CSV).is_file() or (data_dir / PENDING_MARKER).is_file()
        if not ours or any(_slice_volume(p) not in names for p in existing):
            raise DataError(
                f"{data_dir}: already holds {len(existing)} slice files; use an empty folder or overwrite"
            )
    start = time.perf_counter()
    meta: list[tuple[str, int, int, int]] = []
    names_out: list[tuple[int, str]] = []
    written: set[str] = set()
    converted: list[int] = []
    failed = list(broken_volumes(source))
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        start_journal(data_dir, source.root, fresh=overwrite)
        for info in infos:
            if info.volume in done:
                rows = done[info.volume]
            else:
                try:
                    rows = _convert_case(source, info.volume, data_dir, compress=compress, progress=progress)
                except DataError as exc:
                    logger.warning("%s (volume %d) not converted: %s", info.name, info.volume, first_line(exc))
                    failed.append(BrokenVolume(info.volume, info.name, first_line(exc)))
                    continue
                journal_case(data_dir, info.volume, info.name, (r[1] for r in rows))
                converted.append(info.volume)
            if info.volume in done and progress is not None:
                progress(len(rows))
            names_out.append((info.volume, info.name))
            meta.extend(rows)
            written.update(Path(r[0]).name for r in rows)
        atomic_write_text(data_dir / META_CSV, _csv(_META_HEADER, meta))
        atomic_write_text(data_dir / VOLUME_MAP_CSV, _csv(("volume", "patient_id"), names_out))
        record = {"source": str(source.root), "label_convention": source.label_convention.value}
        atomic_write_text(data_dir / CONVERSION_JSON, json.dumps(record, indent=1) + "\n")
        copied = _copy_tables(source, data_dir)
        stale = [p for p in _existing_slices(data_dir) if p.name not in written]
        for p in stale:
            p.unlink(missing_ok=True)
        (data_dir / PENDING_MARKER).unlink(missing_ok=True)
    except OSError as exc:
        raise DataError(f"cannot write h5 slices to {data_dir}: {exc}") from exc
    logger.info(
        "converted %d cases (%d slices) from %s to %s in %.1f s%s%s%s",
        len(converted),
        len(meta),
        source.root,
        data_dir,
        time.perf_counter() - start,
        f"; kept {len(done)} converted before" if done else "",
        f"; copied {', '.join(copied)}" if copied else "",
        f"; removed {len(stale)} stale slice files" if stale else "",
    )
    return ConvertResult(
        data_dir=data_dir,
        converted=tuple(converted),
        kept=tuple(sorted(done)),
        failed=tuple(sorted(failed, key=lambda b: b.volume)),
        slices=len(meta),
    )


def _convert_case(
    source: NiftiFolder, volume: int, data_dir: Path, *, compress: bool, progress: Callable[[int], None] | None
) -> list[tuple[str, int, int, int]]:
    """Write one case's slice files and return their ``meta_data.csv`` rows; on any error
    remove the files written so far (the case is all there or not at all)."""
    paths: list[Path] = []
    try:
        rec = source.load_volume(volume)
        rows: list[tuple[str, int, int, int]] = []
        for s in range(rec.image.shape[0]):
            name = f"volume_{volume}_slice_{s}.h5"
            image = np.ascontiguousarray(rec.image[s].transpose(1, 2, 0))
            mask = None if rec.mask is None else np.ascontiguousarray(rec.mask[s].transpose(1, 2, 0))
            paths.append(data_dir / name)
            _write_slice(data_dir / name, image, mask, compress=compress)
            rows.append((f"/content/data/{name}", int(mask is not None and bool(mask.any())), volume, s))
            if progress is not None:
                progress(1)
    except BaseException:
        for p in paths:
            p.unlink(missing_ok=True)
        raise
    logger.debug("%s -> volume %d: %d slices", source.case_name(volume), volume, len(rows))
    return rows


def _slice_volume(path: Path) -> int:
    m = _H5_RE.match(path.name)
    return int(m.group(1)) if m else -1


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
