"""Which ground-truth volume each predicted volume is scored against.

Volume numbers alone are not enough for NIfTI folders: :class:`~brats_sdk.data.nifti.NiftiFolder`
numbers cases 1..N in name order, so predictions made on a copy of three cases number
them 1..3 while the full folder of the same cases numbers them otherwise. NIfTI sources
name their volumes after the case folders, and ``brats predict`` records that name, so
cases are matched by name whenever both sides have case names. The h5 and packed layouts
name volumes only ``volume_<V>``; then (and for prediction folders written before names
were recorded) volumes are matched by number, which ``brats convert`` keeps.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from brats_sdk.data.records import VolumeInfo
from brats_sdk.report.folder import PredictedVolume

__all__ = ["is_case_name", "match_ground_truth"]

logger = logging.getLogger(__name__)


def is_case_name(name: str, volume: int) -> bool:
    """Whether ``name`` names a case, rather than being empty or the ``volume_<V>`` placeholder of h5 and packed sources."""
    return bool(name) and name != f"volume_{volume}"


def match_ground_truth(
    predicted: Sequence[PredictedVolume], truth: Sequence[VolumeInfo]
) -> dict[int, int]:
    """Predicted volume number -> ground-truth volume number, for the volumes that have one.

    Args:
        predicted: The rows of a prediction folder.
        truth: The volumes of the ground-truth source.

    Returns:
        By case name when the predictions and the ground truth both name cases (a
        prediction whose case is absent from the ground truth has no entry, even if its
        number is there); otherwise by volume number.
    """
    truth_names = {t.name: t.volume for t in truth if is_case_name(t.name, t.volume)}
    named = [p for p in predicted if is_case_name(p.name, p.volume)]
    if truth_names and named:
        matched = {p.volume: truth_names[p.name] for p in named if p.name in truth_names}
        moved = sum(1 for p, t in matched.items() if p != t)
        logger.info(
            "ground truth matched by case name: %d of %d predicted volumes (%d under another number)",
            len(matched),
            len(predicted),
            moved,
        )
        return matched
    numbers = {t.volume for t in truth}
    return {p.volume: p.volume for p in predicted if p.volume in numbers}
