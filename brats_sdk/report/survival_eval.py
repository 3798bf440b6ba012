"""Survival part of a report: true bins from the survival CSV, slice and patient scores.

True bins come from the model's own bins (``predictions.json`` ``bins``) applied to
``Survival_days``. Censored patients (``ALIVE (N days later)``), patients without days
and patients without a row are left out and counted per reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from brats_sdk.bins import SurvivalBins
from brats_sdk.data.clinical import SurvivalRecord
from brats_sdk.metrics.survival import brats_challenge_accuracy, survival_scores
from brats_sdk.report.folder import PredictedVolume
from brats_sdk.report.report_data import SurvivalReport

__all__ = ["TrueBin", "score_survival", "true_bins"]

logger = logging.getLogger(__name__)

NO_ROW = "no survival row"
CENSORED = "censored"
NO_DAYS = "no survival days"


class TrueBin(NamedTuple):
    """A volume's true survival bin, or why it has none.

    Attributes:
        bin: The bin, or None.
        note: Why there is no bin (``no survival row``, ``censored``, ``no survival days``).
        resection: ``Extent_of_Resection`` (``GTR``, ``STR`` or ``NA``).
    """

    bin: int | None
    note: str | None
    resection: str


def true_bins(
    volumes: Sequence[PredictedVolume], records: Sequence[SurvivalRecord], bins: SurvivalBins
) -> dict[int, TrueBin]:
    """True bin of each volume, by its ``patient_id``.

    Args:
        volumes: Rows of ``predictions.csv``.
        records: Rows of ``survival_info.csv``.
        bins: The model's survival bins.

    Returns:
        Volume -> :class:`TrueBin`.
    """
    by_id = {r.patient_id: r for r in records}
    out: dict[int, TrueBin] = {}
    for v in volumes:
        rec = by_id.get(v.patient_id)
        if rec is None:
            out[v.volume] = TrueBin(None, NO_ROW, "NA")
        elif rec.censored:
            out[v.volume] = TrueBin(None, CENSORED, rec.resection)
        elif rec.survival_days is None:
            out[v.volume] = TrueBin(None, NO_DAYS, rec.resection)
        else:
            out[v.volume] = TrueBin(bins.assign(rec.survival_days), None, rec.resection)
    return out


def score_survival(
    volumes: Sequence[PredictedVolume],
    truth: Mapping[int, TrueBin],
    slice_probs: Mapping[int, npt.NDArray[np.float64]],
    bins: SurvivalBins,
) -> SurvivalReport:
    """Slice- and patient-level survival scores.

    Per slice: every slice the survival network saw (non-empty predicted mask), its
    argmax against the patient's true bin. Per patient: the vote of ``predictions.csv``
    (``predicted_bin``) against the true bin; ROC/AUC use the mean probability over the
    slices used (from the mask file, else the ``prob_<label>`` columns). The BraTS
    challenge accuracy counts gross-total-resection patients only.

    Args:
        volumes: Rows of ``predictions.csv``.
        truth: True bin per volume (see :func:`true_bins`).
        slice_probs: Per volume, ``(S, n_bins)`` probabilities of the slices used.
        bins: The model's survival bins.

    Returns:
        The :class:`SurvivalReport`; levels with nothing to score are None.
    """
    n_bins = bins.n_bins
    excluded = Counter(t.note for t in truth.values() if t.bin is None and t.note is not None)
    s_true: list[npt.NDArray[np.int64]] = []
    s_probs: list[npt.NDArray[np.float64]] = []
    p_true: list[int] = []
    p_pred: list[int] = []
    p_probs: list[npt.NDArray[np.float64] | None] = []
    resection: list[str] = []
    not_predicted: list[int] = []
    for v in volumes:
        t = truth.get(v.volume)
        if t is None or t.bin is None:
            continue
        probs = slice_probs.get(v.volume)
        if probs is not None and probs.shape[0]:
            s_true.append(np.full(probs.shape[0], t.bin, dtype=np.int64))
            s_probs.append(probs)
        if v.predicted_bin is None:
            not_predicted.append(v.volume)
            continue
        p_true.append(t.bin)
        p_pred.append(v.predicted_bin)
        resection.append(t.resection)
        if probs is not None and probs.shape[0]:
            p_probs.append(probs.mean(axis=0))
        elif v.mean_probs is not None:
            p_probs.append(np.asarray(v.mean_probs, dtype=np.float64))
        else:
            p_probs.append(None)
    per_slice = None
    if s_true:
        probs_all = np.concatenate(s_probs)
        per_slice = survival_scores(np.concatenate(s_true), probs_all.argmax(axis=1), probs_all, n_bins)
    per_patient = None
    challenge: tuple[float | None, int] = (None, 0)
    if p_true:
        have_all = all(p is not None for p in p_probs)
        stacked = np.stack([p for p in p_probs if p is not None]) if have_all else None
        per_patient = survival_scores(p_true, p_pred, stacked, n_bins)
        challenge = brats_challenge_accuracy(p_true, p_pred, resection)
    n_truth = sum(1 for t in truth.values() if t.bin is not None)
    if not_predicted:
        logger.info("%d patient(s) with a true bin have no predicted bin", len(not_predicted))
    return SurvivalReport(
        labels=bins.labels,
        ranges=tuple(bins.range_text(b) for b in range(n_bins)),
        per_slice=per_slice,
        per_slice_patients=len(s_true),
        per_patient=per_patient,
        challenge_accuracy=challenge[0],
        challenge_n=challenge[1],
        n_with_truth=n_truth,
        excluded={k: excluded.get(k, 0) for k in (NO_ROW, CENSORED, NO_DAYS)},
        not_predicted=tuple(not_predicted),
    )
