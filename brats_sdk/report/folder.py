"""Reading a prediction folder: what ``brats predict --save-masks`` wrote.

``predictions.json`` (models metadata, bins, input folder), ``predictions.csv`` (one
row per volume) and ``masks/volume_<V>_pred.h5`` (labels and slice probabilities).
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from brats_sdk.bins import SurvivalBins
from brats_sdk.errors import BratsError, DataError
from brats_sdk.json_files import read_json_object
from brats_sdk.predict.outputs import (
    mask_file_name,
    read_prediction_masks,
)
from brats_sdk.predict.results import REGION_NAMES
from brats_sdk.report.report_data import ModelSummary
from brats_sdk.run_files import MASKS_DIR, PREDICTIONS_CSV, PREDICTIONS_JSON

__all__ = ["PredictedVolume", "PredictionFolder", "read_prediction_folder"]

logger = logging.getLogger(__name__)

JsonDict = dict[str, object]


@dataclass(frozen=True, slots=True)
class PredictedVolume:
    """One row of ``predictions.csv``, typed.

    Attributes:
        volume: Volume number.
        patient_id: Patient id.
        name: The source's name of the volume (the case folder for NIfTI input,
            ``volume_<V>`` for h5 and packed input; empty in folders without the column).
        status: ``ok``, why the survival fields are empty, or ``failed: ...``.
        predicted_bin: The vote's bin, or None.
        mean_probs: Mean probability per bin (``prob_<label>`` columns), or None.
        votes: Votes per bin (``votes_<label>`` columns), or None.
        slices_used: Slices with a non-empty predicted mask.
        region_ml: Predicted volume per region in mL (0 where the column is empty).
    """

    volume: int
    patient_id: str
    name: str
    status: str
    predicted_bin: int | None
    mean_probs: tuple[float, ...] | None
    votes: tuple[int, ...] | None
    slices_used: int
    region_ml: dict[str, float]


@dataclass(frozen=True, slots=True)
class PredictionFolder:
    """A prediction folder, read.

    Attributes:
        root: The folder.
        meta: ``predictions.json`` as a dict.
        volumes: The rows of ``predictions.csv`` in volume order.
        bins: The survival bins of the model, or None (segmentation only).
        models: Summaries of the models' metadata.
    """

    root: Path
    meta: JsonDict = field(repr=False)
    volumes: tuple[PredictedVolume, ...]
    bins: SurvivalBins | None
    models: tuple[ModelSummary, ...]

    @property
    def input_dir(self) -> Path | None:
        """The folder the predictions were made from, when it still exists."""
        text = self.meta.get("input")
        if not isinstance(text, str) or not text:
            return None
        path = Path(text)
        return path if path.is_dir() else None

    @property
    def sdk_version(self) -> str | None:
        """SDK version that wrote the predictions."""
        v = self.meta.get("sdk_version")
        return v if isinstance(v, str) else None

    @property
    def complete(self) -> bool:
        """False when ``predictions.json`` says its run was interrupted before the last volume."""
        return self.meta.get("complete") is not False

    @property
    def saved_masks(self) -> bool:
        """Whether the run wrote mask files (folders of versions that do not record it: True)."""
        outputs = self.meta.get("outputs")
        return not isinstance(outputs, dict) or outputs.get("masks") is not False

    def mask_path(self, volume: int) -> Path:
        """``masks/volume_<V>_pred.h5`` of ``volume`` (it may not exist)."""
        return self.root / MASKS_DIR / mask_file_name(volume)

    def read_masks(self, volume: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
        """Labels ``(D, H, W)`` and slice probabilities ``(D, n_bins)`` of ``volume``.

        Raises:
            DataError: The file is missing, unreadable or malformed.
        """
        path = self.mask_path(volume)
        if not self.saved_masks:
            # A mask file here would be another run's: this one wrote none.
            raise DataError(f"{path}: no mask file of this run (run `brats predict --save-masks`)")
        if not path.is_file():
            raise DataError(f"{path}: no mask file (run `brats predict --save-masks`)")
        try:
            labels, probs = read_prediction_masks(path)
        except (OSError, KeyError) as exc:
            raise DataError(f"{path}: unreadable prediction mask file ({exc})") from exc
        if labels.ndim != 3 or probs.ndim != 2 or probs.shape[0] != labels.shape[0]:
            raise DataError(f"{path}: labels {labels.shape} and survival_probs {probs.shape} do not match")
        return labels, probs


def read_prediction_folder(root: Path | str) -> PredictionFolder:
    """Read ``predictions.json`` and ``predictions.csv`` of a prediction folder.

    Args:
        root: What ``brats predict`` wrote.

    Returns:
        The folder's tables; masks are read later, one volume at a time.

    Raises:
        DataError: The folder, ``predictions.json`` or ``predictions.csv`` is missing or
            malformed.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    json_path = root / PREDICTIONS_JSON
    if not json_path.is_file():
        raise DataError(f"{root}: no {PREDICTIONS_JSON}; is this a `brats predict` output folder?")
    meta = read_json_object(json_path)
    bins = _bins(json_path, meta.get("bins"))
    labels = bins.labels if bins is not None else ()
    csv_path = root / PREDICTIONS_CSV
    if not csv_path.is_file():
        raise DataError(f"{root}: no {PREDICTIONS_CSV}")
    volumes = _read_rows(csv_path, labels)
    _check_same_run(json_path, meta, csv_path, volumes)
    if meta.get("complete") is False:
        logger.warning("%s: the prediction run was interrupted; only its %d finished volumes are scored", json_path, len(volumes))
    models = tuple(_model_summary(role, meta) for role in ("segmenter", "survival"))
    logger.info("%s: %d predicted volumes", root, len(volumes))
    return PredictionFolder(root, meta, volumes, bins, tuple(m for m in models if m is not None))


def _check_same_run(json_path: Path, meta: JsonDict, csv_path: Path, volumes: tuple[PredictedVolume, ...]) -> None:
    """Refuse a ``predictions.csv`` that lists other volumes than ``predictions.json``
    (files of two runs); folders whose JSON lists no volumes are not checked."""
    listed = meta.get("volumes")
    if not isinstance(listed, list):
        return
    in_json = {r.get("volume") for r in listed if isinstance(r, dict)}
    in_csv = {v.volume for v in volumes}
    if in_json != in_csv:
        diff = sorted(str(v) for v in in_json ^ in_csv)
        raise DataError(
            f"{csv_path}: lists other volumes than {json_path.name} ({', '.join(diff[:10])} differ): files of two "
            "runs; run `brats predict` again"
        )


def _bins(path: Path, raw: object) -> SurvivalBins | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: 'bins' must be an object or null")
    try:
        return SurvivalBins.from_dict(raw)
    except BratsError as exc:
        raise DataError(f"{path}: {exc}") from exc


def _read_rows(path: Path, labels: tuple[str, ...]) -> tuple[PredictedVolume, ...]:
    try:
        # Bytes decoded, not read_text: universal newlines would turn a quoted "\r" into "\n".
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        fieldnames = reader.fieldnames
        if fieldnames is None or "volume" not in fieldnames:
            raise DataError(f"{path}: no 'volume' column")
        out: dict[int, PredictedVolume] = {}
        for row in reader:
            _check_row(path, reader.line_num, row, labels, out)
    except csv.Error as exc:
        raise DataError(f"{path} line {reader.line_num}: malformed CSV ({exc})") from None
    return tuple(out[v] for v in sorted(out))


def _check_row(
    path: Path, line: int, row: Mapping[str, str | None], labels: tuple[str, ...], out: dict[int, PredictedVolume]
) -> None:
    """Add ``row`` (CSV line ``line``) to ``out``, or raise DataError naming the file and line."""
    try:
        volume = int(str(row.get("volume")))
    except ValueError:
        raise DataError(f"{path} line {line}: volume {row.get('volume')!r} is not an integer") from None
    if volume < 0:
        raise DataError(f"{path} line {line}: volume {volume} must be >= 0")
    if volume in out:
        raise DataError(f"{path} line {line}: volume {volume} appears twice")
    try:
        out[volume] = _row(row, labels)
    except ValueError as exc:
        raise DataError(f"{path} line {line}: {exc}") from None


def _cell(row: Mapping[str, str | None], key: str) -> str | None:
    value = row.get(key)
    return value if value not in (None, "") else None


def _row(row: Mapping[str, str | None], labels: tuple[str, ...]) -> PredictedVolume:
    """One row, every field checked; ValueError names the field, its value and the rule."""

    def num(key: str, *, low: float = 0.0, high: float = math.inf, integer: bool = False) -> float | None:
        text = _cell(row, key)
        if text is None:
            return None
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{key} {text!r} is not a number") from None
        if not math.isfinite(value) or not low <= value <= high or (integer and not value.is_integer()):
            rule = f"{'an integer' if integer else 'a number'} in {low:g}..{high:g}"
            raise ValueError(f"{key} {text!r} must be {rule}")
        return value

    pb = num("predicted_bin", high=max(len(labels) - 1, 0), integer=True)
    if pb is not None and not labels:
        raise ValueError(f"predicted_bin {int(pb)} given, but the predictions have no survival bins")
    probs = [num(f"prob_{lab}", high=1.0) for lab in labels]
    votes = [num(f"votes_{lab}", integer=True) for lab in labels]
    return PredictedVolume(
        volume=int(str(row["volume"])),
        patient_id=_cell(row, "patient_id") or "",
        name=_cell(row, "name") or "",
        status=_cell(row, "status") or "ok",
        predicted_bin=None if pb is None else int(pb),
        mean_probs=tuple(p for p in probs if p is not None) if labels and all(p is not None for p in probs) else None,
        votes=tuple(int(v) for v in votes if v is not None) if labels and all(v is not None for v in votes) else None,
        slices_used=int(num("slices_used", integer=True) or 0),
        region_ml={name: num(f"{name}_ml") or 0.0 for name in REGION_NAMES},
    )


def _model_summary(role: str, meta: Mapping[str, object]) -> ModelSummary | None:
    models = meta.get("models")
    md = models.get(role) if isinstance(models, dict) else None
    if not isinstance(md, dict):
        return None
    split = md.get("split")
    mode = split.get("mode") if isinstance(split, dict) else None
    leaks = md.get("leaks_patients")
    if not isinstance(leaks, bool):
        leaks = True if mode == "slice" else (False if mode == "patient" else None)

    # Volume numbers repeat across cohorts: count overlap only when the predictions read
    # the folders the model was trained on (when both are recorded).
    trained_dirs, input_dirs = md.get("data_dirs"), meta.get("input_dirs")
    same_data = not (isinstance(trained_dirs, list) and isinstance(input_dirs, list)) or bool(
        set(map(str, trained_dirs)) & set(map(str, input_dirs))
    )

    def ints(key: str) -> tuple[int, ...] | None:
        if not isinstance(split, dict):
            return None
        if not same_data:
            return ()
        vals = [split.get(k) for k in key.split("+")]
        if not all(isinstance(v, list) for v in vals):
            return None
        return tuple(int(x) for v in vals if isinstance(v, list) for x in v if isinstance(x, int))

    def text(key: str) -> str | None:
        v = md.get(key)
        return v if isinstance(v, str) else None

    return ModelSummary(
        role=role,
        sdk_version=text("sdk_version"),
        architecture=text("architecture"),
        split_mode=mode if isinstance(mode, str) else None,
        leaks_patients=leaks,
        trained_on=text("trained_on"),
        train_volumes=ints("train+val"),
        test_volumes=ints("test"),
    )
