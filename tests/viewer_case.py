"""Two small volumes for the slice-viewer tests, written as real files.

Volume 1: a brain ellipse on slices 1-8 of 10 (48 x 48), a tumour on slices 3-6 (NCR
core, ET ring, ED around it). Its prediction is the truth plus a planted false positive
(a 4 x 4 ED block in tumour-free brain on slice 5) and a planted false negative (the
ED of the left half of slice 4 erased), and its mask file has an ``unc_whole`` map.
Volume 2: a smaller brain and another tumour, predicted exactly. Ground truth is a
Kaggle-layout h5 folder; predictions a ``brats predict --save-masks`` folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from brats_sdk.labels import classes_to_one_hot
from tests.helpers import write_kaggle_volume, write_prediction_folder

DEPTH, SIZE = 10, 48
FP_SLICE, FP_BOX = 5, (8, 12, 30, 34)  # rows 8-11, columns 30-33
FN_SLICE = 4


@dataclass(frozen=True)
class ViewerCase:
    data_dir: Path
    pred_dir: Path
    truth: dict[int, npt.NDArray[np.uint8]]  # volume -> (D, H, W) class indices
    pred: dict[int, npt.NDArray[np.uint8]]
    unc: npt.NDArray[np.float32]  # volume 1's unc_whole


def _volume(centre: tuple[float, float], radii: tuple[float, float], tumour: tuple[int, int, float],
            seed: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint8]]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    brain = ((yy - centre[0]) / radii[0]) ** 2 + ((xx - centre[1]) / radii[1]) ** 2 <= 1.0
    image = np.zeros((DEPTH, 4, SIZE, SIZE))
    classes = np.zeros((DEPTH, SIZE, SIZE), dtype=np.uint8)
    ty, tx, tr = tumour
    dist = np.hypot(yy - ty, xx - tx)
    for z in range(1, DEPTH - 1):
        for c in range(4):
            image[z, c][brain] = 100.0 + 40.0 * c + 20.0 * np.sin(xx[brain] / 3.0 + z) + rng.normal(0, 5, int(brain.sum()))
        if 3 <= z <= 6:
            r = tr * (1.0 - abs(z - 4.5) / 4.0)
            classes[z][dist <= r] = 2
            classes[z][dist <= 0.6 * r] = 3
            classes[z][dist <= 0.3 * r] = 1
            image[z, 0][dist <= r] += 150.0
    return image, classes


def make_viewer_case(root: Path) -> ViewerCase:
    """Write the two volumes' ground truth and predictions under ``root``."""
    data_dir = root / "data"
    truth: dict[int, npt.NDArray[np.uint8]] = {}
    volumes = {1: _volume((24, 24), (18, 15), (28, 20, 7.0), 1), 2: _volume((22, 26), (14, 16), (18, 30, 5.0), 2)}
    for v, (image, classes) in volumes.items():
        write_kaggle_volume(data_dir, v, image, classes_to_one_hot(classes, channel_axis=1))
        truth[v] = classes
    pred = {v: t.copy() for v, t in truth.items()}
    y0, y1, x0, x1 = FP_BOX
    assert not truth[1][FP_SLICE, y0:y1, x0:x1].any()
    pred[1][FP_SLICE, y0:y1, x0:x1] = 2
    half = pred[1][FN_SLICE, :, : SIZE // 2 + 4]
    half[half == 2] = 0
    unc = np.zeros((DEPTH, SIZE, SIZE), dtype=np.float32)
    unc[pred[1] > 0] = 0.8
    unc[2, 20:23, 20:23] = 0.4
    pred_dir = write_prediction_folder(root / "pred", pred, uncertainty={1: {"whole": unc}})
    return ViewerCase(data_dir, pred_dir, truth, pred, unc)
