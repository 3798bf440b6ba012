"""Volumes a source found but cannot list: a batch skips them and says why.

A batch job (``brats predict``, ``brats pack``, ``brats convert``) must treat every
per-volume problem the same way, whatever the layout: the volume is skipped, its reason
is reported and the others go on. Some problems show only when a volume is read (an
unreadable h5 slice); others already when the source lists its volumes (a NIfTI case
without a modality or with a 4-D image, a truncated packed file). A source opened with
``skip_broken=True`` keeps the latter out of ``volumes()`` and the slice index, and
lists them here instead; one opened without it raises on them, as training wants (a
model is not trained on a silently smaller cohort).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["BrokenVolume", "ListsBroken", "broken_volumes"]


@dataclass(frozen=True, slots=True)
class BrokenVolume:
    """A volume found in a folder but unreadable before any of its data is loaded.

    Attributes:
        volume: Volume number (as the source numbers it).
        name: Case name (the case folder for NIfTI, ``volume_<V>`` otherwise).
        reason: One line naming the bad file and the problem.
    """

    volume: int
    name: str
    reason: str


@runtime_checkable
class ListsBroken(Protocol):
    """A source that can skip volumes it cannot list."""

    def broken_volumes(self) -> Sequence[BrokenVolume]:
        """The volumes left out of ``volumes()``, in volume order."""
        ...


def broken_volumes(source: object) -> tuple[BrokenVolume, ...]:
    """The volumes ``source`` found but left out of its listing (none for sources that
    list every volume they find)."""
    if isinstance(source, ListsBroken):
        return tuple(sorted(source.broken_volumes(), key=lambda b: b.volume))
    return ()
