"""Adapter for Kaggle's "BraTS2020 training data" release: one small h5 file per slice.

``volume_<V>_slice_<S>.h5`` files are found under the given folder or any sub-folder
(the release nests them in ``BraTS2020_training_data/content/data/``). Construction
lists the folder once and opens no file, so it is cheap on the 57,195-file release.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt

from brats_sdk.constants import (
    H5_FILE_PATTERN,
    H5_IMAGE_KEY,
    H5_MASK_KEY,
    IMAGE_CHANNELS,
    MASK_CHANNELS,
)
from brats_sdk.data.records import SliceRecord, VolumeInfo, VolumeRecord
from brats_sdk.errors import DataError, first_line
from brats_sdk.finite import to_float32
from brats_sdk.summarise import summarise

__all__ = ["H5SliceFolder", "read_h5_slice", "scan_h5_folder"]

logger = logging.getLogger(__name__)

_FILE_RE = re.compile(H5_FILE_PATTERN)


@dataclass(frozen=True, slots=True)
class _Listing:
    files: dict[tuple[int, int], Path]
    data_dirs: tuple[Path, ...]


def scan_h5_folder(root: Path) -> dict[tuple[int, int], Path]:
    """Map (volume, slice) -> file for every ``volume_<V>_slice_<S>.h5`` under ``root``.

    Raises:
        DataError: ``root`` is not a folder, holds no slice file, or holds one slice twice.
    """
    return _scan(root).files


def _scan(root: Path) -> _Listing:
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    files: dict[tuple[int, int], Path] = {}
    dirs: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            m = _FILE_RE.match(name)
            if m is None:
                continue
            key = (int(m.group(1)), int(m.group(2)))
            path = Path(dirpath) / name
            if key in files:
                raise DataError(f"{path}: slice {key[1]} of volume {key[0]} also at {files[key]}")
            files[key] = path
            dirs.add(Path(dirpath))
    if not files:
        raise DataError(f"{root}: no volume_<V>_slice_<S>.h5 files under this folder")
    return _Listing(files, tuple(sorted(dirs)))


def read_h5_slice(path: Path, *, require_mask: bool = True) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8] | None]:
    """Read and validate one slice file.

    Args:
        path: A ``volume_<V>_slice_<S>.h5`` file with ``image`` ``(H, W, 4)`` float and
            ``mask`` ``(H, W, 3)`` uint8 one-hot.
        require_mask: Whether a missing ``mask`` dataset is an error (else mask is None).

    Returns:
        Image ``(4, H, W)`` float32 and mask ``(3, H, W)`` uint8 (or None), channels first.

    Raises:
        DataError: Not HDF5, a dataset missing, wrong shape or dtype, NaN, or a mask that is
            not one-hot. The message names the file.
    """
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({first_line(exc)})") from exc
    with f:
        if H5_IMAGE_KEY not in f:
            raise DataError(f"{path}: no '{H5_IMAGE_KEY}' dataset (has {sorted(f.keys())})")
        image_ds = f[H5_IMAGE_KEY]
        n_img = len(IMAGE_CHANNELS)
        if not isinstance(image_ds, h5py.Dataset) or image_ds.ndim != 3 or image_ds.shape[2] != n_img:
            raise DataError(f"{path}: '{H5_IMAGE_KEY}' has shape {getattr(image_ds, 'shape', '?')}, expected (H, W, {n_img})")
        if image_ds.dtype.kind != "f":
            raise DataError(f"{path}: '{H5_IMAGE_KEY}' has dtype {image_ds.dtype}, expected a float type")
        try:
            stored = np.asarray(image_ds[()])
        except OSError as exc:
            raise DataError(f"{path}: '{H5_IMAGE_KEY}' unreadable ({first_line(exc)})") from exc
        mask: npt.NDArray[np.uint8] | None = None
        if H5_MASK_KEY in f:
            mask_ds = f[H5_MASK_KEY]
            n_mask = len(MASK_CHANNELS)
            if not isinstance(mask_ds, h5py.Dataset) or mask_ds.shape != (stored.shape[0], stored.shape[1], n_mask):
                raise DataError(
                    f"{path}: '{H5_MASK_KEY}' has shape {getattr(mask_ds, 'shape', '?')}, "
                    f"expected ({stored.shape[0]}, {stored.shape[1]}, {n_mask})"
                )
            if mask_ds.dtype != np.uint8 and mask_ds.dtype != np.bool_:
                raise DataError(f"{path}: '{H5_MASK_KEY}' has dtype {mask_ds.dtype}, expected uint8")
            try:
                raw = np.asarray(mask_ds[()])
            except OSError as exc:
                raise DataError(f"{path}: '{H5_MASK_KEY}' unreadable ({first_line(exc)})") from exc
            if raw.size and int(raw.max()) > 1:
                raise DataError(f"{path}: '{H5_MASK_KEY}' holds values other than 0 and 1")
            mask = np.ascontiguousarray(raw.astype(np.uint8).transpose(2, 0, 1))
            if int(mask.sum(axis=0).max(initial=0)) > 1:
                raise DataError(f"{path}: '{H5_MASK_KEY}' channels overlap (not one-hot)")
        elif require_mask:
            raise DataError(f"{path}: no '{H5_MASK_KEY}' dataset (has {sorted(f.keys())})")
    image, problem = to_float32(stored)
    if problem is not None:
        raise DataError(f"{path}: '{H5_IMAGE_KEY}' {problem}")
    return np.ascontiguousarray(image.transpose(2, 0, 1)), mask




class H5SliceFolder:
    """Slices and volumes of a folder in the Kaggle h5 layout.

    Satisfies both :class:`~brats_sdk.data.protocols.SliceSource` and
    :class:`~brats_sdk.data.protocols.VolumeSource`. Volumes and slices come in
    numeric order (volume 10 after volume 9).

    Args:
        root: The data folder itself or any parent of it.
        volumes: Keep only these volume numbers (unknown ones are an error).
        max_volumes: Keep only the first N volumes (after ``volumes``).
        require_mask: Whether each file must hold a ``mask`` (False for unlabelled data).

    Raises:
        DataError: No slice file under ``root``, or a requested volume is absent.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        volumes: Iterable[int] | None = None,
        max_volumes: int | None = None,
        require_mask: bool = True,
    ) -> None:
        self.root = Path(root)
        listing = _scan(self.root)
        self.require_mask = require_mask
        self.data_dirs = listing.data_dirs
        by_volume: dict[int, list[int]] = {}
        for v, s in listing.files:
            by_volume.setdefault(v, []).append(s)
        chosen = sorted(by_volume)
        if volumes is not None:
            wanted = sorted(set(volumes))
            absent = [v for v in wanted if v not in by_volume]
            if absent:
                raise DataError(f"{self.root}: volumes {summarise(absent)} not found (has {len(chosen)} volumes)")
            chosen = wanted
        if max_volumes is not None:
            chosen = chosen[: max(0, max_volumes)]
        self._files = listing.files
        self._keys: list[tuple[int, int]] = [(v, s) for v in chosen for s in sorted(by_volume[v])]
        self._infos: list[VolumeInfo] = []
        for v in chosen:
            present = sorted(by_volume[v])
            missing = tuple(sorted(set(range(present[-1] + 1)) - set(present)))
            if missing:
                logger.warning("volume %d: %d missing slice file(s): %s", v, len(missing), summarise(missing, brackets=False))
            self._infos.append(
                VolumeInfo(volume=v, name=f"volume_{v}", n_slices=len(present), missing_slices=missing, has_mask=require_mask)
            )

    # SliceSource
    def __len__(self) -> int:
        return len(self._keys)

    def slice_key(self, i: int) -> tuple[int, int]:
        return self._keys[i]

    def slice_path(self, i: int) -> Path:
        """The file of slice ``i``."""
        return self._files[self._keys[i]]

    def read_slice(self, i: int) -> SliceRecord:
        v, s = self._keys[i]
        image, mask = read_h5_slice(self._files[(v, s)], require_mask=self.require_mask)
        return SliceRecord(volume=v, index=s, image=image, mask=mask)

    # VolumeSource
    def volumes(self) -> Sequence[VolumeInfo]:
        return tuple(self._infos)

    def volume_files(self, volume: int) -> list[Path]:
        """The slice files of ``volume`` in slice order."""
        info = self._info(volume)
        return [self._files[(volume, s)] for s in range(info.n_slices + len(info.missing_slices)) if (volume, s) in self._files]

    def load_volume(self, volume: int) -> VolumeRecord:
        """Load ``volume``: slice ``s`` of the volume at index ``s``.

        Raises:
            DataError: The volume is unknown, has missing slices, or a file is bad.
        """
        info = self._info(volume)
        if info.missing_slices:
            raise DataError(
                f"{self.root}: volume {volume} is missing slice file(s) {summarise(info.missing_slices, brackets=False)}"
            )
        images: list[npt.NDArray[np.float32]] = []
        masks: list[npt.NDArray[np.uint8]] = []
        has_mask = True
        for path in self.volume_files(volume):
            image, mask = read_h5_slice(path, require_mask=self.require_mask)
            if images and image.shape != images[0].shape:
                raise DataError(f"{path}: image shape {image.shape[1:]} differs from the volume's {images[0].shape[1:]}")
            images.append(image)
            if mask is None:
                has_mask = False
            else:
                masks.append(mask)
        mask_arr = np.stack(masks) if has_mask and masks else None
        return VolumeRecord(
            info=VolumeInfo(
                volume=volume,
                name=info.name,
                n_slices=info.n_slices,
                has_mask=mask_arr is not None,
                spacing=info.spacing,
            ),
            image=np.stack(images),
            mask=mask_arr,
        )

    def _info(self, volume: int) -> VolumeInfo:
        for info in self._infos:
            if info.volume == volume:
                return info
        raise DataError(f"{self.root}: no volume {volume}")

