"""Packed layout: one h5 file per volume holding only its brain box, made from the Kaggle
one-file-per-slice release.

Reading the Kaggle layout costs a file open (and a float64 read, a conversion and a
validation) per slice. :func:`~brats_sdk.data.packed_writer.pack_folder` converts the release once into
``OUT_DIR/volume_<V>.h5``, and :class:`PackedFolder` reads it through the same
:class:`~brats_sdk.data.protocols.SliceSource` / :class:`~brats_sdk.data.protocols.VolumeSource`
protocols as :class:`~brats_sdk.data.h5_folder.H5SliceFolder`, so every command accepts either.

Outside a slice's brain (:func:`~brats_sdk.data.normalise.brain_mask`: no channel above
its slice minimum) every channel holds its slice minimum, so a volume is its *box* (the
slices, rows and columns that hold brain or a labelled voxel) plus one minimum per
slice and channel. File format (``format_version`` 2), one file per volume of ``D``
slices of ``H x W``, box ``[z0, z1) x [y0, y1) x [x0, x1)``:

* dataset ``image``: ``(z1 - z0, 4, y1 - y0, x1 - x0)``, channels in
  :data:`~brats_sdk.constants.IMAGE_CHANNELS` order; float32: the values themselves;
  float16: each value minus its slice and channel's ``minimum`` (so background is
  exactly 0 and brain values stay above it, see below). Chunks ``(1, 4, y1 - y0,
  x1 - x0)`` (one per slice), no compression or other filter;
* dataset ``minimum``: ``(D, 4)`` float32, each slice and channel's minimum over the
  whole frame: the value of every voxel outside the box and of the background;
* dataset ``classes``: ``(z1 - z0, y1 - y0, x1 - x0)`` uint8 class indices 0..3
  (:func:`~brats_sdk.labels.one_hot_to_classes` of the mask), chunks one per slice;
  absent when the source has no masks. Labels outside the brain widen the box;
* datasets ``moments_count`` ``(D,)`` int64, ``moments_sum`` and ``moments_sum_sq``
  ``(D, 4)`` float64: :func:`~brats_sdk.data.normalise.slice_moments` of each slice as
  :class:`PackedFolder` returns it, so training need not recompute per-slice statistics;
* each dataset carries ``crc32`` (CRC-32 of its stored bytes);
* attributes: ``format`` = ``"brats_sdk.packed"``, ``format_version`` = 2, ``volume``,
  ``n_slices``, ``height``, ``width``, ``box`` (``[z0, z1, y0, y1, x0, x1]``),
  ``image_dtype``, ``image_offsets`` (True for float16), ``moments_probe`` (the
  moments of a fixed test slice under the normalisation code that packed the file;
  a reader whose code gives other moments recomputes them instead of trusting the
  stored ones), the source fingerprint (``source_files``, ``source_bytes``,
  ``source_mtime_ns``: number, total size and latest modification time of the
  volume's slice files) and, written last, ``complete`` = True.

Beside the volumes: ``packed_manifest.json`` (format, version, image dtype, packed
volumes) and copies of ``meta_data.csv``, ``survival_info.csv`` and
``name_mapping.csv`` when the source has them. Files of ``format_version`` 1 (the whole
frame) are refused with a message to run ``brats pack`` again, which rewrites them.

What the model sees: with float32 packing :meth:`PackedFolder.read_slice` returns
arrays equal to :meth:`H5SliceFolder.read_slice`'s, full frame. With float16 packing
each value is its slice minimum plus the float16 nearest to its distance from that
minimum (absolute error at most ``2**-11`` of that distance, plus float32 rounding);
packing checks, slice by slice, that this leaves every brain mask and slice minimum
as they were (a brain voxel whose distance rounds to nothing is moved up by the
smallest step that keeps it brain), so per-slice normalisation sees the same brain
voxels and differs only by rounding. A distance beyond the float16 range (65504) fails
the volume. Masks are identical either way.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import h5py
import numpy as np
import numpy.typing as npt

from brats_sdk.constants import (
    H5_IMAGE_KEY,
    IMAGE_CHANNELS,
    MASK_CHANNELS,
)
from brats_sdk.data.broken import BrokenVolume
from brats_sdk.data.nifti_layout import LABEL_KEY
from brats_sdk.data.normalise import SliceMoments
from brats_sdk.data.packed_codec import (
    F32,
    U8,
    Bool2D,
    Box,
    as_float32,
    decode_slice,
    moments_probe,
    one_hot_into,
)
from brats_sdk.data.packed_files import (
    CLASSES_KEY,
    IMAGE_DTYPES,
    MINIMUM_KEY,
    MOMENT_KEYS,
    PACKED_FORMAT,
    PACKED_FORMAT_VERSION,
    PACKED_MANIFEST,
    ImageDtype,
    is_packed_folder,
    listed_volumes,
    packed_path,
)
from brats_sdk.data.records import SliceRecord, VolumeInfo, VolumeRecord
from brats_sdk.errors import DataError, first_line
from brats_sdk.summarise import summarise

__all__ = [
    "IMAGE_DTYPES",
    "PACKED_FORMAT",
    "PACKED_FORMAT_VERSION",
    "PACKED_MANIFEST",
    "ImageDtype",
    "PackedFolder",
    "is_packed_folder",
    "packed_path",
]

logger = logging.getLogger(__name__)

# Open packed files kept per process; beyond this the least recently used is closed.
_MAX_OPEN_FILES: Final[int] = 512

# ---------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True, slots=True)
class _Header:
    path: Path
    n_slices: int
    shape: tuple[int, int]
    box: Box
    image_dtype: str
    has_mask: bool
    moments_ok: bool
    name: str


class _Handle:
    """An open packed file of one process, with the fastest read its layout allows."""

    def __init__(self, header: _Header) -> None:
        self.header = header
        path = header.path
        try:
            # No chunk cache: each slice is read once per pass, a cache only adds a copy.
            self.file = h5py.File(path, "r", rdcc_nbytes=0)
            self.image = _dataset(self.file, H5_IMAGE_KEY)
            self.classes = _dataset(self.file, CLASSES_KEY) if header.has_mask else None
            self.minimum: F32 = np.asarray(_dataset(self.file, MINIMUM_KEY)[()], dtype=np.float32)
            self.moments: list[SliceMoments] | None = None
            if header.moments_ok:
                count, total, total_sq = (_dataset(self.file, k)[()] for k in MOMENT_KEYS)
                self.moments = [
                    SliceMoments(
                        int(count[s]),
                        tuple(float(x) for x in total[s]),
                        tuple(float(x) for x in total_sq[s]),
                    )
                    for s in range(header.n_slices)
                ]
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise DataError(f"{path}: not a readable packed file ({first_line(exc)})") from exc
        self.image_raw = _raw_chunks(self.image)
        self.classes_raw = self.classes is not None and _raw_chunks(self.classes)

    def read(self, s: int) -> tuple[F32, Bool2D, U8 | None, U8 | None, SliceMoments | None]:
        """Slice ``s``: image, brain, class indices, one-hot mask and moments."""
        h = self.header
        box = h.box
        inside = box.holds(s)
        stored: npt.NDArray[np.floating] | None = None
        if inside:
            stored = np.empty(self.image.shape[1:], dtype=self.image.dtype)
            self._read(self.image, self.image_raw, s - box.z0, stored)
        image, brain = decode_slice(stored, self.minimum[s], box, h.shape)
        classes: U8 | None = None
        mask: U8 | None = None
        if self.classes is not None:
            classes = np.zeros(h.shape, dtype=np.uint8)
            mask = np.zeros((len(MASK_CHANNELS), *h.shape), dtype=np.uint8)
            if inside:
                inner = np.empty(self.classes.shape[1:], dtype=np.uint8)
                self._read(self.classes, self.classes_raw, s - box.z0, inner)
                classes[box.y0 : box.y1, box.x0 : box.x1] = inner
                one_hot_into(inner, mask[:, box.y0 : box.y1, box.x0 : box.x1], axis=0)
        moments = None if self.moments is None else self.moments[s]
        return image, brain, classes, mask, moments

    def read_volume(self) -> tuple[F32, U8 | None]:
        """The whole volume, full frame: image ``(D, C, H, W)``, one-hot mask or None."""
        h = self.header
        box = h.box
        d, (rows, cols) = h.n_slices, h.shape
        inner = (slice(box.z0, box.z1), slice(None), slice(box.y0, box.y1), slice(box.x0, box.x1))
        try:
            stored = self.image[()]
            classes = None if self.classes is None else np.asarray(self.classes[()], dtype=np.uint8)
        except (OSError, ValueError, TypeError) as exc:
            raise DataError(f"{h.path}: unreadable ({first_line(exc)})") from exc
        m = self.minimum[:, :, None, None]
        image = np.empty((d, self.minimum.shape[1], rows, cols), dtype=np.float32)
        image[...] = m
        if stored.dtype == np.float16:
            # The same float32 sum as decode_slice, slice for slice.
            np.add(as_float32(stored), m[box.z0 : box.z1], out=image[inner])
        else:
            image[inner] = stored
        mask: U8 | None = None
        if classes is not None:
            mask = np.zeros((d, len(MASK_CHANNELS), rows, cols), dtype=np.uint8)
            one_hot_into(classes, mask[inner], axis=1)
        return image, mask

    def _read(self, ds: h5py.Dataset, raw: bool, s: int, buf: npt.NDArray[np.generic]) -> None:
        try:
            if raw:
                # One chunk per slice and no filter: the chunk's bytes are the slice.
                ds.id.read_direct_chunk((s,) + (0,) * (ds.ndim - 1), out=buf.reshape(-1).view(np.uint8))
            else:
                ds.read_direct(buf, np.s_[s])
        except (OSError, ValueError, TypeError) as exc:
            raise DataError(
                f"{self.header.path}: slice {s} of '{ds.name.lstrip('/')}' unreadable ({first_line(exc)})"
            ) from exc

    def close(self) -> None:
        self.file.close()


def _checked_header(path: Path, *, require_mask: bool) -> _Header:
    if not path.is_file():
        raise DataError(f"{path}: listed in {PACKED_MANIFEST} but missing")
    header = _read_header(path)
    if require_mask and not header.has_mask:
        raise DataError(f"{path}: no '{CLASSES_KEY}' dataset (packed from unlabelled data)")
    return header


def _dataset(f: h5py.File, key: str) -> h5py.Dataset:
    ds = f[key]
    if not isinstance(ds, h5py.Dataset):
        raise KeyError(f"'{key}' is not a dataset")
    return ds


def _raw_chunks(ds: h5py.Dataset) -> bool:
    """Whether slice ``s`` can be read as chunk ``(s, 0, ...)``'s raw bytes."""
    return (
        ds.chunks == (1, *ds.shape[1:])
        and ds.id.get_create_plist().get_nfilters() == 0
        and ds.dtype.isnative
        and ds.dtype in (np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.uint8))
    )


def _read_header(path: Path) -> _Header:
    n_img = len(IMAGE_CHANNELS)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({first_line(exc)})") from exc
    with f:
        a = f.attrs
        if a.get("format") != PACKED_FORMAT:
            raise DataError(f"{path}: not a packed brats_sdk volume (format {a.get('format')!r})")
        version = a.get("format_version")
        version = version.item() if isinstance(version, np.generic) else version
        if version != PACKED_FORMAT_VERSION:
            raise DataError(
                f"{path}: packed format version {version!r}, this SDK reads version "
                f"{PACKED_FORMAT_VERSION}; run `brats pack` again to rewrite the folder"
            )
        if not bool(a.get("complete", False)):
            raise DataError(
                f"{path}: incomplete packed file (interrupted write); run `brats pack` again"
            )
        try:
            d, rows, cols = (int(a[k]) for k in ("n_slices", "height", "width"))
            box = Box(*(int(x) for x in a["box"]))
            image = _dataset(f, H5_IMAGE_KEY)
            minimum = _dataset(f, MINIMUM_KEY)
            moments = [_dataset(f, k) for k in MOMENT_KEYS]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: not a complete packed file ({first_line(exc)})") from exc
        dz, hb, wb = box.z1 - box.z0, box.y1 - box.y0, box.x1 - box.x0
        if not (0 <= box.z0 < box.z1 <= d and 0 <= box.y0 < box.y1 <= rows and 0 <= box.x0 < box.x1 <= cols):
            raise DataError(f"{path}: box {list(a['box'])} outside the {d} x {rows} x {cols} volume")
        if image.shape != (dz, n_img, hb, wb) or image.dtype not in (np.float32, np.float16):
            raise DataError(
                f"{path}: '{H5_IMAGE_KEY}' is {image.shape} {image.dtype}, expected "
                f"{(dz, n_img, hb, wb)} float32 or float16"
            )
        if minimum.shape != (d, n_img) or any(ds.shape[0] != d for ds in moments):
            raise DataError(f"{path}: '{MINIMUM_KEY}' or the moments do not cover {d} slices")
        has_mask = CLASSES_KEY in f
        if has_mask:
            classes = _dataset(f, CLASSES_KEY)
            if classes.shape != (dz, hb, wb) or classes.dtype != np.uint8:
                raise DataError(
                    f"{path}: '{CLASSES_KEY}' is {classes.shape} {classes.dtype}, expected {(dz, hb, wb)} uint8"
                )
        moments_ok = a.get("moments_probe") == moments_probe()
        # The source's volume name (a NIfTI case folder's name), so that reports match
        # cases by name whatever layout they were read from.
        name = str(a.get("name", "")) or f"volume_{int(a.get('volume', 0))}"
    return _Header(path, d, (rows, cols), box, str(image.dtype), has_mask, moments_ok, name)


class PackedFolder:
    """Slices and volumes of a folder written by :func:`~brats_sdk.data.packed_writer.pack_folder`.

    Satisfies :class:`~brats_sdk.data.protocols.SliceSource` and
    :class:`~brats_sdk.data.protocols.VolumeSource` like
    :class:`~brats_sdk.data.h5_folder.H5SliceFolder`, in the same numeric order, and
    returns the same full-frame arrays: image ``(4, H, W)`` float32 (see the module
    docstring for float16 storage) and mask ``(3, H, W)`` uint8. Each
    :class:`~brats_sdk.data.records.SliceRecord` also carries the slice's brain mask,
    class indices and normalisation moments, which the packed file gives for free.

    Construction reads each file's header (and closes it). Files are then opened on
    first use in each process and kept open (at most 512 at a time, least recently
    used closed first); h5py handles do not survive ``fork``, so a DataLoader worker
    notices the new process id and opens its own, and pickling drops them.

    Args:
        root: The packed folder (holding ``packed_manifest.json`` or ``volume_<V>.h5``).
        volumes: Keep only these volume numbers (unknown ones are an error).
        max_volumes: Keep only the first N volumes (after ``volumes``).
        require_mask: Whether the files must hold masks.
        skip_broken: Leave files that are missing, truncated or not complete packed
            volumes out of :meth:`volumes` and list them in :meth:`broken_volumes`
            (batch jobs); without it they raise.

    Raises:
        DataError: No packed volume, a requested volume is absent, or a file is not a
            complete packed volume of this format version (the message names it).
    """

    def __init__(
        self,
        root: Path | str,
        *,
        volumes: Iterable[int] | None = None,
        max_volumes: int | None = None,
        require_mask: bool = True,
        skip_broken: bool = False,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: not a folder")
        self.data_dirs: tuple[Path, ...] = (self.root,)
        self.require_mask = require_mask
        listed = listed_volumes(self.root)
        if not listed:
            raise DataError(f"{self.root}: no packed volume_<V>.h5 files (run `brats pack` first)")
        chosen = sorted(listed)
        if volumes is not None:
            wanted = sorted(set(volumes))
            absent = [v for v in wanted if v not in listed]
            if absent:
                raise DataError(
                    f"{self.root}: volumes {summarise(absent)} not found (has {len(chosen)} volumes)"
                )
            chosen = wanted
        if max_volumes is not None:
            chosen = chosen[: max(0, max_volumes)]
        self._headers: dict[int, _Header] = {}
        self._broken: dict[int, BrokenVolume] = {}
        for v in chosen:
            try:
                self._headers[v] = _checked_header(listed[v], require_mask=require_mask)
            except DataError as exc:
                if not skip_broken:
                    raise
                logger.warning("skipping volume %d: %s", v, first_line(exc))
                self._broken[v] = BrokenVolume(v, f"volume_{v}", first_line(exc))
        chosen = [v for v in chosen if v in self._headers]
        stale = [v for v, h in self._headers.items() if not h.moments_ok]
        if stale:
            logger.warning(
                "%s: volumes %s were packed by other normalisation code; their slice "
                "statistics are recomputed when read (run `brats pack` again to store current ones)",
                self.root,
                stale[:10],
            )
        self._keys: list[tuple[int, int]] = [
            (v, s) for v in chosen for s in range(self._headers[v].n_slices)
        ]
        self._infos = tuple(
            VolumeInfo(
                volume=v,
                name=self._headers[v].name,
                n_slices=self._headers[v].n_slices,
                has_mask=self._headers[v].has_mask,
            )
            for v in chosen
        )
        self._pid = os.getpid()
        self._handles: OrderedDict[int, _Handle] = OrderedDict()

    def broken_volumes(self) -> Sequence[BrokenVolume]:
        """The files left out of :meth:`volumes` (only with ``skip_broken``), in volume order."""
        return tuple(self._broken[v] for v in sorted(self._broken))

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
            h = _Handle(header)
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
        image, brain, classes, mask, moments = self._handle(v).read(s)
        return SliceRecord(
            volume=v, index=s, image=image, mask=mask, brain=brain, classes=classes, moments=moments
        )

    # VolumeSource
    def volumes(self) -> Sequence[VolumeInfo]:
        return self._infos

    def volume_path(self, volume: int) -> Path:
        """The packed file of ``volume``."""
        header = self._headers.get(volume)
        if header is None:
            raise DataError(f"{self.root}: no volume {volume}")
        return header.path

    def stored_dtypes(self, volume: int) -> dict[str, str]:
        """Channel name (and ``seg`` for the labels) -> dtype the file stores, e.g.
        ``{"flair": "float16", ..., "seg": "uint8"}``; reads return float32 and uint8.

        Raises:
            DataError: The volume is unknown.
        """
        header = self._headers.get(volume)
        if header is None:
            raise DataError(f"{self.root}: no volume {volume}")
        dtypes = dict.fromkeys(IMAGE_CHANNELS, header.image_dtype)
        if header.has_mask:
            dtypes[LABEL_KEY] = "uint8"
        return dtypes

    def load_volume(self, volume: int) -> VolumeRecord:
        """Load ``volume`` whole, full frame: image ``(D, 4, H, W)`` float32, mask
        ``(D, 3, H, W)`` uint8 or None.

        Raises:
            DataError: The volume is unknown or its file is unreadable.
        """
        image, mask = self._handle(volume).read_volume()
        info = next(i for i in self._infos if i.volume == volume)
        return VolumeRecord(info=info, image=image, mask=mask)
