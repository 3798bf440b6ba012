"""How much of a survival accuracy is leakage and how much is age.

- :func:`run_audit`: the survival classifier trained twice (split by slice, as the paper
  does, and by patient) beside the majority, age-only and age + volumes baselines.
- :func:`clinical_only_audit`: the baselines alone on a survival table, by cross-validation.
- :func:`fit_baseline`: one baseline fitted on training patients (the report uses it).
"""

from __future__ import annotations

from brats_sdk.audit.baselines import (
    BaselineName,
    FittedBaseline,
    PatientFeatures,
    fit_baseline,
    predict_baseline,
)
from brats_sdk.audit.clinical_only import clinical_only_audit, table_counts
from brats_sdk.audit.intervals import bootstrap_over_patients, wilson_interval
from brats_sdk.audit.result import Accuracy, AuditResult, AuditRow
from brats_sdk.audit.run import AuditConfig, run_audit
from brats_sdk.audit.write import AuditFiles, accuracy_text, write_audit

__all__ = [
    "Accuracy",
    "AuditConfig",
    "AuditFiles",
    "AuditResult",
    "AuditRow",
    "BaselineName",
    "FittedBaseline",
    "PatientFeatures",
    "accuracy_text",
    "bootstrap_over_patients",
    "clinical_only_audit",
    "fit_baseline",
    "predict_baseline",
    "run_audit",
    "table_counts",
    "wilson_interval",
    "write_audit",
]
