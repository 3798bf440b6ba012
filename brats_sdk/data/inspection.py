"""Checking a data folder of any layout: what it holds and every problem found.

:func:`inspect_folder` detects the layout as every command does
(:func:`~brats_sdk.data.sources.detect_format`) and hands NIfTI and packed folders to
:mod:`brats_sdk.data.inspect_volumes`; the Kaggle h5 layout is checked here, slice file
by slice file (:func:`inspect_h5_folder`).

A folder where no slice holds a ``mask`` is unlabelled, which is fine for prediction
(``brats convert`` of cases without a segmentation writes one); a folder where only some
slices hold one has a problem per slice without.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py

from brats_sdk.constants import H5_IMAGE_KEY, H5_MASK_KEY, MASK_CHANNELS, META_CSV, SURVIVAL_CSV
from brats_sdk.data.convert_state import folder_problems
from brats_sdk.data.folder_census import odd_slice_name_problems
from brats_sdk.data.h5_folder import H5SliceFolder, read_h5_slice, scan_h5_folder
from brats_sdk.data.inspect_records import Inspection, VolumeCounts
from brats_sdk.data.inspect_volumes import inspect_nifti_folder, inspect_packed_folder
from brats_sdk.data.nifti import NiftiFolder
from brats_sdk.data.nifti_labels import LabelConvention
from brats_sdk.data.packed import PackedFolder
from brats_sdk.data.sources import DataFormat, detect_format
from brats_sdk.errors import DataError
from brats_sdk.summarise import summarise

__all__ = [
    "Inspection",
    "InspectionPlan",
    "VolumeCounts",
    "inspect_folder",
    "inspect_h5_folder",
    "plan_inspection",
]


@dataclass(frozen=True, slots=True)
class InspectionPlan:
    """What :func:`inspect_folder` will read, known before it reads anything (for a progress bar).

    Attributes:
        layout: The folder's layout (never AUTO).
        steps: How many times :func:`inspect_folder` calls its ``progress``.
        unit: What one step is: ``slice files``, ``cases`` or ``volumes``.
    """

    layout: DataFormat
    steps: int
    unit: str


def plan_inspection(root: Path, *, fmt: DataFormat | str = DataFormat.AUTO) -> InspectionPlan:
    """Detect the layout of ``root`` and count what inspecting it reads, from folder listings.

    Args:
        root: A data folder of any layout (or a parent of one).
        fmt: Its layout, or AUTO to detect it.

    Returns:
        The plan.

    Raises:
        DataError: No data of the layout under ``root`` (with AUTO: of any layout).
    """
    kind = DataFormat.parse(fmt)
    layout = detect_format(root) if kind is DataFormat.AUTO else kind
    if layout is DataFormat.NIFTI:
        return InspectionPlan(layout, len(NiftiFolder(root).volume_numbers()), "cases")
    if layout is DataFormat.PACKED:
        return InspectionPlan(layout, len(PackedFolder(root, require_mask=False, skip_broken=True).volumes()), "volumes")
    try:
        n_files = len(scan_h5_folder(root))
    except DataError as exc:
        if kind is DataFormat.AUTO and "no volume_<V>_slice_<S>.h5" in str(exc):
            raise DataError(
                f"{root}: no data under this folder: no volume_<V>_slice_<S>.h5 file (Kaggle), "
                "no case folder with .nii.gz/.nii files (NIfTI), no volume_<V>.h5 (brats pack)"
            ) from exc
        raise
    return InspectionPlan(layout, n_files, "slice files")


def inspect_folder(
    root: Path,
    *,
    fmt: DataFormat | str = DataFormat.AUTO,
    require_masks: bool = False,
    progress: Callable[[int], None] | None = None,
    label_convention: LabelConvention | str = LabelConvention.BRATS2017,
) -> Inspection:
    """Read every file of a data folder, whatever its layout, and report contents and problems.

    ``label_convention`` says what a label 3 in NIfTI segmentations means (a problem by default).

    Args:
        root: A Kaggle h5 folder (or a parent), a NIfTI folder (a folder of case folders,
            a parent of one, or one case folder) or a ``brats pack`` folder.
        fmt: Its layout, or AUTO to detect it as the other commands do.
        require_masks: Make an unlabelled folder a problem too (a folder to train on).
        progress: Called with 1 per step of :func:`plan_inspection`'s plan.

    Returns:
        The inspection; problems in the files do not raise.

    Raises:
        DataError: No data of the layout under ``root``.
    """
    kind = DataFormat.parse(fmt)
    layout = detect_format(root) if kind is DataFormat.AUTO else kind
    if layout is DataFormat.NIFTI:
        return inspect_nifti_folder(root, require_masks=require_masks, progress=progress, label_convention=label_convention)
    if layout is DataFormat.PACKED:
        return inspect_packed_folder(root, require_masks=require_masks, progress=progress)
    return inspect_h5_folder(root, require_masks=require_masks, progress=progress)


def inspect_h5_folder(
    root: Path, *, require_masks: bool = False, progress: Callable[[int], None] | None = None
) -> Inspection:
    """Read every slice file under ``root`` and report its contents and problems.

    Args:
        root: A folder in the Kaggle layout (the data folder or a parent).
        require_masks: Make an unlabelled folder a problem too (a folder to train on).
            Either way, a slice without a mask in a folder where others have one is.
        progress: Called with 1 after each file.

    Returns:
        The inspection; problems do not raise.

    Raises:
        DataError: ``root`` holds no slice file at all.
    """
    folder = H5SliceFolder(root)
    problems: list[str] = []
    per_volume: Counter[int] = Counter()
    shapes: Counter[str] = Counter()
    img_dtypes: Counter[str] = Counter()
    mask_dtypes: Counter[str] = Counter()
    voxels: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(MASK_CHANNELS, 0))
    tumour: Counter[int] = Counter()
    read: Counter[int] = Counter()
    masked: Counter[int] = Counter()
    unlabelled: list[Path] = []
    problems.extend(odd_slice_name_problems(root))
    for info in folder.volumes():
        per_volume[info.n_slices] += 1
        if info.missing_slices:
            problems.append(f"{root}: volume {info.volume} is missing slices {summarise(info.missing_slices)}")
    for i in range(len(folder)):
        path = folder.slice_path(i)
        volume = folder.slice_key(i)[0]
        try:
            with h5py.File(path, "r") as f:
                if H5_IMAGE_KEY in f:
                    shapes[str(tuple(f[H5_IMAGE_KEY].shape))] += 1
                    img_dtypes[str(f[H5_IMAGE_KEY].dtype)] += 1
                if H5_MASK_KEY in f:
                    mask_dtypes[str(f[H5_MASK_KEY].dtype)] += 1
        except OSError:
            pass  # read_h5_slice below reports the file
        try:
            _, mask = read_h5_slice(path, require_mask=False)
        except DataError as exc:
            problems.append(str(exc))
        else:
            read[volume] += 1
            if mask is None:
                unlabelled.append(path)
            else:
                masked[volume] += 1
                counts = mask.reshape(mask.shape[0], -1).sum(axis=1)
                for name, c in zip(MASK_CHANNELS, counts, strict=True):
                    voxels[volume][name] += int(c)
                tumour[volume] += int(counts.sum() > 0)
        if progress is not None:
            progress(1)
    n_masked = sum(mask_dtypes.values())
    if n_masked:
        problems.extend(f"{path}: no '{H5_MASK_KEY}' dataset, unlike other slices" for path in unlabelled)
    elif require_masks and unlabelled:
        problems.append(f"{root}: unlabelled, no slice file has a '{H5_MASK_KEY}' dataset")
    if len(shapes) > 1:
        problems.append(f"{root}: images of different shapes {dict(shapes)}")
    problems.extend(folder_problems(folder.slice_path(i) for i in range(len(folder))))
    data_dirs = folder.data_dirs
    tables = {name: any((d / name).exists() for d in data_dirs) for name in (META_CSV, SURVIVAL_CSV)}
    volumes = tuple(
        VolumeCounts(
            volume=info.volume,
            name=info.name,
            n_slices=read[info.volume],
            has_mask=masked[info.volume] > 0,
            voxels_per_channel=dict(voxels[info.volume]),
            slices_with_tumour=tumour[info.volume],
        )
        for info in folder.volumes()
    )
    total = dict.fromkeys(MASK_CHANNELS, 0)
    for v in volumes:
        for name, n in v.voxels_per_channel.items():
            total[name] += n
    return Inspection(
        root=root,
        layout=DataFormat.H5.value,
        n_volumes=len(folder.volumes()),
        n_slices=len(folder),
        slices_per_volume=dict(per_volume),
        image_shapes=dict(shapes),
        image_dtypes=dict(img_dtypes),
        mask_dtypes=dict(mask_dtypes),
        dtypes_as_stored=True,
        volumes_with_mask=sum(1 for v in volumes if v.has_mask),
        slices_with_mask=n_masked,
        voxels_per_channel=total,
        slices_with_tumour=sum(tumour.values()),
        volumes=volumes,
        tables=tables,
        problems=tuple(problems),
    )
