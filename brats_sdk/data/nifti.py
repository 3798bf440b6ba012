"""Adapter for BraTS NIfTI folders: one folder per case, one file per modality.

Two namings are recognised (case-insensitive; ``.nii.gz`` or ``.nii``):

=======  =======================  ===============
channel  BraTS 2020 (and older)   BraTS 2021+
=======  =======================  ===============
flair    ``<case>_flair``         ``<case>-t2f``
t1       ``<case>_t1``            ``<case>-t1n``
t1ce     ``<case>_t1ce``          ``<case>-t1c``
t2       ``<case>_t2``            ``<case>-t2w``
labels   ``<case>_seg``           ``<case>-seg``
=======  =======================  ===============

Images come in :data:`~brats_sdk.constants.IMAGE_CHANNELS` order, the order the h5
adapter uses, and segmentation labels {1, 2, 4} become the one-hot channels of
:data:`~brats_sdk.constants.MASK_CHANNELS`. A segmentation is read whatever dtype it is
stored in (:mod:`brats_sdk.data.nifti_labels`: int16 and uint8 in the BraTS releases; a
float one is rounded when its values are integers up to float rounding). BraTS 2023
labels enhancing tumour 3 instead of 4: a segmentation with 3 and no 4 is read with 3
mapped to 4 (one log warning per case).

Orientation: the axial axis is the voxel axis whose direction
(:func:`nibabel.aff2axcodes`) is S or I. It becomes axis 0 of the returned volume and
the other two voxel axes keep their file order, so for BraTS files (240x240x155, LPS)
``image[k, c] = data[:, :, k]``: the (x, y) layout of the Kaggle h5 slices. Slice 0 is
the first index along that axis in the file. No resampling or flipping is done.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from brats_sdk.constants import IMAGE_CHANNELS, MASK_LABELS
from brats_sdk.data.broken import BrokenVolume
from brats_sdk.data.nifti_grid import grid_difference
from brats_sdk.data.nifti_labels import LABEL_TOLERANCE, LabelConvention, segmentation_labels
from brats_sdk.data.nifti_layout import (
    LABEL_KEY,
    NIFTI_SUFFIXES,
    case_files,
    find_case_dirs,
    looks_like_nifti_folder,
)
from brats_sdk.data.records import SliceRecord, VolumeInfo, VolumeRecord
from brats_sdk.errors import DataError, first_line
from brats_sdk.finite import describe_non_finite
from brats_sdk.summarise import summarise

__all__ = [
    "LABEL_KEY",
    "LABEL_TOLERANCE",
    "NIFTI_SUFFIXES",
    "NiftiFolder",
    "NiftiReference",
    "axial_axis",
    "find_case_dirs",
    "looks_like_nifti_folder",
]

logger = logging.getLogger(__name__)

_READ_ERRORS = (ImageFileError, HeaderDataError, OSError, EOFError, ValueError, zlib.error)

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class NiftiReference:
    """Geometry of a case's input files, for writing outputs aligned with them.

    Attributes:
        affine: ``(4, 4)`` voxel -> world (mm) matrix of the file.
        header: The file's NIfTI header (a copy; safe to modify).
        shape: Voxel shape of the file, in file axis order, e.g. (240, 240, 155).
    """

    affine: npt.NDArray[np.float64]
    header: nib.Nifti1Header
    shape: tuple[int, int, int]

    @property
    def axial_axis(self) -> int:
        """The file axis that the SDK's slice axis (axis 0) comes from."""
        return axial_axis(self.affine)

    @property
    def volume_shape(self) -> tuple[int, int, int]:
        """Shape ``(D, H, W)`` of a label map in SDK order (axial axis first)."""
        a = self.axial_axis
        rest = tuple(n for k, n in enumerate(self.shape) if k != a)
        return (self.shape[a], rest[0], rest[1])


# nibabel ships py.typed but leaves these unannotated: typed wrappers keep the
# ignores in one place.
def _axcodes(affine: npt.NDArray[np.floating]) -> tuple[str | None, ...]:
    codes: tuple[str | None, ...] = nib.aff2axcodes(np.asarray(affine, dtype=np.float64))  # type: ignore[no-untyped-call]  # unannotated in nibabel
    return codes


def _copy_header(header: nib.Nifti1Header) -> nib.Nifti1Header:
    copied: nib.Nifti1Header = header.copy()  # type: ignore[no-untyped-call]  # unannotated in nibabel
    return copied


def _zooms(header: nib.Nifti1Header) -> tuple[float, ...]:
    return tuple(float(z) for z in header.get_zooms())  # type: ignore[no-untyped-call]  # unannotated in nibabel


def _stored_dtype(img: nib.Nifti1Image) -> str:
    return str(img.get_data_dtype())  # type: ignore[no-untyped-call]  # unannotated in nibabel


def axial_axis(affine: npt.NDArray[np.floating]) -> int:
    """The voxel axis of ``affine`` closest to the superior-inferior direction.

    Args:
        affine: ``(4, 4)`` voxel -> world matrix.

    Returns:
        0, 1 or 2. Falls back to 2 (the BraTS convention) for a degenerate affine.
    """
    codes = _axcodes(affine)
    for k, code in enumerate(codes):
        if code in ("S", "I"):
            return k
    logger.warning("affine %s has no superior-inferior axis; using axis 2 as axial", codes)
    return 2


def _load_image(path: Path) -> nib.Nifti1Image:
    try:
        img = nib.load(path)
    except _READ_ERRORS as exc:
        raise DataError(f"{path}: not a readable NIfTI file ({first_line(exc)})") from exc
    if not isinstance(img, nib.Nifti1Image):  # Nifti2Image is a subclass
        raise DataError(f"{path}: not a NIfTI file (nibabel reads it as {type(img).__name__})")
    return img


def _shape3(path: Path, img: nib.Nifti1Image) -> tuple[int, int, int]:
    shape = tuple(int(n) for n in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        raise DataError(f"{path}: shape {tuple(img.shape)} is not a 3D volume")
    return (shape[0], shape[1], shape[2])


def _read_data(
    path: Path, img: nib.Nifti1Image, shape: tuple[int, int, int], *, as_float: bool
) -> npt.NDArray[np.generic]:
    try:
        if as_float:
            # Values beyond float32's range become inf here; the caller says what they were.
            with np.errstate(over="ignore"):
                data: npt.NDArray[np.generic] = img.get_fdata(dtype=np.float32, caching="unchanged")
        else:
            data = np.asarray(img.dataobj)
    except _READ_ERRORS as exc:
        raise DataError(f"{path}: cannot read the voxel data ({first_line(exc)})") from exc
    return data.reshape(shape)


def _to_sdk(data: npt.NDArray[np.generic], axis: int) -> npt.NDArray[np.generic]:
    """File axes -> (D, H, W): the axial axis first, the others in file order."""
    return np.moveaxis(data, axis, 0)


@dataclass(frozen=True, slots=True)
class _Case:
    volume: int
    name: str
    folder: Path


@dataclass(frozen=True, slots=True)
class _Indexed:
    files: dict[str, Path]
    info: VolumeInfo


class NiftiFolder:
    """Slices and volumes of a folder of BraTS NIfTI cases.

    Satisfies both :class:`~brats_sdk.data.protocols.SliceSource` and
    :class:`~brats_sdk.data.protocols.VolumeSource`. Cases are numbered 1..N in
    natural order of their folder names (``BraTS20_Training_001`` is volume 1 when
    the whole release is present); ``VolumeInfo.name`` is the folder name. The
    numbering is over every case found, before ``volumes``/``max_volumes`` filter.

    Construction only lists folders. The first call that needs slice counts
    (``len``, ``slice_key``, ``volumes``, reads) reads one header per case (about
    0.6 ms each). The files of a case are checked (modalities present, same shape,
    labels valid) when the case is loaded.

    Slice reads: :meth:`read_slice` loads the whole case (four files, about 0.3 s for a
    240x240x155 case) and keeps the most recently loaded volume in memory, so reading
    the slices of a volume in order loads each volume once. Random access across
    volumes reloads a volume per read: for shuffled training, convert the folder with
    :func:`brats_sdk.data.convert.convert_nifti_to_h5` first. Arrays returned are
    copies; changing them does not change the cache.

    Attributes:
        root: The folder given.
        data_dirs: The folders holding the case folders (``root`` when it is itself a
            case folder), where a release keeps ``survival_info.csv``.

    Args:
        root: A folder of case folders (or a parent of one, up to three levels up),
            or a single case folder.
        volumes: Keep only these volume numbers (unknown ones are an error).
        max_volumes: Keep only the first N volumes (after ``volumes``).
        require_mask: Whether each case must have a segmentation.
        skip_broken: Leave cases whose first file cannot be listed (a modality missing
            or doubled, a 4-D or unreadable image) out of :meth:`volumes` and the slice
            index and list them in :meth:`broken_volumes` (batch jobs); without it they
            raise.
        label_convention: What a label 3 in a segmentation means (refused by default).

    Raises:
        DataError: ``root`` is not a folder, holds no case folder, two case folders
            share a name, or a requested volume is absent.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        volumes: Iterable[int] | None = None,
        max_volumes: int | None = None,
        require_mask: bool = False,
        skip_broken: bool = False,
        label_convention: LabelConvention | str = LabelConvention.BRATS2017,
    ) -> None:
        self.root = Path(root)
        self.require_mask = require_mask
        self.skip_broken = skip_broken
        self._broken: dict[int, BrokenVolume] = {}
        self.label_convention = LabelConvention.parse(label_convention)
        dirs = find_case_dirs(self.root)
        if not dirs:
            raise DataError(
                f"{self.root}: no case folder with .nii.gz/.nii files under this folder"
            )
        seen: dict[str, Path] = {}
        for d in dirs:
            if d.name in seen:
                raise DataError(f"{d}: case name {d.name!r} also used by {seen[d.name]}")
            seen[d.name] = d
        cases = [_Case(volume=v, name=d.name, folder=d) for v, d in enumerate(dirs, start=1)]
        if volumes is not None:
            wanted = sorted(set(volumes))
            absent = [v for v in wanted if not 1 <= v <= len(cases)]
            if absent:
                raise DataError(
                    f"{self.root}: volumes {summarise(absent)} not found (has volumes 1..{len(cases)})"
                )
            cases = [cases[v - 1] for v in wanted]
        if max_volumes is not None:
            cases = cases[: max(0, max_volumes)]
        self._cases: dict[int, _Case] = {c.volume: c for c in cases}
        # The folders holding the case folders (``root`` itself for a single case folder):
        # where survival_info.csv and name_mapping.csv sit in the BraTS release.
        parents = {self.root} if dirs == [self.root] else {c.folder.parent for c in cases}
        self.data_dirs: tuple[Path, ...] = tuple(sorted(parents))
        self._indexed: dict[int, _Indexed] = {}
        self._keys: list[tuple[int, int]] | None = None
        self._cache: tuple[int, VolumeRecord] | None = None

    def __getstate__(self) -> dict[str, object]:
        """Pickle without the cached volume (DataLoader workers start with an empty cache)."""
        state = self.__dict__.copy()
        state["_cache"] = None
        return state

    # Case access
    def volume_numbers(self) -> tuple[int, ...]:
        """The volume numbers kept, in order, without opening any file.

        Unlike :meth:`volumes`, this does not read headers, so one malformed case does not
        hide the others (``brats inspect`` checks case by case with it).
        """
        return tuple(self._cases)

    def case_name(self, volume: int) -> str:
        """The case folder name of ``volume``."""
        return self._case(volume).name

    def case_dir(self, volume: int) -> Path:
        """The case folder of ``volume``."""
        return self._case(volume).folder

    def case_files(self, volume: int) -> dict[str, Path]:
        """The files of ``volume``: keys :data:`~brats_sdk.constants.IMAGE_CHANNELS` and, if present, ``seg``.

        Raises:
            DataError: The volume is unknown, or a modality is missing or doubled.
        """
        files = self._index(volume).files
        return {k: files[k] for k in (*IMAGE_CHANNELS, LABEL_KEY) if k in files}

    def volume_files(self, volume: int) -> list[Path]:
        """Every file :meth:`load_volume` reads for ``volume`` (modalities, then the segmentation if any).

        Raises:
            DataError: The volume is unknown, or a modality is missing or doubled.
        """
        return list(self.case_files(volume).values())

    def stored_dtypes(self, volume: int) -> dict[str, str]:
        """The data type each file of ``volume`` stores its voxels in, from its header.

        Args:
            volume: Volume number.

        Returns:
            Channel name (and ``seg``) -> dtype name as stored, e.g. ``{"flair": "int16",
            ..., "seg": "uint8"}``; :meth:`load_volume` returns float32 images and uint8
            masks whatever these are.

        Raises:
            DataError: The volume is unknown, a modality is missing or doubled, or a file
                is not NIfTI.
        """
        return {key: _stored_dtype(_load_image(path)) for key, path in self.case_files(volume).items()}

    def reference_image(self, volume: int) -> NiftiReference:
        """Affine, header and shape of ``volume``'s first modality (reads the header only).

        Raises:
            DataError: The volume is unknown or its file is not NIfTI.
        """
        path = self._index(volume).files[IMAGE_CHANNELS[0]]
        img = _load_image(path)
        return NiftiReference(
            affine=np.array(img.affine, dtype=np.float64),
            header=_copy_header(img.header),
            shape=_shape3(path, img),
        )

    # SliceSource
    def __len__(self) -> int:
        return len(self._slice_keys())

    def slice_key(self, i: int) -> tuple[int, int]:
        return self._slice_keys()[i]

    def read_slice(self, i: int) -> SliceRecord:
        v, s = self._slice_keys()[i]
        rec = self._cached(v)
        mask = None if rec.mask is None else rec.mask[s].copy()
        return SliceRecord(volume=v, index=s, image=rec.image[s].copy(), mask=mask)

    # VolumeSource
    def volumes(self) -> Sequence[VolumeInfo]:
        return tuple(self._index(v).info for v in self._listable())

    def broken_volumes(self) -> Sequence[BrokenVolume]:
        """The cases left out of :meth:`volumes` (only with ``skip_broken``), in volume order."""
        self._listable()
        return tuple(self._broken[v] for v in sorted(self._broken))

    def load_volume(self, volume: int) -> VolumeRecord:
        """Load ``volume``: image ``(D, 4, H, W)`` float32 raw intensities, mask ``(D, 3, H, W)`` uint8 or None.

        Raises:
            DataError: The volume is unknown, a modality is missing, shapes or orientations
                disagree, a file is not NIfTI, or the segmentation holds labels outside
                {0, 1, 2, 4} (a 3 unless ``label_convention`` says what it is) or non-integer
                values. The message names the file.
        """
        rec = self._cached(volume)
        mask = None if rec.mask is None else rec.mask.copy()
        return VolumeRecord(info=rec.info, image=rec.image.copy(), mask=mask)

    # Internals
    def _case(self, volume: int) -> _Case:
        try:
            return self._cases[volume]
        except KeyError:
            raise DataError(f"{self.root}: no volume {volume}") from None

    def _index(self, volume: int) -> _Indexed:
        hit = self._indexed.get(volume)
        if hit is not None:
            return hit
        case = self._case(volume)
        files = case_files(case.folder)
        if self.require_mask and LABEL_KEY not in files:
            raise DataError(
                f"{case.folder}: no segmentation ({case.name}_seg or {case.name}-seg .nii.gz/.nii)"
            )
        path = files[IMAGE_CHANNELS[0]]
        img = _load_image(path)
        shape = _shape3(path, img)
        axis = axial_axis(img.affine)
        info = VolumeInfo(
            volume=volume,
            name=case.name,
            n_slices=shape[axis],
            has_mask=LABEL_KEY in files,
            spacing=_spacing(img, axis),
        )
        self._indexed[volume] = _Indexed(files=files, info=info)
        return self._indexed[volume]

    def _listable(self) -> list[int]:
        """The volumes whose headers read (every volume, or a DataError, without ``skip_broken``)."""
        good: list[int] = []
        for v in self._cases:
            if v in self._broken:
                continue
            try:
                self._index(v)
            except DataError as exc:
                if not self.skip_broken:
                    raise
                logger.warning("skipping case %s: %s", self._cases[v].name, first_line(exc))
                self._broken[v] = BrokenVolume(v, self._cases[v].name, first_line(exc))
                continue
            good.append(v)
        return good

    def _slice_keys(self) -> list[tuple[int, int]]:
        if self._keys is None:
            self._keys = [(v, s) for v in self._listable() for s in range(self._index(v).info.n_slices)]
        return self._keys

    def _cached(self, volume: int) -> VolumeRecord:
        if self._cache is not None and self._cache[0] == volume:
            return self._cache[1]
        self._cache = None  # free the previous volume before loading the next
        rec = self._load(volume)
        self._cache = (volume, rec)
        return rec

    def _load(self, volume: int) -> VolumeRecord:
        entry = self._index(volume)
        files = entry.files
        first = files[IMAGE_CHANNELS[0]]
        first_img = _load_image(first)
        shape = _shape3(first, first_img)
        axis = axial_axis(first_img.affine)
        channels: list[F32] = []
        for name in IMAGE_CHANNELS:
            path = files[name]
            img = first_img if path == first else _load_image(path)
            _check_same_grid(path, img, first, shape, first_img.affine)
            data = _read_data(path, img, shape, as_float=True).astype(np.float32, copy=False)
            if not np.isfinite(data).all():
                # Read again as float64 (only on this error path) to say what the values are.
                raise DataError(f"{path}: {describe_non_finite(img.get_fdata(dtype=np.float64))}")
            channels.append(_to_sdk(data, axis).astype(np.float32, copy=False))
        image: F32 = np.ascontiguousarray(np.stack(channels, axis=1))
        mask: U8 | None = None
        if LABEL_KEY in files:
            mask = self._read_mask(volume, files[LABEL_KEY], first, shape, first_img.affine, axis)
        info = VolumeInfo(
            volume=volume,
            name=entry.info.name,
            n_slices=image.shape[0],
            has_mask=mask is not None,
            spacing=_spacing(first_img, axis),
        )
        logger.debug("%s: loaded %s from %s", info.name, image.shape, self._case(volume).folder)
        return VolumeRecord(info=info, image=image, mask=mask)

    def _read_mask(
        self,
        volume: int,
        path: Path,
        first: Path,
        shape: tuple[int, int, int],
        affine: npt.NDArray[np.float64],
        axis: int,
    ) -> U8:
        img = _load_image(path)
        _check_same_grid(path, img, first, shape, affine)
        raw = _read_data(path, img, shape, as_float=False)
        labels, mapped = segmentation_labels(path, raw, self.label_convention)
        if mapped:
            logger.debug("%s: label 3 read under the %s convention", path, self.label_convention.value)
        sdk = _to_sdk(labels, axis)
        mask: U8 = np.stack([sdk == lab for lab in MASK_LABELS], axis=1).astype(np.uint8)
        return mask


def _check_same_grid(
    path: Path, img: nib.Nifti1Image, first: Path, shape: tuple[int, int, int], affine: npt.NDArray[np.float64]
) -> None:
    got = _shape3(path, img)
    if got != shape:
        raise DataError(f"{path}: shape {got} differs from {first.name} {shape}")
    diff = grid_difference(img.affine, affine)
    if diff is not None:
        what, value, expected = diff
        raise DataError(f"{path}: {what} {value} differs from {first.name}'s {expected} (same case, same grid expected)")


def _spacing(img: nib.Nifti1Image, axis: int) -> tuple[float, float, float]:
    zooms = list(_zooms(img.header)[:3])
    rest = [z for k, z in enumerate(zooms) if k != axis]
    return (zooms[axis], rest[0], rest[1])
