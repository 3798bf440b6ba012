"""Checking a Kaggle-layout folder: what it holds and every problem found.

A folder where no slice holds a ``mask`` is unlabelled, which is fine for prediction
(``brats convert`` of cases without a segmentation writes one); a folder where only some
slices hold one has a problem per slice without.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py

from brats_sdk.constants import H5_IMAGE_KEY, H5_MASK_KEY, MASK_CHANNELS, META_CSV, SURVIVAL_CSV
from brats_sdk.data.h5_folder import H5SliceFolder, read_h5_slice
from brats_sdk.errors import DataError

__all__ = ["Inspection", "inspect_h5_folder"]


@dataclass(frozen=True, slots=True)
class Inspection:
    """What :func:`inspect_h5_folder` found.

    Attributes:
        root: The folder inspected.
        n_volumes: Number of volumes.
        n_slices: Number of slice files.
        slices_per_volume: Counter of slices-per-volume values.
        image_shapes: Counter of image shapes (as stored, e.g. ``(240, 240, 4)``).
        image_dtypes: Counter of stored image dtypes.
        mask_dtypes: Counter of stored mask dtypes.
        slices_with_mask: Slices that hold a ``mask`` dataset (0: an unlabelled folder).
        voxels_per_channel: Mask voxel counts per channel name.
        slices_with_tumour: Slices whose mask is not empty.
        tables: Which of ``meta_data.csv`` / ``survival_info.csv`` were found.
        problems: One line per problem, each naming its file.
    """

    root: Path
    n_volumes: int
    n_slices: int
    slices_per_volume: dict[int, int]
    image_shapes: dict[str, int]
    image_dtypes: dict[str, int]
    mask_dtypes: dict[str, int]
    slices_with_mask: int
    voxels_per_channel: dict[str, int]
    slices_with_tumour: int
    tables: dict[str, bool]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def labelled(self) -> bool:
        """Whether the folder holds masks (training needs them, prediction does not)."""
        return self.slices_with_mask > 0


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
    voxels = dict.fromkeys(MASK_CHANNELS, 0)
    tumour = 0
    unlabelled: list[Path] = []
    for info in folder.volumes():
        per_volume[info.n_slices] += 1
        if info.missing_slices:
            problems.append(f"{root}: volume {info.volume} is missing slices {list(info.missing_slices)}")
    for i in range(len(folder)):
        path = folder.slice_path(i)
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
            if mask is None:
                unlabelled.append(path)
            else:
                counts = mask.reshape(mask.shape[0], -1).sum(axis=1)
                for name, c in zip(MASK_CHANNELS, counts, strict=True):
                    voxels[name] += int(c)
                tumour += int(counts.sum() > 0)
        if progress is not None:
            progress(1)
    n_masked = sum(mask_dtypes.values())
    if n_masked:
        problems.extend(f"{path}: no '{H5_MASK_KEY}' dataset, unlike other slices" for path in unlabelled)
    elif require_masks and unlabelled:
        problems.append(f"{root}: unlabelled, no slice file has a '{H5_MASK_KEY}' dataset")
    if len(shapes) > 1:
        problems.append(f"{root}: images of different shapes {dict(shapes)}")
    data_dirs = folder.data_dirs
    tables = {name: any((d / name).exists() for d in data_dirs) for name in (META_CSV, SURVIVAL_CSV)}
    return Inspection(
        root=root,
        n_volumes=len(folder.volumes()),
        n_slices=len(folder),
        slices_per_volume=dict(per_volume),
        image_shapes=dict(shapes),
        image_dtypes=dict(img_dtypes),
        mask_dtypes=dict(mask_dtypes),
        slices_with_mask=n_masked,
        voxels_per_channel=voxels,
        slices_with_tumour=tumour,
        tables=tables,
        problems=tuple(problems),
    )
