"""One pass over a slice source: normalisation statistics and per-slice facts.

Training needs each volume's normalisation statistics (computed exactly as
prediction computes them) and, to filter slices, which slices hold brain and which
hold tumour. Both come from one read of every slice, whose result can be saved to
the run folder and reused on resume.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from brats_sdk.atomic import atomic_write_text
from brats_sdk.data.crops import Box, box_of
from brats_sdk.data.normalise import (
    NormStats,
    SliceMoments,
    brain_mask,
    slice_moments,
    stats_from_moments,
)
from brats_sdk.data.protocols import SliceSource
from brats_sdk.errors import DataError

__all__ = ["SCAN_FORMAT", "SliceFacts", "SourceScan", "scan_source"]

# 2: slices carry their brain box.
SCAN_FORMAT = 2


def _box(values: list[int]) -> Box | None:
    if not values:
        return None
    y0, y1, x0, x1 = (int(v) for v in values)
    return y0, y1, x0, x1


@dataclass(frozen=True, slots=True)
class SliceFacts:
    """What one slice holds: brain pixels, tumour pixels per mask channel and the brain's
    bounding box ``(y0, y1, x0, x1)`` (None without brain)."""

    volume: int
    index: int
    brain_pixels: int
    tumour_pixels: tuple[int, ...]
    brain_box: Box | None = None

    @property
    def has_brain(self) -> bool:
        return self.brain_pixels > 0

    @property
    def has_tumour(self) -> bool:
        return sum(self.tumour_pixels) > 0


@dataclass(frozen=True, slots=True)
class SourceScan:
    """Per-volume statistics and per-slice facts of a source, in the source's slice order."""

    stats: dict[int, NormStats]
    slices: tuple[SliceFacts, ...]

    def to_json(self, path: Path) -> None:
        """Write atomically to ``path``."""
        payload = {
            "format": SCAN_FORMAT,
            "stats": {str(v): s.to_dict() for v, s in self.stats.items()},
            "slices": [
                [f.volume, f.index, f.brain_pixels, list(f.tumour_pixels), list(f.brain_box or ())] for f in self.slices
            ],
        }
        atomic_write_text(path, json.dumps(payload))

    @classmethod
    def from_json(cls, path: Path) -> SourceScan:
        try:
            payload = json.loads(path.read_text())
            if payload.get("format") != SCAN_FORMAT:
                raise DataError(f"{path}: scan format {payload.get('format')!r}, expected {SCAN_FORMAT}")
            stats = {int(v): NormStats.from_dict(d) for v, d in payload["stats"].items()}
            slices = tuple(
                SliceFacts(int(a), int(b), int(c), tuple(int(x) for x in t), _box(box)) for a, b, c, t, box in payload["slices"]
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not a valid scan file ({exc})") from exc
        return cls(stats, slices)


def scan_source(source: SliceSource, *, progress: Callable[[int], None] | None = None) -> SourceScan:
    """Read every slice of ``source`` once.

    Args:
        source: Any slice source; slices of a volume must be contiguous (all adapters are).
        progress: Called with the number of slices just read (for a progress bar).

    Returns:
        The scan.

    Raises:
        DataError: A slice file is bad (the message names it).
    """
    moments: dict[int, list[SliceMoments]] = {}
    facts: list[SliceFacts] = []
    for i in range(len(source)):
        rec = source.read_slice(i)
        brain = brain_mask(rec.image)
        m = slice_moments(rec.image, brain)
        moments.setdefault(rec.volume, []).append(m)
        tumour = (0, 0, 0) if rec.mask is None else tuple(int(x) for x in rec.mask.reshape(rec.mask.shape[0], -1).sum(axis=1))
        facts.append(SliceFacts(rec.volume, rec.index, m.count, tumour, box_of(brain)))
        if progress is not None:
            progress(1)
    stats = {v: stats_from_moments(ms, n_channels=len(ms[0].total)) for v, ms in moments.items()}
    return SourceScan(stats, tuple(facts))

