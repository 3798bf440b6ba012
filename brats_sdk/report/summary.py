"""Plain-data views of a report: headline figures, ``metrics.json`` and ``per_volume.csv`` rows.

Accuracies are always given with the number of samples they are over
(:func:`accuracy_text`), here and in every renderer built on these views.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from brats_sdk.constants import REGIONS
from brats_sdk.metrics.survival import SurvivalScores
from brats_sdk.predict.results import REGION_NAMES
from brats_sdk.report.report_data import Headline, ReportData

__all__ = [
    "accuracy_text",
    "hd95_text",
    "headline",
    "leak_warning",
    "metrics_dict",
    "per_volume_rows",
    "stats",
]

METRICS = ("dice", "hd95", "sensitivity", "specificity")


def accuracy_text(accuracy: float | None, n: int, unit: str) -> str:
    """``62.5% (n = 8 patients)``, ``100.0% (n = 1 patient)``; ``n/a (n = 0 patients)`` when undefined."""
    value = "n/a" if accuracy is None else f"{100.0 * accuracy:.1f}%"
    return f"{value} (n = {n} {unit.removesuffix('s') if n == 1 else unit})"


def hd95_text(method: str) -> str:
    """What an HD95 method value means, for captions."""
    if method == "max_directed":
        return "max of the two directed 95th percentiles"
    return "95th percentile of both directed surface distances pooled, as MedPy and nnU-Net"


def leak_warning(data: ReportData) -> str | None:
    """The red warning of a slice-level split, or None when every model split by patient."""
    if data.leaks_patients:
        roles = ", ".join(m.role for m in data.models if m.leaks_patients)
        return (
            f"The {roles} model(s) were trained on a slice-level split: slices of one patient "
            "are in both the training and the test data, so the survival figures leak patients "
            "and overstate how well survival is predicted for new patients."
        )
    return None


def stats(values: Sequence[float]) -> dict[str, float | int | None]:
    """``n``, mean, std, median, min, max (None when there is no value)."""
    arr = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if arr.size == 0:
        return {"n": 0, "mean": None, "std": None, "median": None, "min": None, "max": None}
    return {
        "n": int(arr.size),
        "mean": float(arr.mean()),
        "std": float(arr.std()),
        "median": float(np.median(arr)),
        "min": float(arr.min()),
        "max": float(arr.max()),
    }


def region_stats(data: ReportData) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """Per region and metric, statistics over the scored volumes."""
    scored = data.scored
    out: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for region in REGIONS:
        out[region] = {
            m: stats([float(getattr(v.regions[region], m)) for v in scored if v.regions is not None]) for m in METRICS
        }
        out[region]["truth_empty"] = {"n": sum(1 for v in scored if v.regions is not None and v.regions[region].truth_empty)}
        out[region]["pred_empty"] = {"n": sum(1 for v in scored if v.regions is not None and v.regions[region].pred_empty)}
    return out


def headline(data: ReportData) -> tuple[Headline, ...]:
    """The headline figures, in display order."""
    vols = data.volumes
    ok = sum(1 for v in vols if v.status == "ok")
    # A run without a survival model predicts segmentations only: that is not a failure.
    seg_only = sum(1 for v in vols if v.status == "no survival model")
    parts = [f"{ok} ok"] + ([f"{seg_only} segmentation only"] if seg_only else []) + [f"{len(vols) - ok - seg_only} not ok"]
    out = [Headline("Volumes predicted", float(len(vols)), f"{len(vols)} ({', '.join(parts)})", len(vols), "volumes")]
    if data.segmentation is not None:
        rs = region_stats(data)
        for region in REGIONS:
            d = rs[region]["dice"]
            h = rs[region]["hd95"]
            n = int(d["n"] or 0)
            out.append(Headline(f"Dice {region} (mean)", _f(d["mean"]), f"{_num(d['mean'], 3)} (n = {n} volumes)", n, "volumes"))
            out.append(Headline(f"HD95 {region} mm (median)", _f(h["median"]), f"{_num(h['median'], 2)} (n = {n} volumes)", n, "volumes"))
        seg = data.segmentation
        for name, value in seg.channel_dice.items():
            out.append(Headline(f"Pooled Dice {name}", value, f"{value:.3f} ({seg.n_pixels:,} pixels)", seg.n_pixels, "pixels"))
    if data.uncertainty is not None:
        for region, m in data.uncertainty.means().items():
            n = int(m["n"] or 0)
            out.append(Headline(f"QU-BraTS score {region} (mean)", _f(m["score"]), f"{_num(m['score'], 3)} (n = {n} volumes)", n, "volumes"))
    if data.comparison is not None:
        c = data.comparison
        for region, (mine, other, diff) in c.dice.items():
            out.append(Headline(f"Dice {region}: this - compared (mean)", diff, f"{mine:.3f} - {other:.3f} = {diff:+.3f} "
                                f"(n = {len(c.volumes)} volumes)", len(c.volumes), "volumes"))
    s = data.survival
    if s is not None:
        out.append(_acc_line("Survival accuracy per patient (vote)", s.per_patient, "patients"))
        out.append(_acc_line("Survival accuracy per slice", s.per_slice, "slices"))
        out.append(Headline(
            "BraTS challenge accuracy (GTR only)", s.challenge_accuracy,
            accuracy_text(s.challenge_accuracy, s.challenge_n, "patients"), s.challenge_n, "patients",
        ))
        for b in s.baselines:
            out.append(Headline(f"Baseline per patient: {b.name}", b.patient.value,
                                accuracy_text(b.patient.value, b.patient.n, "patients"), b.patient.n, "patients"))
        if s.per_patient is not None and s.per_patient.macro_auc is not None:
            auc = s.per_patient.macro_auc
            out.append(Headline("Macro AUC per patient", auc, f"{auc:.3f} (n = {s.per_patient.n} patients)", s.per_patient.n, "patients"))
    return tuple(out)


def _acc_line(name: str, scores: SurvivalScores | None, unit: str) -> Headline:
    acc = None if scores is None else scores.accuracy
    n = 0 if scores is None else scores.n
    return Headline(name, acc, accuracy_text(acc, n, unit), n, unit)


def _f(x: float | int | None) -> float | None:
    return None if x is None else float(x)


def _num(x: float | int | None, digits: int) -> str:
    return "n/a" if x is None else f"{float(x):.{digits}f}"


def _scores_dict(s: SurvivalScores | None, labels: Sequence[str]) -> dict[str, object] | None:
    if s is None:
        return None
    return {
        "accuracy": s.accuracy,
        "n": s.n,
        "per_bin": {
            lab: {"accuracy": s.per_bin_accuracy[b], "n": s.per_bin_n[b], "auc": s.auc[b]} for b, lab in enumerate(labels)
        },
        "macro_auc": s.macro_auc,
        "confusion": s.confusion,
        "roc": {lab: None if s.roc[b] is None else {"fpr": s.roc[b][0], "tpr": s.roc[b][1]} for b, lab in enumerate(labels)},  # type: ignore[index]  # None checked
    }


def _nan_to_none(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def per_volume_rows(data: ReportData) -> list[dict[str, object]]:
    """One flat row per volume for ``per_volume.csv``."""
    rows: list[dict[str, object]] = []
    labels = data.bin_labels
    for v in data.volumes:
        row: dict[str, object] = {
            "volume": v.volume, "patient_id": v.patient_id, "status": v.status, "has_mask": v.has_mask,
            "in_ground_truth": v.in_ground_truth, "not_scored": v.not_scored,
        }
        for region in REGIONS:
            r = None if v.regions is None else v.regions[region]
            for m in (*METRICS, "truth_empty", "pred_empty"):
                row[f"{region}_{m}"] = None if r is None else getattr(r, m)
        for name in REGION_NAMES:
            row[f"{name}_pred_ml"] = round(v.pred_ml.get(name, 0.0), 3)
            row[f"{name}_truth_ml"] = None if v.truth_ml is None else round(v.truth_ml[name], 3)
        row["slices_used"] = v.slices_used
        row["predicted_bin"] = v.predicted_bin
        row["predicted_label"] = None if v.predicted_bin is None or not labels else labels[v.predicted_bin]
        row["true_bin"] = v.true_bin
        row["true_label"] = None if v.true_bin is None or not labels else labels[v.true_bin]
        row["survival_note"] = v.survival_note
        row["correct"] = None if v.true_bin is None or v.predicted_bin is None else v.true_bin == v.predicted_bin
        rows.append(row)
    return rows


def metrics_dict(data: ReportData, figures: dict[str, str]) -> dict[str, object]:
    """Everything of the report as plain JSON data.

    Args:
        data: The report.
        figures: Figure name -> path relative to the report folder.

    Returns:
        The ``metrics.json`` payload.
    """
    vols = data.volumes
    seg = data.segmentation
    s = data.survival
    ex = data.exploratory
    return {
        "sdk_version": data.sdk_version,
        "predict_sdk_version": data.predict_sdk_version,
        "created": data.created,
        "inputs": {
            "pred_dir": data.pred_dir, "ground_truth": data.ground_truth,
            "survival_csv": data.survival_csv, "survival_model": data.survival_model,
        },
        "models": {
            m.role: {
                "sdk_version": m.sdk_version, "architecture": m.architecture, "split_mode": m.split_mode,
                "leaks_patients": m.leaks_patients, "trained_on": m.trained_on,
            }
            for m in data.models
        },
        "honesty": {
            "leaks_patients": data.leaks_patients,
            "split_known": data.split_known,
            "warning": leak_warning(data),
            "volumes_seen_in_training": {
                o.role: {"train_or_val": o.n_train, "test": o.n_test, "other": o.n_other} for o in data.overlap
            },
        },
        "headline": [{"name": h.name, "value": h.value, "n": h.n, "unit": h.unit, "text": h.text} for h in headline(data)],
        "volumes": {
            "n": len(vols),
            "ok": sum(1 for v in vols if v.status == "ok"),
            "not_ok": [{"volume": v.volume, "status": v.status} for v in vols if v.status != "ok"],
            "failed": [v.volume for v in vols if v.status.startswith("failed")],
            "without_mask_file": [v.volume for v in vols if not v.has_mask],
            "missing_in_ground_truth": list(data.missing_in_ground_truth),
            "not_scored": [{"volume": v.volume, "reason": v.not_scored} for v in vols if v.not_scored],
        },
        "region_volumes_ml": {
            "predicted": {name: stats([v.pred_ml.get(name, 0.0) for v in vols if v.has_mask]) for name in REGION_NAMES},
            "truth": {name: stats([v.truth_ml[name] for v in vols if v.truth_ml is not None]) for name in REGION_NAMES},
        },
        "segmentation": None if seg is None else {
            "n_volumes": len(data.scored),
            "hd95_method": data.hd95_method,
            "hd95_note": f"HD95 in mm ({hd95_text(data.hd95_method)}); 373.13 when a region is empty in one mask only",
            "regions": region_stats(data),
            "channel_dice_pooled": seg.channel_dice,
            "channel_dice_mean": seg.mean_dice,
            "confusion": {"classes": ["background", "NCR", "ED", "ET"], "rows": "truth", "columns": "prediction",
                          "counts": seg.confusion.tolist()},
            "n_pixels": seg.n_pixels,
        },
        "survival": None if s is None else {
            "bins": list(s.labels),
            "bin_ranges_days": list(s.ranges),
            "n_patients_with_true_bin": s.n_with_truth,
            "excluded": s.excluded,
            "with_true_bin_but_no_prediction": list(s.not_predicted),
            "per_slice": _scores_dict(s.per_slice, s.labels),
            "per_slice_patients": s.per_slice_patients,
            "per_patient": _scores_dict(s.per_patient, s.labels),
            "brats_challenge": {"accuracy": s.challenge_accuracy, "n": s.challenge_n, "population": "GTR patients"},
            "baselines": [b.to_dict() for b in s.baselines],
            "baseline_note": s.baseline_note,
        },
        "exploratory": {
            "pca": {"skipped": ex.pca_note} if ex.pca is None else {
                "n_slices": int(ex.pca.shape[0]),
                "explained_variance_ratio": list(ex.pca_explained),
                "bin_source": ex.pca_bin_source,
                "points": [
                    {"volume": int(v), "bin": int(b), "x": float(p[0]), "y": float(p[1])}
                    for v, b, p in zip(ex.pca_volumes, ex.pca_bins, ex.pca, strict=True)
                ],
            },
            "correlation": {"skipped": ex.corr_note} if ex.corr is None else {
                "labels": list(ex.corr_labels),
                "pearson": [[_nan_to_none(float(x)) for x in row] for row in ex.corr],
                "n_slices": ex.corr_n,
                "bin_source": ex.corr_bin_source,
                "note": ex.corr_note,
            },
        },
        "uncertainty": None if data.uncertainty is None else data.uncertainty.to_dict(),
        "comparison": None if data.comparison is None else data.comparison.to_dict(),
        "figures": figures,
        "notes": list(data.notes),
        "per_volume": per_volume_rows(data),
        "seconds": round(data.seconds, 3),
    }
