"""Small builders of real files and models for tests."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.utils.data import Dataset

from brats_sdk import AgeScaler, SurvivalBins, SurvivalClassifier
from brats_sdk.training.protocols import Batch


def write_slice(
    path: Path,
    image: npt.NDArray[np.floating] | None = None,
    mask: npt.NDArray[np.uint8] | None = None,
    *,
    size: int = 16,
    with_mask: bool = True,
    image_dtype: type = np.float64,
) -> Path:
    """Write one ``volume_<V>_slice_<S>.h5`` file as the release stores it: (H, W, C)."""
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    if image is None:
        image = rng.normal(size=(size, size, 4))
    if mask is None and with_mask:
        mask = np.zeros((image.shape[0], image.shape[1], 3), dtype=np.uint8)
        mask[2:5, 2:5, 1] = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=np.asarray(image, dtype=image_dtype))
        if with_mask and mask is not None:
            f.create_dataset("mask", data=mask)
    return path


def randomise_norms(model: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm2d non-trivial statistics and affine parameters (a fresh model's
    are the identity, which would hide folding and windowing mistakes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)  # type: ignore[union-attr]  # BatchNorm tracks running stats here
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)  # type: ignore[union-attr]  # BatchNorm tracks running stats here
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def tumour_masks(g: torch.Generator) -> torch.Tensor:
    """One-hot masks (N, 3, 240, 240): tumours of many sizes and places, borders included;
    the last mask is empty."""
    boxes = [(100, 140, 90, 150), (0, 30, 0, 25), (210, 240, 200, 240), (118, 119, 5, 6), (0, 240, 0, 240), (40, 200, 60, 70)]
    masks = torch.zeros(len(boxes) + 1, 3, 240, 240)
    for i, (y0, y1, x0, x1) in enumerate(boxes):
        labels = torch.randint(0, 4, (y1 - y0, x1 - x0), generator=g)
        for c in range(3):
            masks[i, c, y0:y1, x0:x1] = (labels == c + 1).float()
    return masks


def randomised_classifier(dtype: torch.dtype = torch.float32) -> SurvivalClassifier:
    """A seeded survival classifier in eval mode, with non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    model = SurvivalClassifier(bins=SurvivalBins.brats(), age_scaler=AgeScaler(20.0, 85.0)).to(dtype)
    randomise_norms(model, seed=1)
    return model.eval()


def kaggle_style(volume: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """A raw ``(D, C, H, W)`` volume normalised as the Kaggle h5 release is reported to be:
    each slice and channel z-scored over its whole frame, background included, float64
    (a constant slice, such as one without brain, becomes zeros)."""
    raw = np.asarray(volume, dtype=np.float64)
    mean = raw.mean(axis=(-2, -1), keepdims=True)
    std = raw.std(axis=(-2, -1), keepdims=True)
    out = np.zeros_like(raw)
    np.divide(raw - mean, std, out=out, where=std > 0)
    return out


def write_kaggle_volume(data_dir: Path, volume: int, image: npt.NDArray[np.floating], mask: npt.NDArray[np.uint8]) -> None:
    """Write one ``(D, C, H, W)`` volume and its ``(D, 3, H, W)`` one-hot mask as Kaggle
    slice files ``volume_<V>_slice_<S>.h5`` (``image`` (H, W, 4) float64, ``mask`` (H, W, 3))."""
    for s in range(image.shape[0]):
        write_slice(
            data_dir / f"volume_{volume}_slice_{s}.h5",
            np.moveaxis(image[s], 0, -1),
            np.ascontiguousarray(np.moveaxis(mask[s], 0, -1)),
        )


def write_prediction_folder(
    out: Path,
    pred: dict[int, npt.NDArray[np.uint8]],
    *,
    input_dir: Path | None = None,
    uncertainty: dict[int, dict[str, npt.NDArray[np.float32]]] | None = None,
) -> Path:
    """A segmentation-only ``brats predict --save-masks`` folder written with the predict
    writers: ``pred`` maps volume -> ``(D, H, W)`` class indices; ``uncertainty`` adds
    ``unc_<name>`` datasets to a volume's mask file."""
    from brats_sdk.labels import classes_to_labels
    from brats_sdk.predict.outputs import (
        mask_file_name,
        prediction_row,
        write_json,
        write_prediction_masks,
        write_rows_csv,
    )
    from brats_sdk.predict.results import VolumePrediction, region_volumes_ml
    from brats_sdk.run_files import MASKS_DIR, PREDICTIONS_CSV, PREDICTIONS_JSON

    rows = []
    for v, classes in sorted(pred.items()):
        p = VolumePrediction(
            volume=v, name=f"volume_{v}", patient_id=f"BraTS20_Training_{v:03d}", labels=classes_to_labels(classes),
            age=None, slice_indices=(), slice_probs=np.zeros((0, 3)), predicted_bin=None, mean_prob_bin=None,
            mean_probs=None, votes=None, bin_label=None, bin_days=None, region_ml=region_volumes_ml(classes),
            status="no survival model", seconds=0.1,
        )
        path = out / MASKS_DIR / mask_file_name(v)
        write_prediction_masks(path, p, 0)
        for name, values in (uncertainty or {}).get(v, {}).items():
            with h5py.File(path, "a") as f:
                f.create_dataset(f"unc_{name}", data=values)
        rows.append(prediction_row(p, None))
    write_rows_csv(out / PREDICTIONS_CSV, rows)
    write_json(out / PREDICTIONS_JSON, {
        "sdk_version": "0.1.0", "created": "2025-01-01T00:00:00+00:00",
        "input": "" if input_dir is None else str(input_dir), "models": {}, "bins": None, "volumes": rows,
    })
    return out


class TensorDataset(Dataset[Batch]):
    """Dict samples ``image (4, H, W)`` / ``target (H, W)`` from two stacked tensors."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        self.images, self.targets = images, targets

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> Batch:
        return {"image": self.images[i], "target": self.targets[i]}
