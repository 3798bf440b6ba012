"""Frozen records of a report: what :func:`~brats_sdk.report.evaluate.evaluate_predictions`
computes and what the figures, the HTML page and ``metrics.json`` are drawn from.

Every accuracy travels with the number of samples it is over (``SurvivalScores.n``),
so no renderer can show one without the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from brats_sdk.audit.result import Accuracy, AuditRow
from brats_sdk.data.nifti_labels import LabelConvention
from brats_sdk.errors import ConfigError
from brats_sdk.metrics.channels import SegmentationResult
from brats_sdk.metrics.segmentation import HD95Method, RegionScores
from brats_sdk.metrics.survival import SurvivalScores

if TYPE_CHECKING:
    from brats_sdk.report.uncertainty_eval import DiceComparison, UncertaintyResult

__all__ = [
    "ExploratoryResult",
    "Headline",
    "ModelSummary",
    "OverlaySample",
    "ReportData",
    "ReportOptions",
    "SurvivalReport",
    "TrainingOverlap",
    "VolumeReport",
]


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """What a report computes besides the metrics.

    Attributes:
        max_figure_volumes: Volumes drawn as image/mask overlays (the largest predicted
            tumours first).
        slices_per_volume: Slices drawn per overlay volume (those with the most tumour).
        feature_slices_per_volume: Most slices per volume fed through the survival
            network's image branch for the PCA figure, evenly spaced over the slices used.
        max_feature_slices: Most slices for the PCA figure in all; each volume then gets
            ``min(feature_slices_per_volume, max(1, max_feature_slices // volumes))``. This
            bounds the time (each slice costs a ResNet-50 pass).
        max_vote_volumes: Volumes shown in the vote-bar figure (the first ones).
        device: Device of the survival network (``auto``: CUDA, then MPS, then CPU).
        viewer_volumes: Volumes in the page's interactive slice viewer (the largest
            predicted tumours first); 0 leaves the viewer out.
        hd95_method: How HD95 combines the two directed distance sets (``pooled``, the
            nnU-Net/MedPy value, or ``max_directed``); see
            :mod:`brats_sdk.metrics.segmentation`.
        force: Score ground truth whose images differ from those the predictions were
            made from (another cohort, another preprocessing) instead of refusing it.
        label_convention: What a label 3 in NIfTI ground truth means (refused by default).

    Raises:
        ConfigError: Unknown ``hd95_method``, or negative ``viewer_volumes``.
    """

    max_figure_volumes: int = 3
    slices_per_volume: int = 3
    feature_slices_per_volume: int = 8
    max_feature_slices: int = 400
    max_vote_volumes: int = 60
    device: str = "auto"
    hd95_method: HD95Method = HD95Method.POOLED
    viewer_volumes: int = 3
    force: bool = False
    label_convention: LabelConvention = LabelConvention.BRATS2017

    def __post_init__(self) -> None:
        object.__setattr__(self, "hd95_method", HD95Method.parse(self.hd95_method))
        object.__setattr__(self, "label_convention", LabelConvention.parse(self.label_convention))
        if self.viewer_volumes < 0:
            raise ConfigError(f"viewer_volumes must be >= 0, got {self.viewer_volumes}")


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """What ``predictions.json`` says about one model.

    Attributes:
        role: ``segmenter`` or ``survival``.
        sdk_version: SDK version the model was trained with, or None when not recorded.
        architecture: Architecture text, or None.
        split_mode: ``patient`` or ``slice`` (``split.mode``), or None when not recorded.
        leaks_patients: Whether slices of one patient were in training and test data;
            None when not recorded.
        trained_on: What the model was trained on (e.g. ``ground-truth masks``), or None.
        train_volumes: Volumes in the training and validation sets, when recorded.
        test_volumes: Volumes in the test set, when recorded.
    """

    role: str
    sdk_version: str | None
    architecture: str | None
    split_mode: str | None
    leaks_patients: bool | None
    trained_on: str | None
    train_volumes: tuple[int, ...] | None
    test_volumes: tuple[int, ...] | None


@dataclass(frozen=True, slots=True)
class TrainingOverlap:
    """How many of the report's volumes a model saw while it was trained.

    Attributes:
        role: ``segmenter`` or ``survival``.
        n_train: Report volumes in the model's training or validation set.
        n_test: Report volumes in the model's test set.
        n_other: Report volumes in neither (or the split lists are not recorded).
    """

    role: str
    n_train: int
    n_test: int
    n_other: int


@dataclass(frozen=True, slots=True)
class VolumeReport:
    """One volume's line of ``per_volume.csv``.

    Attributes:
        volume: Volume number.
        patient_id: Patient id from ``predictions.csv``.
        status: Prediction status (``ok`` or why the survival fields are empty, or ``failed: ...``).
        has_mask: Whether ``masks/volume_<V>_pred.h5`` exists.
        in_ground_truth: Whether the ground-truth folder holds the volume (None without one).
        regions: WT/TC/ET scores, or None when not scored.
        not_scored: Why the volume has no segmentation score (None when scored or without
            ground truth).
        pred_ml: Predicted region volumes in mL (NCR, ED, ET, WT, TC).
        truth_ml: Ground-truth region volumes in mL, or None.
        slices_used: Slices with a non-empty predicted mask.
        predicted_bin: The vote's bin, or None.
        true_bin: The true survival bin, or None.
        survival_note: Why the volume has no true bin (``censored``, ...), or None.
        votes: Votes per bin, or None.
    """

    volume: int
    patient_id: str
    status: str
    has_mask: bool
    in_ground_truth: bool | None
    regions: dict[str, RegionScores] | None
    not_scored: str | None
    pred_ml: dict[str, float]
    truth_ml: dict[str, float] | None
    slices_used: int
    predicted_bin: int | None
    true_bin: int | None
    survival_note: str | None
    votes: tuple[int, ...] | None


@dataclass(frozen=True, slots=True)
class OverlaySample:
    """One slice drawn in an overlay figure.

    Attributes:
        volume: Volume number.
        slice_index: Axial slice index.
        flair: ``(H, W)`` raw FLAIR intensities, or None when no image is available.
        t1ce: ``(H, W)`` raw T1ce intensities, or None.
        truth: ``(H, W)`` ground-truth class indices 0..3, or None.
        pred: ``(H, W)`` predicted class indices 0..3.
    """

    volume: int
    slice_index: int
    flair: npt.NDArray[np.float32] | None = field(repr=False)
    t1ce: npt.NDArray[np.float32] | None = field(repr=False)
    truth: npt.NDArray[np.uint8] | None = field(repr=False)
    pred: npt.NDArray[np.uint8] = field(repr=False)


@dataclass(frozen=True, slots=True)
class SurvivalReport:
    """Survival scores at slice and patient level, and who was left out.

    Attributes:
        labels: Bin labels (``short``, ``mid``, ``long``).
        ranges: Day range text per bin.
        per_slice: Scores over the slices used (non-empty predicted masks), or None.
        per_slice_patients: Patients the per-slice scores come from.
        per_patient: Scores of the vote (``predicted_bin``) with mean probabilities for
            ROC/AUC, or None.
        challenge_accuracy: Patient accuracy over gross-total-resection patients, or None.
        challenge_n: Number of GTR patients it is over.
        n_with_truth: Volumes with a true bin.
        excluded: Volumes without a true bin, per reason (``no survival row``, ``censored``,
            ``no survival days``).
        not_predicted: Volumes with a true bin but no predicted bin.
        model_patient: The per-patient accuracy with its Wilson interval, over the
            patients the baselines are scored on, or None.
        baselines: The majority and age-only baselines (fitted on the model's training
            patients, scored on the same patients), or empty.
        baseline_note: Plain words on the baselines (whether the model beats age alone), or None.
    """

    labels: tuple[str, ...]
    ranges: tuple[str, ...]
    per_slice: SurvivalScores | None
    per_slice_patients: int
    per_patient: SurvivalScores | None
    challenge_accuracy: float | None
    challenge_n: int
    n_with_truth: int
    excluded: dict[str, int]
    not_predicted: tuple[int, ...]
    model_patient: Accuracy | None = None
    baselines: tuple[AuditRow, ...] = ()
    baseline_note: str | None = None


@dataclass(frozen=True, slots=True)
class ExploratoryResult:
    """The paper's two exploratory figures (Fig. 8 and Fig. 9) as data.

    Attributes:
        pca: ``(N, 2)`` image features of N slices reduced by PCA, or None when skipped.
        pca_bins: ``(N,)`` bin of each point (-1: no bin known).
        pca_volumes: ``(N,)`` volume of each point.
        pca_explained: Explained variance ratio of the two components.
        pca_bin_source: ``true`` or ``predicted``.
        pca_note: Why the PCA figure was skipped, or None.
        corr_labels: Names of the correlated variables.
        corr: ``(4, 4)`` Pearson correlation matrix (NaN where a variable is constant), or None.
        corr_n: Slices the correlation is over.
        corr_bin_source: ``true`` or ``predicted``.
        corr_note: Why the correlation figure was skipped, or None.
    """

    pca: npt.NDArray[np.float64] | None = field(repr=False)
    pca_bins: npt.NDArray[np.int64] = field(repr=False)
    pca_volumes: npt.NDArray[np.int64] = field(repr=False)
    pca_explained: tuple[float, ...]
    pca_bin_source: str
    pca_note: str | None
    corr_labels: tuple[str, ...]
    corr: npt.NDArray[np.float64] | None = field(repr=False)
    corr_n: int
    corr_bin_source: str
    corr_note: str | None


@dataclass(frozen=True, slots=True)
class Headline:
    """One headline figure: a name, its value as text and what it is over.

    Attributes:
        name: What is measured.
        value: The number, or None when it could not be computed.
        text: The value as shown (with its count, for accuracies).
        n: The number of samples it is over, or None.
        unit: ``volumes``, ``patients``, ``slices`` or ``pixels``.
    """

    name: str
    value: float | None
    text: str
    n: int | None
    unit: str


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything a report shows.

    Attributes:
        created: ISO time of the report.
        sdk_version: ``brats_sdk.__version__`` of the report.
        predict_sdk_version: SDK version that wrote the predictions.
        pred_dir: The prediction folder.
        ground_truth: The ground-truth folder, or None.
        survival_csv: The survival CSV, or None.
        survival_model: The survival checkpoint used for the PCA figure, or None.
        models: What ``predictions.json`` says of each model.
        leaks_patients: True when a model was trained on a slice-level split.
        split_known: False when the models' metadata does not record a split.
        overlap: Per model, how many report volumes it was trained on.
        volumes: One record per volume of ``predictions.csv``, in volume order.
        missing_in_ground_truth: Predicted volumes the ground truth lacks.
        segmentation: Pooled channel Dice and the pixel confusion matrix, or None.
        survival: Survival scores, or None.
        exploratory: Fig. 8 and Fig. 9 data.
        overlays: Slices for the overlay figures.
        bin_labels: Bin labels, empty without a survival model.
        hd95_method: The HD95 definition used (``pooled`` or ``max_directed``).
        notes: What was skipped and why.
        seconds: Wall time of the evaluation.
        uncertainty: QU-BraTS scores of the folder's uncertainty maps, or None without maps or ground truth.
        comparison: Dice and HD95 beside those of a second prediction folder, or None.
    """

    created: str
    sdk_version: str
    predict_sdk_version: str | None
    pred_dir: str
    ground_truth: str | None
    survival_csv: str | None
    survival_model: str | None
    models: tuple[ModelSummary, ...]
    leaks_patients: bool
    split_known: bool
    overlap: tuple[TrainingOverlap, ...]
    volumes: tuple[VolumeReport, ...]
    missing_in_ground_truth: tuple[int, ...]
    segmentation: SegmentationResult | None
    survival: SurvivalReport | None
    exploratory: ExploratoryResult
    overlays: tuple[OverlaySample, ...] = field(repr=False)
    bin_labels: tuple[str, ...]
    hd95_method: str
    notes: tuple[str, ...]
    seconds: float
    uncertainty: UncertaintyResult | None = None
    comparison: DiceComparison | None = None

    @property
    def scored(self) -> tuple[VolumeReport, ...]:
        """Volumes with segmentation scores."""
        return tuple(v for v in self.volumes if v.regions is not None)
