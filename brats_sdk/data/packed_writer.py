"""Writing the packed layout: :func:`pack_folder` converts a data folder (Kaggle's per-slice
release, ``brats convert`` output or a NIfTI release) into one h5 file per volume holding
its brain box (format in :mod:`brats_sdk.data.packed`, which reads it).

Each volume is encoded, then decoded slice by slice with the reader's own code, which
must give back every brain mask and slice minimum (and, in float32, every value); the
normalisation moments stored are those of the decoded slices.

Packing is resumable: a second run skips volumes already packed and verified (same
source fingerprint, CRC-32 of the stored bytes, ``complete`` flag), and every file is
written to a temporary name and renamed, so an interrupted run leaves no half file.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import h5py
import numpy as np
import numpy.typing as npt

from brats_sdk.atomic import atomic_path, atomic_write_text
from brats_sdk.constants import H5_IMAGE_KEY, IMAGE_CHANNELS, MASK_CHANNELS
from brats_sdk.data.broken import broken_volumes
from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.nifti import NiftiFolder
from brats_sdk.data.nifti_labels import LabelConvention
from brats_sdk.data.packed_codec import moments_probe
from brats_sdk.data.packed_encode import Encoded, encode
from brats_sdk.data.packed_files import (
    CLASSES_KEY,
    IMAGE_DTYPES,
    MINIMUM_KEY,
    MOMENT_KEYS,
    PACKED_FORMAT,
    PACKED_FORMAT_VERSION,
    PACKED_MANIFEST,
    TABLES,
    ImageDtype,
    listed_volumes,
    packed_path,
)
from brats_sdk.data.records import VolumeInfo, VolumeRecord
from brats_sdk.errors import ConfigError, DataError, first_line

__all__ = ["PackFailure", "PackResult", "PackSource", "open_pack_source", "pack_folder"]

logger = logging.getLogger(__name__)



class PackSource(Protocol):
    """What :func:`pack_folder` reads: volumes, the files behind each (for the resume
    fingerprint) and the folders holding them (for the clinical tables)."""

    @property
    def root(self) -> Path: ...

    @property
    def data_dirs(self) -> Sequence[Path]: ...

    def volumes(self) -> Sequence[VolumeInfo]: ...

    def load_volume(self, volume: int) -> VolumeRecord: ...

    def volume_files(self, volume: int) -> list[Path]: ...


def open_pack_source(
    path: Path, *, require_mask: bool = True, label_convention: LabelConvention | str = LabelConvention.BRATS2017
) -> PackSource:
    """The Kaggle h5 layout (or ``brats convert`` output) or a NIfTI release at ``path``
    (whose label 3, if any, is read under ``label_convention``).

    A NIfTI case that cannot be listed (a modality missing, a 4-D image) is left out and
    reported by :func:`~brats_sdk.data.broken.broken_volumes`: :func:`pack_folder` fails it
    and packs the others.

    Raises:
        DataError: ``path`` is not a folder, or holds neither layout.
    """
    from brats_sdk.data.nifti_layout import looks_like_nifti_folder

    if not path.is_dir():
        raise DataError(f"{path}: not a folder")
    if looks_like_nifti_folder(path):
        return NiftiFolder(path, require_mask=require_mask, skip_broken=True, label_convention=label_convention)
    return H5SliceFolder(path, require_mask=require_mask)


@dataclass(frozen=True, slots=True)
class PackFailure:
    """A volume that could not be packed.

    Attributes:
        volume: Volume number.
        message: The one-line reason (names the bad file).
    """

    volume: int
    message: str


@dataclass(frozen=True, slots=True)
class PackResult:
    """Outcome of :func:`pack_folder`.

    Attributes:
        out_dir: The packed folder.
        image_dtype: Storage dtype of the images.
        packed: Volumes written by this run.
        skipped: Volumes already packed and verified, left as they were.
        failed: Volumes that could not be packed (bad source files); none of them
            has a file in ``out_dir`` and the manifest leaves them out.
        seconds: Wall time of the run.
    """

    out_dir: Path
    image_dtype: ImageDtype
    packed: tuple[int, ...]
    skipped: tuple[int, ...]
    failed: tuple[PackFailure, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        """True when no volume failed."""
        return not self.failed

    @property
    def volumes(self) -> tuple[int, ...]:
        """Every volume now packed (written or skipped), in numeric order."""
        return tuple(sorted((*self.packed, *self.skipped)))


@dataclass(frozen=True, slots=True)
class _Fingerprint:
    files: int
    bytes: int
    mtime_ns: int


def _fingerprint(paths: Sequence[Path]) -> _Fingerprint:
    sizes = 0
    latest = 0
    for p in paths:
        st = p.stat()
        sizes += st.st_size
        latest = max(latest, st.st_mtime_ns)
    return _Fingerprint(len(paths), sizes, latest)


def pack_folder(
    src: Path | str | PackSource,
    out_dir: Path | str,
    *,
    image_dtype: ImageDtype = "float32",
    require_mask: bool = True,
    progress: Callable[[int], None] | None = None,
) -> PackResult:
    """Convert a data folder into one packed file per volume.

    Each volume is read with its source's ``load_volume`` (which validates every slice
    or file), written to a temporary file and moved into place, so ``out_dir`` never
    holds a partial volume. Resumable: a volume whose packed file opens, is complete,
    has the expected slice count, dtype and source fingerprint (number, total size
    and latest modification time of its slice files) and whose stored bytes match
    their CRC-32 is skipped. A volume whose source is bad is reported in
    :attr:`PackResult.failed` (any earlier packed file of it is removed, as it no
    longer matches the source) and the other volumes are still packed: this function
    does not raise for bad source files.

    Args:
        src: The Kaggle data folder or any parent of it, a NIfTI release (a folder of case
            folders), or an open source (:class:`H5SliceFolder`, :class:`NiftiFolder`).
        out_dir: Output folder (created if missing); must differ from the source folders.
        image_dtype: ``"float32"`` (reads back equal) or ``"float16"`` (half the size;
            each value's distance from its slice minimum rounded to float16, brain masks
            kept; see :mod:`brats_sdk.data.packed`).
        require_mask: Whether every slice must have a mask (False packs unlabelled data,
            without a ``classes`` dataset). When ``src`` is an open source, its own
            setting (and its choice of volumes) applies.
        progress: Called with 1 after each volume (packed, skipped or failed).

    Returns:
        What was packed, skipped and failed.

    Raises:
        ConfigError: ``image_dtype`` is not one of float32, float16, or ``out_dir`` is a
            source folder.
        DataError: ``src`` holds no slice files, or ``out_dir`` cannot be written.
    """
    t0 = time.perf_counter()
    if image_dtype not in IMAGE_DTYPES:
        raise ConfigError(
            f"unknown image dtype {image_dtype!r}; supported: {', '.join(IMAGE_DTYPES)}"
        )
    folder = open_pack_source(Path(src), require_mask=require_mask) if isinstance(src, (str, Path)) else src
    out = Path(out_dir)
    if out.exists() and any(out.resolve() == d.resolve() for d in folder.data_dirs):
        raise ConfigError(f"{out}: the output folder must not be the source folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        # Removed first: an interrupted run leaves no manifest that could disagree with the files.
        (out / PACKED_MANIFEST).unlink(missing_ok=True)
    except OSError as exc:
        raise DataError(f"{out}: cannot create the output folder ({exc})") from exc
    packed: list[int] = []
    skipped: list[int] = []
    failed: list[PackFailure] = []
    for b in broken_volumes(folder):
        logger.warning("volume %d not packed: %s", b.volume, b.reason)
        failed.append(PackFailure(b.volume, b.reason))
        _remove(packed_path(out, b.volume))
    for info in folder.volumes():
        v = info.volume
        target = packed_path(out, v)
        try:
            fp = _fingerprint(folder.volume_files(v))
        except OSError as exc:
            failed.append(PackFailure(v, f"volume {v}: cannot stat its slice files ({exc})"))
            _remove(target)
        else:
            reason = _stale_reason(target, v, info.n_slices, image_dtype, fp)
            if reason is None:
                logger.debug("volume %d: %s is packed and verified; skipped", v, target)
                skipped.append(v)
            else:
                logger.debug("volume %d: packing (%s)", v, reason)
                try:
                    rec = folder.load_volume(v)
                    enc = encode(rec, image_dtype)
                except DataError as exc:
                    message = first_line(exc)
                    logger.warning("volume %d not packed: %s", v, message)
                    failed.append(PackFailure(v, message))
                    _remove(target)
                else:
                    # A write error (disk full, no permission) would hit every volume: it propagates.
                    _write_volume(target, rec, enc, image_dtype, fp)
                    packed.append(v)
        if progress is not None:
            progress(1)
    _copy_tables(folder, out)
    known = {info.volume for info in folder.volumes()}
    others = sorted(v for v in listed_volumes(out, use_manifest=False) if v not in known)
    if others:
        logger.warning(
            "%s also holds packed volumes %s that are not in the source; the manifest leaves them out",
            out,
            others,
        )
    result = PackResult(
        out_dir=out,
        image_dtype=image_dtype,
        packed=tuple(packed),
        skipped=tuple(skipped),
        failed=tuple(failed),
        seconds=time.perf_counter() - t0,
    )
    manifest = {
        "format": PACKED_FORMAT,
        "format_version": PACKED_FORMAT_VERSION,
        "image_dtype": image_dtype,
        "volumes": list(result.volumes),
        "failed": {str(f.volume): f.message for f in failed},
        # What a label 3 of NIfTI segmentations was read as (None: the source held no NIfTI).
        "label_convention": _convention_of(folder),
    }
    try:
        atomic_write_text(out / PACKED_MANIFEST, json.dumps(manifest, indent=1) + "\n")
    except OSError as exc:
        raise DataError(f"{out / PACKED_MANIFEST}: cannot write ({exc})") from exc
    logger.info(
        "packed %d volume(s), skipped %d, %d failed, into %s in %.1f s",
        len(packed),
        len(skipped),
        len(failed),
        out,
        result.seconds,
    )
    return result


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise DataError(f"{path}: cannot remove a stale packed file ({exc})") from exc


def _stale_reason(
    target: Path, volume: int, n_slices: int, image_dtype: str, fp: _Fingerprint
) -> str | None:
    """Why ``target`` must be (re)written, or None when it is complete and matches the source."""
    if not target.is_file():
        return "no packed file"
    try:
        with h5py.File(target, "r") as f:
            a = f.attrs
            expected: dict[str, object] = {
                "format": PACKED_FORMAT,
                "format_version": PACKED_FORMAT_VERSION,
                "complete": True,
                "volume": volume,
                "n_slices": n_slices,
                "image_dtype": image_dtype,
                "moments_probe": moments_probe(),
                "source_files": fp.files,
                "source_bytes": fp.bytes,
                "source_mtime_ns": fp.mtime_ns,
            }
            for key, want in expected.items():
                got = a.get(key)
                got = got.item() if isinstance(got, np.generic) else got
                if got != want:
                    return f"attribute {key} is {got!r}, expected {want!r}"
            image = f[H5_IMAGE_KEY]
            if not isinstance(image, h5py.Dataset) or image.dtype != np.dtype(image_dtype):
                return "image dataset has the wrong dtype"
            for key in (H5_IMAGE_KEY, MINIMUM_KEY, *MOMENT_KEYS, CLASSES_KEY):
                if key == CLASSES_KEY and key not in f:
                    continue
                ds = f[key]
                if not isinstance(ds, h5py.Dataset) or _crc(ds) != int(ds.attrs["crc32"]):
                    return f"{key} bytes do not match their checksum"
    except (OSError, KeyError, ValueError, TypeError) as exc:
        return f"unreadable ({first_line(exc)})"
    return None


def _crc(ds: h5py.Dataset) -> int:
    """CRC-32 of a dataset's bytes, read one slice at a time."""
    if ds.ndim == 0 or ds.shape[0] == 0:
        return zlib.crc32(np.ascontiguousarray(ds[()]).data)
    crc = 0
    buf = np.empty(ds.shape[1:], dtype=ds.dtype)
    for s in range(ds.shape[0]):
        ds.read_direct(buf, np.s_[s])
        crc = zlib.crc32(buf.data, crc)
    return crc


def _write_volume(target: Path, rec: VolumeRecord, enc: Encoded, image_dtype: str, fp: _Fingerprint) -> None:
    """Write one packed volume atomically (temporary file, ``complete`` last, then rename).

    Raises:
        DataError: The file cannot be written (the message names it).
    """
    try:
        with atomic_path(target) as tmp:
            _write_h5(tmp, rec, enc, image_dtype, fp)
    except OSError as exc:
        raise DataError(f"{target}: cannot write ({first_line(exc)})") from exc


def _write_h5(tmp: Path, rec: VolumeRecord, enc: Encoded, image_dtype: str, fp: _Fingerprint) -> None:
    d, _, rows, cols = rec.image.shape
    box = enc.box
    with h5py.File(tmp, "w") as f:
        datasets: dict[str, npt.NDArray[np.generic]] = {
            H5_IMAGE_KEY: enc.image,
            MINIMUM_KEY: enc.minimum,
            MOMENT_KEYS[0]: enc.count,
            MOMENT_KEYS[1]: enc.total,
            MOMENT_KEYS[2]: enc.total_sq,
        }
        if enc.classes is not None:
            datasets[CLASSES_KEY] = enc.classes
        for key, data in datasets.items():
            data = np.ascontiguousarray(data)
            # One chunk per slice for the slice-shaped datasets: a slice is one raw read.
            chunks = (1, *data.shape[1:]) if key in (H5_IMAGE_KEY, CLASSES_KEY) else None
            ds = f.create_dataset(key, data=data, chunks=chunks, track_times=False)
            ds.attrs["crc32"] = zlib.crc32(data.data)
        a = f.attrs
        a["format"] = PACKED_FORMAT
        a["format_version"] = PACKED_FORMAT_VERSION
        a["volume"] = rec.info.volume
        a["name"] = rec.info.name
        a["n_slices"] = d
        a["height"] = rows
        a["width"] = cols
        a["box"] = np.array([box.z0, box.z1, box.y0, box.y1, box.x0, box.x1], dtype=np.int64)
        a["image_dtype"] = image_dtype
        a["image_offsets"] = image_dtype == "float16"
        a["image_channels"] = ",".join(IMAGE_CHANNELS)
        if enc.classes is not None:
            a["mask_channels"] = ",".join(MASK_CHANNELS)
        a["moments_probe"] = moments_probe()
        a["source_files"] = fp.files
        a["source_bytes"] = fp.bytes
        a["source_mtime_ns"] = fp.mtime_ns
        f.flush()
        # Last: a file without it was cut short (readers refuse it, pack rewrites it).
        a["complete"] = True


def _copy_tables(folder: PackSource, out: Path) -> None:
    for name in TABLES:
        candidates = [d / name for d in folder.data_dirs] + [folder.root / name]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            continue
        try:
            with atomic_path(out / name) as tmp:
                shutil.copyfile(found, tmp)
        except OSError as exc:
            raise DataError(f"{out / name}: cannot copy {found} ({exc})") from exc


def _convention_of(folder: object) -> str | None:
    convention = getattr(folder, "label_convention", None)
    return convention.value if isinstance(convention, LabelConvention) else None
