"""Survival-classification metrics: accuracy, per-bin scores, ROC/AUC, the slice vote.

Bins are class indices ``0..n_bins-1`` (see :class:`~brats_sdk.bins.SurvivalBins`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score, roc_curve

from brats_sdk.errors import ConfigError, DataError
from brats_sdk.metrics._arrays import as_array, as_int_vector

__all__ = ["SurvivalScores", "brats_challenge_accuracy", "majority_vote", "survival_scores"]

RocCurve = tuple[list[float], list[float]]


@dataclass(frozen=True, slots=True)
class SurvivalScores:
    """Scores of a set of survival-bin predictions.

    Attributes:
        accuracy: Fraction of samples whose predicted bin is the true bin.
        n: Number of samples.
        per_bin_accuracy: Per true bin, the fraction predicted correctly (the bin's
            recall); None for a bin with no sample.
        per_bin_n: Per true bin, the number of samples.
        confusion: ``n_bins x n_bins`` counts, rows true bin, columns predicted bin.
        auc: Per bin, one-vs-rest ROC AUC of that bin's probability; None when no
            probabilities were given or only one class (all in or all out of the bin)
            is present.
        roc: Per bin, the ROC curve as ``(fpr, tpr)`` lists; None where ``auc`` is None.
    """

    accuracy: float
    n: int
    per_bin_accuracy: tuple[float | None, ...]
    per_bin_n: tuple[int, ...]
    confusion: list[list[int]]
    auc: tuple[float | None, ...]
    roc: tuple[RocCurve | None, ...]

    @property
    def macro_auc(self) -> float | None:
        """Mean of the defined per-bin AUCs; None when none is defined."""
        defined = [a for a in self.auc if a is not None]
        return float(np.mean(defined)) if defined else None


def _check_bins(bins: npt.NDArray[np.int64], name: str, n_bins: int) -> None:
    if bins.size and (int(bins.min()) < 0 or int(bins.max()) >= n_bins):
        raise DataError(
            f"{name} holds bins in [{int(bins.min())}, {int(bins.max())}], expected 0..{n_bins - 1}"
        )


def _check_probs(probs: npt.ArrayLike, rows: int | None, n_bins: int) -> npt.NDArray[np.float64]:
    p = as_array(probs).astype(np.float64)
    if p.ndim != 2 or p.shape[1] != n_bins or (rows is not None and p.shape[0] != rows):
        want = f"({'S' if rows is None else rows}, {n_bins})"
        raise DataError(f"probs has shape {p.shape}, expected {want}")
    if not bool(np.isfinite(p).all()):
        raise DataError("probs holds NaN or infinite values")
    return p


def survival_scores(
    true_bins: npt.ArrayLike,
    pred_bins: npt.ArrayLike,
    probs: npt.ArrayLike | None,
    n_bins: int,
) -> SurvivalScores:
    """Accuracy, per-bin accuracy, confusion matrix and one-vs-rest ROC/AUC.

    Args:
        true_bins: True bin per sample, ``(N,)`` integers in ``0..n_bins-1``.
        pred_bins: Predicted bin per sample, ``(N,)``.
        probs: Predicted probabilities (or any scores) ``(N, n_bins)``, or None to
            skip ROC/AUC.
        n_bins: Number of bins (at least 2).

    Returns:
        The scores. A bin without samples has ``per_bin_accuracy`` None; a bin
        that is present in all or in none of the samples has ``auc``/``roc`` None.

    Raises:
        ConfigError: ``n_bins`` < 2.
        DataError: No samples, lengths differ, a bin out of range, or ``probs`` of
            the wrong shape or not finite.
    """
    if n_bins < 2:
        raise ConfigError(f"n_bins must be at least 2, got {n_bins}")
    t = as_int_vector(true_bins, "true_bins")
    p = as_int_vector(pred_bins, "pred_bins")
    if t.size != p.size:
        raise DataError(f"true_bins has {t.size} samples, pred_bins has {p.size}")
    if t.size == 0:
        raise DataError("no samples to score")
    _check_bins(t, "true_bins", n_bins)
    _check_bins(p, "pred_bins", n_bins)
    pr = None if probs is None else _check_probs(probs, t.size, n_bins)

    cm = np.bincount(t * n_bins + p, minlength=n_bins * n_bins).reshape(n_bins, n_bins)
    per_bin_n = tuple(int(x) for x in cm.sum(axis=1))
    per_bin_acc = tuple(
        None if per_bin_n[b] == 0 else int(cm[b, b]) / per_bin_n[b] for b in range(n_bins)
    )
    aucs: list[float | None] = []
    rocs: list[RocCurve | None] = []
    for b in range(n_bins):
        y = t == b
        if pr is None or bool(y.all()) or not bool(y.any()):
            aucs.append(None)
            rocs.append(None)
            continue
        fpr, tpr, _ = roc_curve(y, pr[:, b])
        aucs.append(float(roc_auc_score(y, pr[:, b])))
        rocs.append(([float(x) for x in fpr], [float(x) for x in tpr]))
    return SurvivalScores(
        accuracy=int(np.trace(cm)) / t.size,
        n=int(t.size),
        per_bin_accuracy=per_bin_acc,
        per_bin_n=per_bin_n,
        confusion=[[int(x) for x in row] for row in cm],
        auc=tuple(aucs),
        roc=tuple(rocs),
    )


def majority_vote(probs: npt.ArrayLike) -> tuple[int, tuple[int, ...]]:
    """A volume's bin from its slices' probabilities: one vote per slice, most votes wins.

    Each slice votes for its argmax bin. When several bins share the most votes,
    the one with the larger probability summed over all slices wins; a remaining
    exact tie goes to the lowest bin index.

    Args:
        probs: ``(S, n_bins)`` per-slice probabilities (or scores).

    Returns:
        ``(winning_bin, votes)`` with ``votes[b]`` the number of slices whose argmax is ``b``.

    Raises:
        DataError: ``probs`` is not 2-D with at least one bin, holds NaN, or has no
            slice (S == 0, e.g. every slice was dropped for an empty mask).
    """
    p = as_array(probs)
    if p.ndim != 2 or p.shape[1] == 0:
        raise DataError(f"probs has shape {p.shape}, expected (S, n_bins)")
    if p.shape[0] == 0:
        raise DataError("no slices to vote over (S == 0)")
    p = _check_probs(p, None, p.shape[1])
    votes = np.bincount(p.argmax(axis=1), minlength=p.shape[1])
    tied = np.flatnonzero(votes == votes.max())
    sums = p.sum(axis=0)[tied]
    winner = int(tied[int(np.argmax(sums))])
    return winner, tuple(int(v) for v in votes)


def brats_challenge_accuracy(
    true_bins: npt.ArrayLike,
    pred_bins: npt.ArrayLike,
    resection: Sequence[str],
) -> tuple[float | None, int]:
    """Accuracy as the BraTS survival challenge counts it: gross-total-resection patients only.

    A patient counts when its resection is ``"GTR"`` (case and surrounding spaces
    ignored); ``"STR"``, ``"NA"`` and missing values (NaN) do not. The challenge also
    requires a known age; filter on age before calling.

    Args:
        true_bins: True bin per patient, ``(N,)``.
        pred_bins: Predicted bin per patient, ``(N,)``.
        resection: Extent of resection per patient, length ``N``.

    Returns:
        ``(accuracy, count)`` over the GTR patients; ``(None, 0)`` when there is none.

    Raises:
        DataError: The three inputs differ in length or the bins are not 1-D integers.
    """
    t = as_int_vector(true_bins, "true_bins")
    p = as_int_vector(pred_bins, "pred_bins")
    if not (t.size == p.size == len(resection)):
        raise DataError(
            f"lengths differ: true_bins {t.size}, pred_bins {p.size}, resection {len(resection)}"
        )
    gtr = np.array([_is_gtr(r) for r in resection], dtype=bool)
    count = int(gtr.sum())
    if count == 0:
        return None, 0
    return int(np.count_nonzero(t[gtr] == p[gtr])) / count, count


def _is_gtr(value: object) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return str(value).strip().upper() == "GTR"
