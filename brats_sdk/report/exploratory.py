"""Data of the paper's two exploratory figures.

- Fig. 8: the survival network's image features (the 128 values after the ResNet-50's
  ``fc``) of the predicted masks, reduced to 2-D by PCA and coloured by survival bin.
- Fig. 9: Pearson correlation between each region's share of a slice (fraction of the
  slice's pixels that are NCR, ED, ET in the predicted mask) and the survival bin.

Both are computed from the slices the survival network uses (non-empty predicted masks).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from sklearn.decomposition import PCA

from brats_sdk.constants import MASK_CHANNELS
from brats_sdk.device import resolve_device
from brats_sdk.labels import classes_to_one_hot
from brats_sdk.models.survival import SurvivalClassifier, prepare_masks
from brats_sdk.report.report_data import ExploratoryResult

__all__ = ["FeatureExtractor", "exploratory_result", "slice_shares", "used_slices"]

logger = logging.getLogger(__name__)

CORR_LABELS: tuple[str, ...] = (*(f"{c} share" for c in MASK_CHANNELS), "survival bin")


def used_slices(pred_classes: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """Indices of the slices whose predicted mask is not empty.

    Args:
        pred_classes: ``(D, H, W)`` class indices.

    Returns:
        ``(S,)`` slice indices, ascending.
    """
    flat = pred_classes.reshape(pred_classes.shape[0], -1)
    return np.flatnonzero(flat.any(axis=1)).astype(np.int64)


def slice_shares(pred_classes: npt.NDArray[np.uint8], used: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Fraction of each slice's pixels in NCR, ED and ET.

    Args:
        pred_classes: ``(D, H, W)`` class indices 0..3.
        used: Slice indices to describe.

    Returns:
        ``(len(used), 3)`` shares in [0, 1].
    """
    sel = pred_classes[used].reshape(len(used), -1)
    n_pix = max(sel.shape[1], 1)
    return np.stack([(sel == c).sum(axis=1) / n_pix for c in range(1, len(MASK_CHANNELS) + 1)], axis=1).astype(np.float64)


class FeatureExtractor:
    """The survival network's image branch: predicted masks -> 128 features per slice.

    Args:
        path: A survival checkpoint (``survival.pt``).
        device: Device request (``auto`` picks CUDA, then MPS, then the CPU).
        batch_size: Slices per forward pass.

    Raises:
        CheckpointError: The file is missing or not a survival checkpoint.
        ConfigError: Unknown device.
    """

    def __init__(self, path: Path, *, device: str = "auto", batch_size: int = 16) -> None:
        self.path = Path(path)
        self.device = resolve_device(device)
        self.model = SurvivalClassifier.from_checkpoint(self.path, map_location=self.device).eval()
        self.batch_size = batch_size

    def features(self, pred_classes: npt.NDArray[np.uint8], used: npt.NDArray[np.int64], max_slices: int) -> npt.NDArray[np.float32]:
        """Image features of up to ``max_slices`` used slices, evenly spaced.

        Args:
            pred_classes: ``(D, H, W)`` class indices.
            used: Slices with a non-empty predicted mask.
            max_slices: Most slices to take.

        Returns:
            ``(k, 128)`` float32 features, ``k = min(len(used), max_slices)``.
        """
        pick = _evenly(used, max_slices)
        out: list[npt.NDArray[np.float32]] = []
        size = self.model.config.input_size
        with torch.inference_mode():
            for start in range(0, len(pick), self.batch_size):
                one_hot = classes_to_one_hot(pred_classes[pick[start : start + self.batch_size]])
                x = prepare_masks(torch.from_numpy(one_hot).to(self.device), size=size)
                out.append(self.model.backbone(x).float().cpu().numpy())
        if not out:
            return np.zeros((0, 128), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)


def _evenly(used: npt.NDArray[np.int64], k: int) -> npt.NDArray[np.int64]:
    if len(used) <= k:
        return used
    idx = np.unique(np.linspace(0, len(used) - 1, num=max(k, 1)).round().astype(np.int64))
    return used[idx]


def exploratory_result(
    *,
    features: Sequence[tuple[int, npt.NDArray[np.float32]]],
    shares: Sequence[tuple[int, npt.NDArray[np.float64]]],
    bin_of: dict[int, int],
    bin_source: str,
    pca_note: str | None,
) -> ExploratoryResult:
    """PCA of the image features and the share/bin correlation matrix.

    Args:
        features: Per volume, ``(k, 128)`` image features (empty without a model).
        shares: Per volume, ``(S, 3)`` region shares of the slices used.
        bin_of: Volume -> survival bin used for colours and correlation.
        bin_source: ``true`` or ``predicted``.
        pca_note: Why there are no features (no model), or None.

    Returns:
        The :class:`ExploratoryResult`; a figure that cannot be made has a note.
    """
    pca = None
    pca_bins = np.zeros(0, dtype=np.int64)
    pca_vols = np.zeros(0, dtype=np.int64)
    explained: tuple[float, ...] = ()
    feats = [(v, f) for v, f in features if f.shape[0]]
    if pca_note is None:
        n = sum(f.shape[0] for _, f in feats)
        if n < 3:
            pca_note = f"PCA needs at least 3 slices with a predicted tumour; got {n}"
        else:
            x = np.concatenate([f for _, f in feats]).astype(np.float64)
            model = PCA(n_components=2, random_state=0)
            pca = model.fit_transform(x)
            explained = tuple(float(e) for e in model.explained_variance_ratio_)
            pca_vols = np.concatenate([np.full(f.shape[0], v, dtype=np.int64) for v, f in feats])
            pca_bins = np.array([bin_of.get(int(v), -1) for v in pca_vols], dtype=np.int64)
    rows = [(s, bin_of[v]) for v, s in shares if v in bin_of and s.shape[0]]
    corr = None
    corr_n = sum(s.shape[0] for s, _ in rows)
    corr_note = None
    if corr_n < 3:
        corr_note = f"correlation needs at least 3 slices with a predicted tumour and a {bin_source} bin; got {corr_n}"
    else:
        table = np.concatenate([np.column_stack([s, np.full(s.shape[0], b, dtype=np.float64)]) for s, b in rows])
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.corrcoef(table, rowvar=False)
        if np.isnan(corr).any():
            corr_note = "NaN: a variable is constant over the slices (e.g. one bin only)"
    return ExploratoryResult(
        pca=pca,
        pca_bins=pca_bins,
        pca_volumes=pca_vols,
        pca_explained=explained,
        pca_bin_source=bin_source,
        pca_note=pca_note,
        corr_labels=CORR_LABELS,
        corr=corr,
        corr_n=corr_n,
        corr_bin_source=bin_source,
        corr_note=corr_note,
    )
