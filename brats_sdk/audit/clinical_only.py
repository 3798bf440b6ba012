"""The baselines on a survival table alone: stratified k-fold cross-validation over patients.

For a table without images (such as the real BraTS 2020 ``survival_info.csv`` here) the
networks cannot be audited, but the yardstick can: the majority class and a logistic
regression on age, for both bin schemes (``quantile``: tertiles fitted inside each
training fold, the paper's; ``brats``: 304.2 / 456.25 days) and for all patients and for
gross-total-resection patients only (the BraTS challenge's population). Censored
patients and patients without days or age are left out and counted. The accuracy pools
every patient's out-of-fold prediction; its interval is Wilson's over patients.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from brats_sdk.audit.baselines import BaselineName, PatientFeatures, predict_baseline
from brats_sdk.audit.checks import MIN_PATIENTS, check_bins, check_records
from brats_sdk.audit.result import AuditResult, AuditRow
from brats_sdk.audit.scoring import patient_accuracy
from brats_sdk.bins import BinMethod, SurvivalBins
from brats_sdk.data.clinical import SurvivalRecord, read_survival_csv
from brats_sdk.errors import ConfigError, DataError

__all__ = ["CLINICAL_BASELINES", "SUBSETS", "clinical_only_audit", "table_counts"]

logger = logging.getLogger(__name__)

SUBSETS = ("all", "GTR")
CLINICAL_BASELINES = (BaselineName.MAJORITY, BaselineName.AGE_ONLY)


def table_counts(records: Sequence[SurvivalRecord]) -> dict[str, object]:
    """What a survival table holds: rows, censored, without days or age, resection classes."""
    return {
        "rows": len(records),
        "censored": sum(r.censored for r in records),
        "missing_days": sum(r.survival_days is None and not r.censored for r in records),
        "missing_age": sum(r.age is None for r in records),
        "resection": dict(sorted(Counter(r.resection for r in records).items())),
    }


def _usable(records: Sequence[SurvivalRecord], subset: str) -> list[SurvivalRecord]:
    return [
        r for r in records
        if not r.censored and r.survival_days is not None and r.age is not None and (subset == "all" or r.resection == subset)
    ]


def _cv_rows(
    patients: Sequence[SurvivalRecord], method: BinMethod, subset: str, folds: int, seed: int, where: str
) -> list[AuditRow]:
    days = np.asarray([r.survival_days for r in patients], dtype=np.float64)
    ages = [float(r.age or 0.0) for r in patients]
    overall = check_bins(days.tolist(), method, f"{where} ({subset})")
    strata = overall.assign_many(days)
    if np.bincount(strata).min() < folds:
        raise DataError(f"{where} ({subset}): a {method.value} bin has fewer than {folds} patients; use fewer folds")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    true: dict[BaselineName, list[int]] = {b: [] for b in CLINICAL_BASELINES}
    pred: dict[BaselineName, list[int]] = {b: [] for b in CLINICAL_BASELINES}
    fold_acc: dict[BaselineName, list[float]] = {b: [] for b in CLINICAL_BASELINES}
    for train_idx, test_idx in cv.split(np.zeros(len(patients)), strata):
        # Quantile bins come from the training fold alone; the test fold is binned by them.
        bins = check_bins(days[train_idx].tolist(), method, f"{where} ({subset}, a training fold)")
        labels = bins.assign_many(days)

        def feats(idx: np.ndarray, labels: np.ndarray = labels) -> list[PatientFeatures]:
            return [PatientFeatures(int(i), ages[i], int(labels[i])) for i in idx]

        train, test = feats(train_idx), feats(test_idx)
        for name in CLINICAL_BASELINES:
            p = predict_baseline(name, train, test)
            t = [f.bin for f in test]
            true[name].extend(t)
            pred[name].extend(int(x) for x in p)
            fold_acc[name].append(float(np.mean(np.asarray(t) == p)))
    rows = []
    for name in CLINICAL_BASELINES:
        acc, confusion = patient_accuracy(true[name], pred[name], overall.n_bins)
        folds_text = ", ".join(f"{a:.3f}" for a in fold_acc[name])
        rows.append(AuditRow(
            name=name.value, bins=method.value, subset=subset, patient=acc, confusion=confusion,
            cutoffs=overall.cutoffs if method is BinMethod.BRATS else None,
            note=f"stratified {folds}-fold CV over patients (seed {seed}); fold accuracies {folds_text}",
        ))
    return rows


def clinical_only_audit(
    survival_csv: Path | str,
    *,
    folds: int = 5,
    seed: int = 0,
    methods: Sequence[BinMethod] = (BinMethod.QUANTILE, BinMethod.BRATS),
) -> AuditResult:
    """Majority and age-only baselines on a survival table by stratified k-fold CV.

    Args:
        survival_csv: ``survival_info.csv``.
        folds: Folds (>= 2).
        seed: Seed of the fold assignment.
        methods: Bin schemes.

    Returns:
        Rows per bin scheme, subset (``all``, ``GTR``) and baseline; ``inflation`` None.
        A subset with too few patients for ``folds`` folds is skipped with a note.

    Raises:
        DataError: No rows, every patient censored, too few usable patients, an empty bin.
        ConfigError: ``folds`` < 2.
    """
    if folds < 2:
        raise ConfigError(f"folds must be >= 2, got {folds}")
    t0 = time.perf_counter()
    where = str(survival_csv)
    records = read_survival_csv(Path(survival_csv))
    check_records(records, where)
    rows: list[AuditRow] = []
    notes: list[str] = []
    usable_n: dict[str, int] = {}
    for subset in SUBSETS:
        patients = _usable(records, subset)
        usable_n[subset] = len(patients)
        if subset != "all" and len(patients) < max(MIN_PATIENTS, 3 * folds):
            notes.append(f"{subset}: {len(patients)} patients, too few for {folds}-fold CV; skipped")
            continue
        for method in methods:
            rows.extend(_cv_rows(patients, BinMethod.parse(method), subset, folds, seed, where))
    all_days = [float(r.survival_days) for r in _usable(records, "all") if r.survival_days is not None]
    brats_counts = np.bincount(SurvivalBins.brats().assign_many(all_days), minlength=3)
    counts = {**table_counts(records), "usable": usable_n, "brats_bin_counts": [int(c) for c in brats_counts]}
    logger.info("clinical-only audit of %s: %d rows in %.1f s", where, len(rows), time.perf_counter() - t0)
    return AuditResult(
        kind="clinical-only", rows=tuple(rows), inflation=None,
        settings={"survival_csv": where, "folds": folds, "seed": seed, "bins": [BinMethod.parse(m).value for m in methods]},
        counts=counts, seconds={"total": time.perf_counter() - t0}, notes=tuple(notes),
    )
