"""Packed layout: one h5 file per volume, made from the Kaggle one-file-per-slice release.

Reading the Kaggle layout costs a file open (and a float64 read, a conversion and a
validation) per slice. :func:`~brats_sdk.data.pack.pack_folder` converts the release once into
``OUT_DIR/volume_<V>.h5``, and :class:`PackedFolder` reads it through the same
:class:`~brats_sdk.data.protocols.SliceSource` / :class:`~brats_sdk.data.protocols.VolumeSource`
protocols as :class:`~brats_sdk.data.h5_folder.H5SliceFolder`, so training accepts either.

File format (``format_version`` 1), one file per volume:

* dataset ``image``: ``(D, 4, H, W)`` float32 or float16, channels first, in
  :data:`~brats_sdk.constants.IMAGE_CHANNELS` order, chunks ``(1, 4, H, W)`` (one chunk
  per slice), no compression or other filter;
* dataset ``mask``: ``(D, 3, H, W)`` uint8 one-hot, chunks ``(1, 3, H, W)``; absent when
  the source has no masks;
* attributes: ``format`` = ``"brats_sdk.packed"``, ``format_version`` = 1, ``volume``,
  ``n_slices``, ``image_dtype``, the source fingerprint (``source_files``,
  ``source_bytes``, ``source_mtime_ns``: number, total size and latest modification
  time of the volume's slice files), ``image_crc32`` and ``mask_crc32`` (CRC-32 of the
  stored bytes) and, written last, ``complete`` = True.

Beside the volumes: ``packed_manifest.json`` (format, version, image dtype, packed
volumes) and copies of ``meta_data.csv``, ``survival_info.csv`` and
``name_mapping.csv`` when the source has them.

What the model sees: with float32 packing :meth:`PackedFolder.read_slice` returns
arrays bit-identical to :meth:`H5SliceFolder.read_slice`. With float16 packing each
image value is the float16 nearest to that float32 value (round to nearest even),
upcast back to float32: relative error at most 2**-11 (about 5e-4); values beyond the
float16 range (65504) are refused at packing time. Masks are identical either way.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, cast, get_args

import h5py
import numpy as np
import numpy.typing as npt

from brats_sdk.constants import (
    H5_IMAGE_KEY,
    H5_MASK_KEY,
    IMAGE_CHANNELS,
    MASK_CHANNELS,
    META_CSV,
    NAME_MAPPING_CSV,
    SURVIVAL_CSV,
)
from brats_sdk.data.records import SliceRecord, VolumeInfo, VolumeRecord
from brats_sdk.errors import DataError

__all__ = [
    "PACKED_FORMAT",
    "PACKED_FORMAT_VERSION",
    "PACKED_MANIFEST",
    "ImageDtype",
    "PackedFolder",
    "is_packed_folder",
    "packed_path",
]

logger = logging.getLogger(__name__)

PACKED_FORMAT: Final[str] = "brats_sdk.packed"
PACKED_FORMAT_VERSION: Final[int] = 1
PACKED_MANIFEST: Final[str] = "packed_manifest.json"
PACKED_FILE_PATTERN: Final[str] = r"^volume_(\d+)\.h5$"

ImageDtype = Literal["float32", "float16"]
_IMAGE_DTYPES: Final[tuple[str, ...]] = get_args(ImageDtype)
_FLOAT16_MAX: Final[float] = float(np.finfo(np.float16).max)
_TABLES: Final[tuple[str, ...]] = (META_CSV, SURVIVAL_CSV, NAME_MAPPING_CSV)
# Open packed files kept per process; beyond this the least recently used is closed.
_MAX_OPEN_FILES: Final[int] = 512

_PACKED_RE = re.compile(PACKED_FILE_PATTERN)
F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


def packed_path(out_dir: Path, volume: int) -> Path:
    """The packed file of ``volume`` in ``out_dir``: ``out_dir/volume_<V>.h5``."""
    return Path(out_dir) / f"volume_{volume}.h5"


def is_packed_folder(path: Path) -> bool:
    """Whether ``path`` is a packed folder: it holds ``packed_manifest.json`` or a ``volume_<V>.h5``.

    This is the detection rule for :func:`~brats_sdk.data.sources.open_source`; the Kaggle
    slice files (``volume_<V>_slice_<S>.h5``) never match it.
    """
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / PACKED_MANIFEST).is_file():
        return True
    with os.scandir(path) as entries:
        return any(_PACKED_RE.match(e.name) is not None for e in entries)


# ---------------------------------------------------------------------------------------
# Packing


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# ---------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True, slots=True)
class _Header:
    path: Path
    n_slices: int
    shape: tuple[int, int]
    has_mask: bool


class _Handle:
    """An open packed file of one process, with the fastest read its layout allows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # No chunk cache: each slice is read once per pass, a cache only adds a copy.
            self.file = h5py.File(path, "r", rdcc_nbytes=0)
            image = self.file[H5_IMAGE_KEY]
            mask = self.file.get(H5_MASK_KEY)
        except (OSError, KeyError) as exc:
            raise DataError(f"{path}: not a readable packed file ({_short(exc)})") from exc
        if not isinstance(image, h5py.Dataset) or (
            mask is not None and not isinstance(mask, h5py.Dataset)
        ):
            raise DataError(f"{path}: '{H5_IMAGE_KEY}' or '{H5_MASK_KEY}' is not a dataset")
        self.image = image
        self.mask = mask
        self.image_raw = _raw_chunks(image)
        self.mask_raw = mask is not None and _raw_chunks(mask)

    def read_image(self, s: int) -> F32:
        buf = np.empty(self.image.shape[1:], dtype=self.image.dtype)
        self._read(self.image, self.image_raw, s, buf)
        return _as_float32(buf)

    def read_mask(self, s: int) -> U8 | None:
        if self.mask is None:
            return None
        buf = np.empty(self.mask.shape[1:], dtype=np.uint8)
        self._read(self.mask, self.mask_raw, s, buf)
        return buf

    def _read(self, ds: h5py.Dataset, raw: bool, s: int, buf: npt.NDArray[np.generic]) -> None:
        try:
            if raw:
                # One chunk per slice and no filter: the chunk's bytes are the slice.
                ds.id.read_direct_chunk((s, 0, 0, 0), out=buf.reshape(-1).view(np.uint8))
            else:
                ds.read_direct(buf, np.s_[s])
        except (OSError, ValueError, TypeError) as exc:
            raise DataError(
                f"{self.path}: slice {s} of '{ds.name.lstrip('/')}' unreadable ({_short(exc)})"
            ) from exc

    def close(self) -> None:
        self.file.close()


def _as_float32(a: npt.NDArray[np.floating]) -> F32:
    """``a`` as float32 (exact for float16), without a copy when it already is.

    float16 goes through a 65,536-entry table (about 2x faster than ``astype``, and
    unlike torch's conversion it never starts a thread pool).
    """
    if a.dtype == np.float32:
        return cast(F32, a)
    if a.dtype != np.float16:
        return a.astype(np.float32)
    out: F32 = np.take(_float16_table(), a.view(np.uint16))
    return out


@functools.cache
def _float16_table() -> F32:
    """float32 value of every float16 bit pattern."""
    return np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)


def _raw_chunks(ds: h5py.Dataset) -> bool:
    """Whether slice ``s`` can be read as chunk ``(s, 0, 0, 0)``'s raw bytes."""
    return (
        ds.ndim == 4
        and ds.chunks == (1, *ds.shape[1:])
        and ds.id.get_create_plist().get_nfilters() == 0
        and ds.dtype.isnative
        and ds.dtype in (np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.uint8))
    )


def _read_header(path: Path) -> _Header:
    n_img, n_mask = len(IMAGE_CHANNELS), len(MASK_CHANNELS)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({_short(exc)})") from exc
    with f:
        a = f.attrs
        if a.get("format") != PACKED_FORMAT:
            raise DataError(f"{path}: not a packed brats_sdk volume (format {a.get('format')!r})")
        version = a.get("format_version")
        if version != PACKED_FORMAT_VERSION:
            raise DataError(
                f"{path}: packed format version {version!r}; this SDK reads {PACKED_FORMAT_VERSION}"
            )
        if not bool(a.get("complete", False)):
            raise DataError(
                f"{path}: incomplete packed file (interrupted write); run `brats pack` again"
            )
        image = f.get(H5_IMAGE_KEY)
        if not isinstance(image, h5py.Dataset) or image.ndim != 4 or image.shape[1] != n_img:
            raise DataError(
                f"{path}: '{H5_IMAGE_KEY}' has shape {getattr(image, 'shape', '?')}, expected (D, {n_img}, H, W)"
            )
        if image.dtype not in (np.dtype(np.float32), np.dtype(np.float16)):
            raise DataError(
                f"{path}: '{H5_IMAGE_KEY}' has dtype {image.dtype}, expected float32 or float16"
            )
        d, _, h, w = image.shape
        if int(a.get("n_slices", -1)) != d:
            raise DataError(
                f"{path}: n_slices attribute {a.get('n_slices')!r} differs from the image's {d} slices"
            )
        has_mask = H5_MASK_KEY in f
        if has_mask:
            mask = f[H5_MASK_KEY]
            if (
                not isinstance(mask, h5py.Dataset)
                or mask.shape != (d, n_mask, h, w)
                or mask.dtype != np.uint8
            ):
                raise DataError(
                    f"{path}: '{H5_MASK_KEY}' has shape {getattr(mask, 'shape', '?')} dtype "
                    f"{getattr(mask, 'dtype', '?')}, expected ({d}, {n_mask}, {h}, {w}) uint8"
                )
    return _Header(path, int(d), (int(h), int(w)), has_mask)


def _listed_volumes(root: Path, *, use_manifest: bool = True) -> dict[int, Path]:
    """Volume -> file: the manifest's volumes if there is one, else every ``volume_<V>.h5``."""
    manifest = root / PACKED_MANIFEST
    if use_manifest and manifest.is_file():
        try:
            payload = json.loads(manifest.read_text(encoding="utf-8"))
            volumes = [int(v) for v in payload["volumes"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{manifest}: not a valid packed manifest ({exc})") from exc
        return {v: packed_path(root, v) for v in volumes}
    found: dict[int, Path] = {}
    with os.scandir(root) as entries:
        for e in entries:
            m = _PACKED_RE.match(e.name)
            if m is not None:
                found[int(m.group(1))] = Path(e.path)
    return found


class PackedFolder:
    """Slices and volumes of a folder written by :func:`~brats_sdk.data.pack.pack_folder`.

    Satisfies :class:`~brats_sdk.data.protocols.SliceSource` and
    :class:`~brats_sdk.data.protocols.VolumeSource` like
    :class:`~brats_sdk.data.h5_folder.H5SliceFolder`, in the same numeric order, and
    returns the same arrays: image ``(4, H, W)`` float32 (float16 storage upcast; see the
    module docstring) and mask ``(3, H, W)`` uint8.

    Construction reads each file's header (and closes it). Files are then opened on
    first use in each process and kept open (at most 512 at a time, least recently
    used closed first); h5py handles do not survive ``fork``, so a DataLoader worker
    notices the new process id and opens its own, and pickling drops them.

    Args:
        root: The packed folder (holding ``packed_manifest.json`` or ``volume_<V>.h5``).
        volumes: Keep only these volume numbers (unknown ones are an error).
        max_volumes: Keep only the first N volumes (after ``volumes``).
        require_mask: Whether the files must hold masks.

    Raises:
        DataError: No packed volume, a requested volume is absent, or a file is not a
            complete packed volume (the message names it).
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
        if not self.root.is_dir():
            raise DataError(f"{self.root}: not a folder")
        self.data_dirs: tuple[Path, ...] = (self.root,)
        self.require_mask = require_mask
        listed = _listed_volumes(self.root)
        if not listed:
            raise DataError(f"{self.root}: no packed volume_<V>.h5 files (run `brats pack` first)")
        chosen = sorted(listed)
        if volumes is not None:
            wanted = sorted(set(volumes))
            absent = [v for v in wanted if v not in listed]
            if absent:
                raise DataError(
                    f"{self.root}: volumes {absent} not found (has {len(chosen)} volumes)"
                )
            chosen = wanted
        if max_volumes is not None:
            chosen = chosen[: max(0, max_volumes)]
        self._headers: dict[int, _Header] = {}
        for v in chosen:
            if not listed[v].is_file():
                raise DataError(f"{listed[v]}: listed in {PACKED_MANIFEST} but missing")
            header = _read_header(listed[v])
            if require_mask and not header.has_mask:
                raise DataError(
                    f"{header.path}: no '{H5_MASK_KEY}' dataset (packed from unlabelled data)"
                )
            self._headers[v] = header
        self._keys: list[tuple[int, int]] = [
            (v, s) for v in chosen for s in range(self._headers[v].n_slices)
        ]
        self._infos = tuple(
            VolumeInfo(
                volume=v,
                name=f"volume_{v}",
                n_slices=self._headers[v].n_slices,
                has_mask=self._headers[v].has_mask,
            )
            for v in chosen
        )
        self._pid = os.getpid()
        self._handles: OrderedDict[int, _Handle] = OrderedDict()

    # Handles: per process, opened lazily.
    def _handle(self, volume: int) -> _Handle:
        if self._pid != os.getpid():
            # Inherited through fork: never use the parent's HDF5 handles here.
            self._handles = OrderedDict()
            self._pid = os.getpid()
        h = self._handles.get(volume)
        if h is None:
            header = self._headers.get(volume)
            if header is None:
                raise DataError(f"{self.root}: no volume {volume}")
            h = _Handle(header.path)
            self._handles[volume] = h
            if len(self._handles) > _MAX_OPEN_FILES:
                _, oldest = self._handles.popitem(last=False)
                oldest.close()
        else:
            self._handles.move_to_end(volume)
        return h

    def close(self) -> None:
        """Close the files this process opened (they reopen on the next read)."""
        if self._pid == os.getpid():
            for h in self._handles.values():
                h.close()
        self._handles = OrderedDict()

    def __enter__(self) -> PackedFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_handles"] = OrderedDict()
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()

    # SliceSource
    def __len__(self) -> int:
        return len(self._keys)

    def slice_key(self, i: int) -> tuple[int, int]:
        return self._keys[i]

    def read_slice(self, i: int) -> SliceRecord:
        v, s = self._keys[i]
        h = self._handle(v)
        return SliceRecord(volume=v, index=s, image=h.read_image(s), mask=h.read_mask(s))

    # VolumeSource
    def volumes(self) -> Sequence[VolumeInfo]:
        return self._infos

    def volume_path(self, volume: int) -> Path:
        """The packed file of ``volume``."""
        header = self._headers.get(volume)
        if header is None:
            raise DataError(f"{self.root}: no volume {volume}")
        return header.path

    def load_volume(self, volume: int) -> VolumeRecord:
        """Load ``volume`` whole: image ``(D, 4, H, W)`` float32, mask ``(D, 3, H, W)`` uint8 or None.

        Raises:
            DataError: The volume is unknown or its file is unreadable.
        """
        h = self._handle(volume)
        try:
            image = np.empty(h.image.shape, dtype=h.image.dtype)
            h.image.read_direct(image)
            mask: U8 | None = None
            if h.mask is not None:
                mask = np.empty(h.mask.shape, dtype=np.uint8)
                h.mask.read_direct(mask)
        except (OSError, ValueError, TypeError) as exc:
            raise DataError(f"{h.path}: unreadable ({_short(exc)})") from exc
        info = next(i for i in self._infos if i.volume == volume)
        return VolumeRecord(info=info, image=_as_float32(image), mask=mask)
