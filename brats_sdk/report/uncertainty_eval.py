"""QU-BraTS scoring of a prediction folder's uncertainty maps, and the Dice of two folders side by side.

The maps are the ``unc_whole``, ``unc_core`` and ``unc_enhance`` datasets that ``brats
predict --save-uncertainty`` writes into each mask file; each is scored against the
ground truth with :func:`~brats_sdk.metrics.qubrats.qubrats_volume` over the brain mask
of the challenge's script (T1 above 0). A volume whose maps cannot be scored (a wrong
shape, an unreadable file) is listed with the reason; the others go on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from brats_sdk.constants import IMAGE_CHANNELS, REGIONS
from brats_sdk.metrics.qubrats import (
    QUBRATS_POINTS,
    QuBratsCurves,
    qubrats_brain_mask,
    qubrats_thresholds,
    qubrats_volume,
)
from brats_sdk.predict.uncertainty import UNCERTAINTY_NAMES
from brats_sdk.report.report_data import VolumeReport

__all__ = ["DiceComparison", "UncertaintyResult", "brain_of", "compare_dice", "score_mask_uncertainty"]

AUC_KEYS: tuple[str, ...] = ("dice_auc", "ftp_ratio_auc", "ftn_ratio_auc", "score")


def brain_of(image: npt.NDArray[np.floating]) -> npt.NDArray[np.bool_]:
    """The QU-BraTS brain mask of a ``(D, 4, H, W)`` image: T1 above 0. Raw scans are never
    negative; an already normalised T1 (the Kaggle h5 release) is, and there the brain is
    where T1 is not 0 (its background is exactly 0)."""
    t1 = np.asarray(image[:, IMAGE_CHANNELS.index("t1")])
    return t1 != 0 if (t1 < 0).any() else qubrats_brain_mask(t1)


def score_mask_uncertainty(
    mask_path: Path,
    pred_labels: npt.NDArray[np.integer],
    truth_labels: npt.NDArray[np.integer],
    image: npt.NDArray[np.floating],
) -> dict[str, QuBratsCurves] | None:
    """QU-BraTS curves per region of the maps in one mask file (None when it holds none).

    Raises:
        DataError: The file is unreadable or a map's shape differs from the labels'.
    """
    # Imported here: report.view imports report.evaluate, which imports this module.
    from brats_sdk.report.view import read_uncertainty

    maps = read_uncertainty(mask_path)
    regions = {region: maps[name] for region, name in UNCERTAINTY_NAMES.items() if name in maps}
    if not regions:
        return None
    return qubrats_volume(truth_labels, pred_labels, regions, brain_of(image))


@dataclass(frozen=True, slots=True)
class UncertaintyResult:
    """The QU-BraTS scores of a folder.

    Attributes:
        volumes: Volume -> region -> curves, for the volumes whose maps were scored.
        problems: ``(volume, reason)`` of volumes whose maps could not be scored.
    """

    volumes: Mapping[int, Mapping[str, QuBratsCurves]]
    problems: tuple[tuple[int, str], ...] = ()

    def means(self) -> dict[str, dict[str, float | int | None]]:
        """Region -> mean ``dice_auc``, ``ftp_ratio_auc``, ``ftn_ratio_auc``, ``score`` and ``n`` volumes."""
        out: dict[str, dict[str, float | int | None]] = {}
        for region in REGIONS:
            rows = [v[region].aucs() for v in self.volumes.values() if region in v]
            out[region] = {k: (float(np.mean([r[k] for r in rows])) if rows else None) for k in AUC_KEYS}
            out[region]["n"] = len(rows)
        return out

    def mean_curves(self) -> dict[str, dict[str, list[float]]]:
        """Region -> mean ``dice``, ``ftp_ratio``, ``ftn_ratio`` curves over the volumes."""
        out: dict[str, dict[str, list[float]]] = {}
        for region in REGIONS:
            curves = [v[region] for v in self.volumes.values() if region in v]
            if curves:
                out[region] = {k: [float(x) for x in np.mean([getattr(c, k) for c in curves], axis=0)]
                               for k in ("dice", "ftp_ratio", "ftn_ratio")}
        return out

    def to_dict(self) -> dict[str, object]:
        """The ``uncertainty`` section of ``metrics.json``."""
        return {
            "metric": f"QU-BraTS (challenge script): {QUBRATS_POINTS} threshold steps from 100 to 0, brain = T1 > 0, "
                      "score = (AUC Dice + (1 - AUC FTP ratio) + (1 - AUC FTN ratio)) / 3",
            "thresholds": [float(t) for t in qubrats_thresholds()],
            "regions": self.means(),
            "volumes": {str(v): {r: c.aucs() for r, c in regions.items()} for v, regions in sorted(self.volumes.items())},
            "mean_curves": self.mean_curves(),
            "problems": [{"volume": v, "reason": r} for v, r in self.problems],
        }


@dataclass(frozen=True, slots=True)
class DiceComparison:
    """Mean Dice and median HD95 per region of two prediction folders over the volumes both scored.

    Attributes:
        this, other: The two folders.
        volumes: The volumes scored in both.
        dice: Region -> (mean Dice of this, of other, this - other).
        hd95: Region -> (median HD95 of this, of other, this - other).
    """

    this: str
    other: str
    volumes: tuple[int, ...]
    dice: Mapping[str, tuple[float, float, float]]
    hd95: Mapping[str, tuple[float, float, float]]

    def to_dict(self) -> dict[str, object]:
        def rows(m: Mapping[str, tuple[float, float, float]]) -> dict[str, dict[str, float]]:
            return {r: {"this": a, "other": b, "difference": d} for r, (a, b, d) in m.items()}

        return {"this": self.this, "other": self.other, "volumes": list(self.volumes), "dice_mean": rows(self.dice),
                "hd95_median": rows(self.hd95)}


def compare_dice(this: str, other: str, mine: Sequence[VolumeReport], theirs: Sequence[VolumeReport]) -> DiceComparison:
    """Dice and HD95 of two folders' reports over the volumes scored in both."""
    a = {v.volume: v.regions for v in mine if v.regions is not None}
    b = {v.volume: v.regions for v in theirs if v.regions is not None}
    common = tuple(sorted(set(a) & set(b)))

    def pair(metric: str, reduce: str) -> dict[str, tuple[float, float, float]]:
        out: dict[str, tuple[float, float, float]] = {}
        for region in REGIONS:
            x = [float(getattr(a[v][region], metric)) for v in common]
            y = [float(getattr(b[v][region], metric)) for v in common]
            fx, fy = (float(getattr(np, reduce)(s)) if s else math.nan for s in (x, y))
            out[region] = (fx, fy, fx - fy)
        return out

    return DiceComparison(this, other, common, pair("dice", "mean"), pair("hd95", "median"))
