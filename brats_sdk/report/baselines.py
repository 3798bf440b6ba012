"""The majority and age-only baselines beside a report's survival accuracy.

Both are fitted on the survival model's training patients (its split, recorded in the
checkpoint and copied into ``predictions.json``: train and validation volumes), with the
model's bins, and scored on the patients the model's per-patient accuracy is over. Where
the model does not beat age alone, the report says so in plain words.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence

from brats_sdk.audit.baselines import BaselineName, PatientFeatures
from brats_sdk.audit.scoring import baseline_rows, patient_accuracy
from brats_sdk.bins import SurvivalBins
from brats_sdk.data.clinical import PatientIdMap, SurvivalRecord
from brats_sdk.report.folder import PredictedVolume
from brats_sdk.report.report_data import ModelSummary, SurvivalReport
from brats_sdk.report.survival_eval import TrueBin

__all__ = ["with_baselines"]

logger = logging.getLogger(__name__)

_NAMES = (BaselineName.MAJORITY, BaselineName.AGE_ONLY)


def with_baselines(
    report: SurvivalReport,
    volumes: Sequence[PredictedVolume],
    truth: Mapping[int, TrueBin],
    records: Sequence[SurvivalRecord],
    bins: SurvivalBins,
    models: Sequence[ModelSummary],
) -> SurvivalReport:
    """``report`` with the model's per-patient row, the baselines' rows and a plain note.

    Training volumes are matched to ``records`` by the default patient id
    (``BraTS20_Training_{V:03d}``); censored patients and patients without days or age
    are left out of the fit.
    """
    survival = next((m for m in models if m.role == "survival"), None)
    train_ids = () if survival is None or survival.train_volumes is None else survival.train_volumes
    by_id = {r.patient_id: r for r in records}
    id_map = PatientIdMap()
    train: list[PatientFeatures] = []
    for v in train_ids:
        r = by_id.get(id_map.patient_id(v))
        if r is not None and not r.censored and r.survival_days is not None and r.age is not None:
            train.append(PatientFeatures(v, r.age, bins.assign(r.survival_days)))
    scored = [v for v in volumes if v.predicted_bin is not None and truth.get(v.volume) is not None and truth[v.volume].bin is not None]
    test: list[PatientFeatures] = []
    model_pred: list[int] = []
    for pv in scored:
        r = by_id.get(pv.patient_id)
        if r is not None and r.age is not None and pv.predicted_bin is not None:
            test.append(PatientFeatures(pv.volume, r.age, int(truth[pv.volume].bin or 0)))
            model_pred.append(pv.predicted_bin)
    if not train or not test:
        why = "the survival model records no training patients with survival data" if not train else "no scored patient has an age"
        return dataclasses.replace(report, baseline_note=f"Baselines not computed: {why}.")
    model, _ = patient_accuracy([p.bin for p in test], model_pred, bins.n_bins)
    rows = baseline_rows(train, test, bins=bins.method.value, n_bins=bins.n_bins, cutoffs=bins.cutoffs, names=_NAMES)
    age = rows[-1].patient.value
    if model.value is not None and age is not None and model.value <= age:
        note = (f"The model does not beat age alone: {model.value:.3f} against {age:.3f} per patient "
                f"on the same {model.n} patients.")
    else:
        note = (f"The model scores {model.value:.3f} per patient against {age:.3f} for age alone on the same "
                f"{model.n} patients; compare the intervals before trusting the difference.")
    logger.info("survival baselines: %s", note)
    return dataclasses.replace(report, model_patient=model, baselines=tuple(rows), baseline_note=note)
