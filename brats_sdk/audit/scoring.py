"""Rows of an audit from predictions: a network's three accuracies, the baselines', overlap.

Per-patient accuracies carry a Wilson interval (patients are independent); per-slice ones
a bootstrap over patients (a patient's slices are not).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from brats_sdk.audit.baselines import BaselineName, PatientFeatures, predict_baseline
from brats_sdk.audit.intervals import bootstrap_over_patients, wilson_interval
from brats_sdk.audit.result import Accuracy, AuditRow
from brats_sdk.data.splits import Split, SplitMode
from brats_sdk.metrics.levels import VolumeSlices
from brats_sdk.metrics.survival import majority_vote

__all__ = [
    "BOOTSTRAP",
    "WILSON",
    "PatientCounts",
    "baseline_rows",
    "network_row",
    "patient_accuracy",
    "patient_counts",
    "training_volumes",
]

WILSON = "wilson"
BOOTSTRAP = "bootstrap over patients"


@dataclass(frozen=True, slots=True)
class PatientCounts:
    """One scored test patient of a network run (kept in ``run.json`` for ``--resume``).

    Attributes:
        volume: Volume number.
        true_bin: Its survival bin.
        slices: Test slices of the patient.
        nonempty: Of them, slices with a tumour.
        correct_slices: Slices whose argmax is the true bin.
        correct_nonempty: Of the non-empty slices, those whose argmax is the true bin.
        vote: The patient's bin by vote over non-empty slices, or None when all are empty.
    """

    volume: int
    true_bin: int
    slices: int
    nonempty: int
    correct_slices: int
    correct_nonempty: int
    vote: int | None


def patient_counts(test_slices: Mapping[int, VolumeSlices]) -> tuple[PatientCounts, ...]:
    """Per-patient counts of a network's test predictions, in volume order."""
    out = []
    for v in sorted(test_slices):
        s = test_slices[v]
        if s.probs.shape[0] == 0:
            continue
        hit = s.probs.argmax(axis=1) == s.true_bin
        keep = ~s.empty
        vote = majority_vote(s.probs[keep])[0] if keep.any() else None
        out.append(PatientCounts(v, s.true_bin, int(hit.size), int(keep.sum()), int(hit.sum()), int(hit[keep].sum()), vote))
    return tuple(out)


def training_volumes(split: Split) -> set[int]:
    """Patients with slices in the training part (a slice split puts nearly all there)."""
    if split.mode is SplitMode.SLICE:
        return {v for v, _ in split.train_slices}
    return set(split.train)


def patient_accuracy(
    true_bins: Sequence[int], predicted: Sequence[int], n_bins: int
) -> tuple[Accuracy, tuple[tuple[int, ...], ...]]:
    """Accuracy over patients with its Wilson interval, and the confusion matrix."""
    t = np.asarray(true_bins, dtype=np.int64)
    p = np.asarray(predicted, dtype=np.int64)
    confusion = np.zeros((n_bins, n_bins), dtype=np.int64)
    np.add.at(confusion, (t, p), 1)
    correct, n = int((t == p).sum()), int(t.size)
    acc = Accuracy(correct / n if n else None, n, wilson_interval(correct, n), WILSON)
    return acc, tuple(tuple(int(x) for x in row) for row in confusion)


def _slice_accuracy(counts: Sequence[tuple[int, int]], seed: int) -> Accuracy:
    correct = sum(c for c, _ in counts)
    total = sum(t for _, t in counts)
    return Accuracy(correct / total if total else None, total, bootstrap_over_patients(counts, seed=seed), BOOTSTRAP)


def network_row(
    name: str,
    bins: str,
    patients: Sequence[PatientCounts],
    *,
    train_volumes: set[int],
    n_bins: int,
    cutoffs: tuple[float, ...],
    seed: int = 0,
    note: str = "",
) -> AuditRow:
    """A network's row: per slice, per non-empty slice, per patient (vote), and how many of
    the voted test patients were also training patients."""
    voted = [p for p in patients if p.vote is not None]
    patient, confusion = patient_accuracy([p.true_bin for p in voted], [p.vote for p in voted if p.vote is not None], n_bins)
    return AuditRow(
        name=name,
        bins=bins,
        patient=patient,
        per_slice=_slice_accuracy([(p.correct_slices, p.slices) for p in patients], seed),
        per_slice_nonempty=_slice_accuracy([(p.correct_nonempty, p.nonempty) for p in patients], seed),
        confusion=confusion,
        test_patients_in_training=sum(1 for p in voted if p.volume in train_volumes),
        n_train_patients=len(train_volumes),
        cutoffs=cutoffs,
        note=note,
    )


def baseline_rows(
    train: Sequence[PatientFeatures],
    test: Sequence[PatientFeatures],
    *,
    bins: str,
    n_bins: int,
    cutoffs: tuple[float, ...] | None,
    slice_counts: Mapping[int, tuple[int, int]] | None = None,
    names: Sequence[BaselineName] = tuple(BaselineName),
    seed: int = 0,
) -> list[AuditRow]:
    """The baselines' rows: each fitted on ``train`` only and scored on ``test``.

    Args:
        train: Training patients (features and bins).
        test: Test patients, the same the network is scored on.
        bins: ``quantile`` or ``brats``.
        n_bins: Number of bins.
        cutoffs: The bins' inner edges.
        slice_counts: Per test volume, ``(slices, non-empty slices)`` of the network's test
            part: a baseline's per-patient prediction then counts once per slice, for
            per-slice accuracies comparable with the network's.
        names: Which baselines.
        seed: Seed of the bootstrap.
    """
    rows = []
    train_ids = {p.volume for p in train}
    for name in names:
        pred = predict_baseline(name, train, test)
        patient, confusion = patient_accuracy([p.bin for p in test], [int(x) for x in pred], n_bins)
        per_slice = per_nonempty = None
        if slice_counts is not None:
            hits = {p.volume: int(b == p.bin) for p, b in zip(test, pred, strict=True)}
            per_slice = _slice_accuracy([(hits[v] * slice_counts[v][0], slice_counts[v][0]) for v in hits], seed)
            per_nonempty = _slice_accuracy([(hits[v] * slice_counts[v][1], slice_counts[v][1]) for v in hits], seed)
        rows.append(AuditRow(
            name=name.value, bins=bins, patient=patient, per_slice=per_slice, per_slice_nonempty=per_nonempty,
            confusion=confusion, test_patients_in_training=sum(1 for p in test if p.volume in train_ids),
            n_train_patients=len(train), cutoffs=cutoffs,
        ))
    return rows
