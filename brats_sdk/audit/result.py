"""The result of an audit: one row per model or baseline, and the audit as a whole.

``audit.json``'s core is fixed for scripts: a top-level ``rows`` list whose objects carry
at least ``name``, ``bins``, ``n_patients``, ``acc_patient`` and ``acc_patient_ci``
(``[low, high]`` or null), and a top-level ``inflation`` (slice split minus patient
split, per-patient accuracy; null when not computed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["NETWORK_ROWS", "PATIENT_SPLIT", "SLICE_SPLIT", "Accuracy", "AuditResult", "AuditRow"]

SLICE_SPLIT = "slice split"
PATIENT_SPLIT = "patient split"
NETWORK_ROWS = (SLICE_SPLIT, PATIENT_SPLIT)

Interval = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Accuracy:
    """An accuracy with its count and 95 % interval.

    Attributes:
        value: The accuracy, or None when there is nothing to score.
        n: What it is over (patients or slices).
        ci: ``(low, high)``, or None.
        method: How ``ci`` was computed (``wilson`` or ``bootstrap over patients``).
    """

    value: float | None
    n: int
    ci: Interval | None
    method: str


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One row of the audit.

    Attributes:
        name: ``slice split``, ``patient split``, ``majority``, ``age only`` or ``age + volumes``.
        bins: ``quantile`` or ``brats``.
        patient: Per-patient accuracy (the vote for a network) with a Wilson interval.
        per_slice: Per-slice accuracy over all test slices, or None (clinical table only).
        per_slice_nonempty: Per-slice accuracy over slices with a tumour, or None.
        confusion: Per-patient confusion matrix (rows truth, columns prediction), or None.
        test_patients_in_training: Test patients that were also training patients, or None.
        n_train_patients: Patients the model or baseline was fitted on.
        subset: ``all`` or ``GTR`` (clinical table rows), else None.
        cutoffs: The bins' inner edges in days (per fold they vary: None).
        note: Anything a reader must know about the row.
    """

    name: str
    bins: str
    patient: Accuracy
    per_slice: Accuracy | None = None
    per_slice_nonempty: Accuracy | None = None
    confusion: tuple[tuple[int, ...], ...] | None = None
    test_patients_in_training: int | None = None
    n_train_patients: int | None = None
    subset: str | None = None
    cutoffs: tuple[float, ...] | None = None
    note: str = ""

    @property
    def n_patients(self) -> int:
        return self.patient.n

    def to_dict(self) -> dict[str, object]:
        """Plain JSON: the fixed core first, then the details."""

        def acc(prefix: str, a: Accuracy | None) -> dict[str, object]:
            return {
                prefix: None if a is None else a.value,
                f"{prefix}_n": None if a is None else a.n,
                f"{prefix}_ci": None if a is None or a.ci is None else list(a.ci),
                f"{prefix}_ci_method": None if a is None else a.method,
            }

        return {
            "name": self.name,
            "bins": self.bins,
            "subset": self.subset,
            "n_patients": self.patient.n,
            "acc_patient": self.patient.value,
            "acc_patient_ci": None if self.patient.ci is None else list(self.patient.ci),
            "acc_patient_ci_method": self.patient.method,
            **acc("acc_slice", self.per_slice),
            **acc("acc_slice_nonempty", self.per_slice_nonempty),
            "confusion": None if self.confusion is None else [list(r) for r in self.confusion],
            "test_patients_in_training": self.test_patients_in_training,
            "n_train_patients": self.n_train_patients,
            "cutoffs_days": None if self.cutoffs is None else list(self.cutoffs),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class AuditResult:
    """A whole audit.

    Attributes:
        kind: ``networks`` (both trainings and the baselines) or ``clinical-only``.
        rows: The rows, in display order.
        inflation: Slice split minus patient split, per-patient accuracy, or None.
        settings: What was run (data, bins, budget, seed, input size, fractions).
        counts: Patients used and left out per reason.
        seconds: Wall time per stage.
        notes: Plain-language remarks (the leak, the baselines).
    """

    kind: str
    rows: tuple[AuditRow, ...]
    inflation: float | None
    settings: Mapping[str, object] = field(default_factory=dict)
    counts: Mapping[str, object] = field(default_factory=dict)
    seconds: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def row(self, name: str, subset: str | None = None, bins: str | None = None) -> AuditRow | None:
        """The first row with this name (and subset and bins, when given)."""
        for r in self.rows:
            if r.name == name and (subset is None or r.subset == subset) and (bins is None or r.bins == bins):
                return r
        return None
