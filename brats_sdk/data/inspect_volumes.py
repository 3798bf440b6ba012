"""Checking a NIfTI or packed folder volume by volume: what it holds and every problem found.

Each volume is loaded through the reader that training and prediction use
(:class:`~brats_sdk.data.nifti.NiftiFolder`, :class:`~brats_sdk.data.packed.PackedFolder`),
so the inspection checks exactly what they will read. A volume that fails to load is one
problem line naming its file, and the other volumes are still read.

As for the h5 layout, a folder where no volume has labels is unlabelled, which is fine for
prediction; a folder where only some have labels has a problem per volume without.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from brats_sdk.constants import MASK_CHANNELS, META_CSV, NAME_MAPPING_CSV, SURVIVAL_CSV
from brats_sdk.data.inspect_records import Inspection, VolumeCounts
from brats_sdk.data.nifti import LABEL_KEY, NiftiFolder
from brats_sdk.data.nifti_labels import LabelConvention
from brats_sdk.data.packed import PackedFolder
from brats_sdk.data.records import VolumeRecord
from brats_sdk.data.sources import DataFormat
from brats_sdk.errors import DataError

__all__ = ["StoredDtypes", "inspect_nifti_folder", "inspect_packed_folder", "volume_counts"]


@runtime_checkable
class StoredDtypes(Protocol):
    """A source that can tell the dtypes its files store, which loading hides (it returns float32 / uint8)."""

    def stored_dtypes(self, volume: int) -> Mapping[str, str]:
        """File role -> dtype name as stored; the role ``seg`` holds the labels, the others images."""
        ...


def volume_counts(rec: VolumeRecord) -> VolumeCounts:
    """Label voxels per mask channel and slices with tumour of one loaded volume.

    Args:
        rec: A volume as a reader returns it (mask ``(D, 3, H, W)`` one-hot or None).

    Returns:
        Its counts; all zero when it has no mask.
    """
    voxels = dict.fromkeys(MASK_CHANNELS, 0)
    tumour = 0
    if rec.mask is not None:
        per_channel = rec.mask.sum(axis=(0, 2, 3), dtype=np.int64)
        voxels = {name: int(n) for name, n in zip(MASK_CHANNELS, per_channel, strict=True)}
        tumour = int(rec.mask.any(axis=(1, 2, 3)).sum())
    return VolumeCounts(
        volume=rec.info.volume,
        name=rec.info.name,
        n_slices=int(rec.image.shape[0]),
        has_mask=rec.mask is not None,
        voxels_per_channel=voxels,
        slices_with_tumour=tumour,
    )


class _Tally:
    """Counters over the volumes read (private, mutable)."""

    def __init__(self) -> None:
        self.volumes: list[VolumeCounts] = []
        self.shapes: Counter[str] = Counter()
        self.slice_shapes: Counter[str] = Counter()
        self.image_dtypes: Counter[str] = Counter()
        self.mask_dtypes: Counter[str] = Counter()

    def add(self, rec: VolumeRecord, stored_shape: tuple[int, ...], dtypes: Mapping[str, str]) -> None:
        self.volumes.append(volume_counts(rec))
        self.shapes[str(tuple(stored_shape))] += 1
        self.slice_shapes[str(tuple(rec.image.shape[2:]))] += 1
        for role, dtype in dtypes.items():
            (self.mask_dtypes if role == LABEL_KEY else self.image_dtypes)[dtype] += 1

    def result(
        self,
        root: Path,
        layout: str,
        n_volumes: int,
        tables: dict[str, bool],
        problems: list[str],
        *,
        dtypes_as_stored: bool = True,
    ) -> Inspection:
        labelled = [v for v in self.volumes if v.has_mask]
        voxels = dict.fromkeys(MASK_CHANNELS, 0)
        for v in labelled:
            for name, n in v.voxels_per_channel.items():
                voxels[name] += n
        if len(self.slice_shapes) > 1:
            problems.append(f"{root}: volumes with different slice shapes {dict(self.slice_shapes)}")
        return Inspection(
            root=root,
            layout=layout,
            n_volumes=n_volumes,
            n_slices=sum(v.n_slices for v in self.volumes),
            slices_per_volume=dict(Counter(v.n_slices for v in self.volumes)),
            image_shapes=dict(self.shapes),
            image_dtypes=dict(self.image_dtypes),
            mask_dtypes=dict(self.mask_dtypes),
            dtypes_as_stored=dtypes_as_stored,
            volumes_with_mask=len(labelled),
            slices_with_mask=sum(v.n_slices for v in labelled),
            voxels_per_channel=voxels,
            slices_with_tumour=sum(v.slices_with_tumour for v in labelled),
            volumes=tuple(self.volumes),
            tables=tables,
            problems=tuple(problems),
        )


def inspect_nifti_folder(
    root: Path,
    *,
    require_masks: bool = False,
    progress: Callable[[int], None] | None = None,
    label_convention: LabelConvention | str = LabelConvention.BRATS2017,
) -> Inspection:
    """Load every case of a NIfTI folder and report its contents and problems.

    Image and segmentation dtypes are those stored in the files (e.g. int16 images, an
    int16 or uint8 segmentation); image shapes are the files' (e.g. ``(240, 240, 155)``).

    Args:
        root: A folder of case folders, a parent of one, or a single case folder (as for
            :class:`~brats_sdk.data.nifti.NiftiFolder`).
        require_masks: Make an unlabelled folder (no case has a segmentation) a problem
            too: a folder to train on. Either way, a case without a segmentation beside
            cases with one is.
        progress: Called with 1 after each case.
        label_convention: What a label 3 in a segmentation means (a problem by default).

    Returns:
        The inspection; problems (a missing modality, shapes that disagree, bad labels,
        an unreadable file, ...) do not raise.

    Raises:
        DataError: ``root`` holds no case folder, or two case folders share a name.
    """
    source = NiftiFolder(root, require_mask=False, label_convention=label_convention)
    tally = _Tally()
    problems: list[str] = []
    unlabelled: list[int] = []
    volumes = source.volume_numbers()
    for v in volumes:
        try:
            rec = source.load_volume(v)
            dtypes = source.stored_dtypes(v)
            shape = source.reference_image(v).shape
        except DataError as exc:
            problems.append(_line(exc))
        else:
            tally.add(rec, shape, dtypes)
            if rec.mask is None:
                unlabelled.append(v)
        if progress is not None:
            progress(1)
    if len(unlabelled) < len(tally.volumes):
        problems.extend(
            f"{source.case_dir(v)}: no segmentation ({source.case_name(v)}_seg.nii.gz), unlike other cases"
            for v in unlabelled
        )
    elif require_masks and unlabelled:
        problems.append(f"{root}: unlabelled, no case folder has a segmentation (<case>_seg.nii.gz)")
    folders = [source.root, *source.data_dirs]
    tables = {t: any((d / t).is_file() for d in folders) for t in (SURVIVAL_CSV, NAME_MAPPING_CSV)}
    return tally.result(root, DataFormat.NIFTI.value, len(volumes), tables, problems)


def inspect_packed_folder(
    root: Path, *, require_masks: bool = False, progress: Callable[[int], None] | None = None
) -> Inspection:
    """Load every volume of a ``brats pack`` folder and report its contents and problems.

    Only the public reader is used (:func:`~brats_sdk.data.sources.open_source`'s
    :class:`~brats_sdk.data.packed.PackedFolder`), so this works whatever the packed file
    format. Dtypes are those stored when the reader reports them
    (:class:`StoredDtypes`), else those of the arrays it returns.

    Args:
        root: The packed folder.
        require_masks: Make an unlabelled folder a problem too (a folder to train on).
        progress: Called with 1 after each volume.

    Returns:
        The inspection; a volume that fails to open or load is a problem, not an exception.

    Raises:
        DataError: The folder holds no packed volume.
    """
    source = PackedFolder(root, require_mask=False, skip_broken=True)
    tally = _Tally()
    # A file whose header does not read (truncated, not packed) is a problem like any other.
    problems: list[str] = [b.reason for b in source.broken_volumes()]
    unlabelled: list[int] = []
    infos = source.volumes()
    for info in infos:
        try:
            rec = source.load_volume(info.volume)
            dtypes = _dtypes(source, info.volume, rec)
        except DataError as exc:
            problems.append(_line(exc))
        else:
            tally.add(rec, rec.image.shape, dtypes)
            if rec.mask is None:
                unlabelled.append(info.volume)
        if progress is not None:
            progress(1)
    if len(unlabelled) < len(tally.volumes):
        problems.extend(
            f"{source.volume_path(v)}: no labels, unlike other volumes" for v in unlabelled
        )
    elif require_masks and unlabelled:
        problems.append(f"{root}: unlabelled, no packed volume has labels")
    tables = {t: (source.root / t).is_file() for t in (META_CSV, SURVIVAL_CSV)}
    return tally.result(
        root, DataFormat.PACKED.value, len(infos), tables, problems, dtypes_as_stored=isinstance(source, StoredDtypes)
    )


def _dtypes(source: object, volume: int, rec: VolumeRecord) -> Mapping[str, str]:
    if isinstance(source, StoredDtypes):
        return source.stored_dtypes(volume)
    as_read = {"image": str(rec.image.dtype)}
    return as_read if rec.mask is None else {**as_read, LABEL_KEY: str(rec.mask.dtype)}


def _line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
