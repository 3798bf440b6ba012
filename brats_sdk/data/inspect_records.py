"""Records of ``brats inspect``: what a data folder holds, whatever its layout.

Kept apart from the inspectors so that the h5 one (:mod:`brats_sdk.data.inspection`) and the
NIfTI / packed one (:mod:`brats_sdk.data.inspect_volumes`) fill the same record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Inspection", "VolumeCounts"]


@dataclass(frozen=True, slots=True)
class VolumeCounts:
    """What ``brats inspect`` counted in one volume.

    Attributes:
        volume: Volume number.
        name: Case name (the case folder of a NIfTI source, ``volume_<V>`` otherwise).
        n_slices: Axial slices read.
        has_mask: Whether the volume has ground-truth labels.
        voxels_per_channel: Labelled voxels per mask channel name (NCR, ED, ET).
        slices_with_tumour: Slices with at least one labelled voxel.
    """

    volume: int
    name: str
    n_slices: int
    has_mask: bool
    voxels_per_channel: dict[str, int]
    slices_with_tumour: int


@dataclass(frozen=True, slots=True)
class Inspection:
    """What ``brats inspect`` found in a data folder, whatever its layout.

    Counters are keyed by text (a dtype name, a shape) and count files for h5 and NIfTI
    sources (one file per slice, one file per modality) and volumes for packed ones.

    Attributes:
        root: The folder inspected.
        layout: ``h5``, ``nifti`` or ``packed``.
        n_volumes: Number of volumes found (those that fail to read included).
        n_slices: Axial slices read (slice files for the h5 layout).
        slices_per_volume: Counter of slices-per-volume values.
        image_shapes: Counter of image shapes as stored: ``(240, 240, 4)`` per h5 slice,
            ``(240, 240, 155)`` per NIfTI case, ``(155, 4, 240, 240)`` per packed volume.
        image_dtypes: Counter of image dtypes as stored in the files (e.g. ``int16``).
        mask_dtypes: Counter of mask (segmentation) dtypes as stored in the files.
        dtypes_as_stored: False when the reader cannot tell the stored dtypes and the
            dtype counters hold those of the arrays it returns (float32 / uint8).
        volumes_with_mask: Volumes with ground-truth labels (0: an unlabelled folder).
        slices_with_mask: Slices with ground-truth labels.
        voxels_per_channel: Labelled voxels per mask channel name, over the folder.
        slices_with_tumour: Slices with at least one labelled voxel.
        volumes: Counts per volume in volume order, over what could be read (a NIfTI
            or packed volume that fails to load is left out; its problem says why).
        tables: Which of the tables the layout keeps beside its data were found.
        problems: One line per problem, each naming its file.
    """

    root: Path
    layout: str
    n_volumes: int
    n_slices: int
    slices_per_volume: dict[int, int]
    image_shapes: dict[str, int]
    image_dtypes: dict[str, int]
    mask_dtypes: dict[str, int]
    dtypes_as_stored: bool
    volumes_with_mask: int
    slices_with_mask: int
    voxels_per_channel: dict[str, int]
    slices_with_tumour: int
    volumes: tuple[VolumeCounts, ...]
    tables: dict[str, bool]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    @property
    def labelled(self) -> bool:
        """Whether the folder holds masks (training needs them, prediction does not)."""
        return self.volumes_with_mask > 0 or self.slices_with_mask > 0
