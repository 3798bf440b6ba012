"""Refusing ground truth that is not of the volumes the predictions were made from.

Volume numbers repeat across cohorts and every Kaggle volume has the same shape, so a
report given another cohort's labelled folder would score it without a word.
``brats predict`` records each volume's image shape and fingerprint
(:mod:`brats_sdk.predict.provenance`); the report compares the ground truth's images with
them before scoring a volume and refuses on a mismatch, unless told to go on (``--force``).
Prediction folders written before the record existed are scored as before.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from brats_sdk.data.fingerprint import fingerprints_match, image_fingerprint
from brats_sdk.data.records import VolumeRecord
from brats_sdk.errors import DataError

__all__ = ["GroundTruthMismatchError", "check_ground_truth"]

logger = logging.getLogger(__name__)


class GroundTruthMismatchError(DataError):
    """The ground truth's images are not those the predictions were made from."""


def check_ground_truth(meta: Mapping[str, object], volume: int, truth: VolumeRecord, *, where: str) -> None:
    """Raise unless ``truth`` holds the images predicted volume ``volume`` was made from.

    Args:
        meta: ``predictions.json`` as a dict (its ``inputs`` and ``input``).
        volume: The predicted volume's number.
        truth: The ground-truth volume matched to it, loaded (images and mask).
        where: The ground-truth folder, for the message.

    Raises:
        GroundTruthMismatchError: Another shape or other images (one line naming both
            volumes, the two folders and what differs).
    """
    inputs = meta.get("inputs")
    made_from = inputs.get(str(volume)) if isinstance(inputs, dict) else None
    if not isinstance(made_from, dict):
        logger.debug("volume %d: predictions hold no record of their input; not checked", volume)
        return
    shape = list(truth.image.shape[:1]) + list(truth.image.shape[2:])
    problem = None
    if made_from.get("shape") != shape:
        problem = f"shape {tuple(shape)} instead of {tuple(made_from.get('shape') or ())}"
    else:
        stored = made_from.get("fingerprint")
        if isinstance(stored, list) and not fingerprints_match(stored, image_fingerprint(truth.image)):
            problem = "other image intensities"
    if problem is not None:
        raise GroundTruthMismatchError(
            f"{where}: volume {truth.info.volume} ({truth.info.name}) is not the image predicted as volume {volume} "
            f"({made_from.get('name')}) from {meta.get('input') or 'the input folder'}: {problem}; give the ground "
            "truth of the predicted cohort, or --force to score it anyway"
        )
