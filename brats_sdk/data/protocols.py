"""Protocols every dataset adapter satisfies. Adapters need no base class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from brats_sdk.data.records import SliceRecord, VolumeInfo, VolumeRecord

__all__ = ["DataSource", "SliceSource", "VolumeSource"]


@runtime_checkable
class SliceSource(Protocol):
    """Random access to axial slices, in (volume, slice) numeric order."""

    def __len__(self) -> int:
        """Number of slices."""
        ...

    def slice_key(self, i: int) -> tuple[int, int]:
        """The (volume, slice index) of slice ``i`` without reading it."""
        ...

    def read_slice(self, i: int) -> SliceRecord:
        """Read slice ``i``.

        Raises:
            DataError: The file is unreadable or malformed (the message names it).
        """
        ...


@runtime_checkable
class VolumeSource(Protocol):
    """Lazy access to whole volumes."""

    def volumes(self) -> Sequence[VolumeInfo]:
        """Every volume, in numeric order, without loading any."""
        ...

    def load_volume(self, volume: int) -> VolumeRecord:
        """Load one volume: image ``(D, 4, H, W)`` float32, mask ``(D, 3, H, W)`` uint8 or None.

        Raises:
            DataError: A file of the volume is unreadable or malformed, or the volume is unknown.
        """
        ...


@runtime_checkable
class DataSource(SliceSource, VolumeSource, Protocol):
    """A source offering both slice and volume access (every built-in adapter does)."""
