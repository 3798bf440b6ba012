"""ONNX Runtime against PyTorch on whole volumes: what ``brats export`` checks before it
finishes.

Per volume: the whole prediction through both (the PyTorch predictor as it runs by
default, the export through ONNX Runtime), the share of brain voxels whose labels are
identical and the two volume bins; and, per network, the largest absolute logit
difference between the plain PyTorch network (as trained, no inference rewrites) and
its graph, on a few whole brain slices and on the masks of up to 16 tumour slices.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
import torch

from brats_sdk.data.crops import stride_padding
from brats_sdk.data.normalise import brain_mask, normalise_volume
from brats_sdk.labels import classes_to_one_hot, labels_to_classes
from brats_sdk.models.survival import prepare_masks
from brats_sdk.predict.onnx_networks import OnnxNetworks
from brats_sdk.predict.predictor import CombinedPredictor

__all__ = ["MIN_LABEL_AGREEMENT", "VolumeParity", "check_volume"]

MIN_LABEL_AGREEMENT = 0.9999
"""Share of brain voxels whose labels must be identical between ONNX Runtime and PyTorch."""

_LOGIT_SLICES = 4
_SURVIVAL_SLICES = 16


@dataclass(frozen=True, slots=True)
class VolumeParity:
    """ONNX Runtime against PyTorch on one volume.

    Attributes:
        name: The volume (``synthetic`` or its case name).
        brain_voxels: Brain voxels compared.
        label_agreement: Share of them with identical labels (whole prediction).
        segmenter_max_logit_diff: Largest absolute logit difference, plain U-Net vs graph.
        survival_max_logit_diff: The same for the survival network (None: none compared).
        slice_bin_agreement: Share of the compared tumour slices whose bins agree.
        torch_bin, onnx_bin: The volume's voted bin by each (None: no vote).
    """

    name: str
    brain_voxels: int
    label_agreement: float
    segmenter_max_logit_diff: float
    survival_max_logit_diff: float | None
    slice_bin_agreement: float | None
    torch_bin: int | None
    onnx_bin: int | None

    def problems(self) -> list[str]:
        """What is beyond tolerance (empty: the export matches on this volume)."""
        out: list[str] = []
        if self.label_agreement < MIN_LABEL_AGREEMENT:
            out.append(f"{self.name}: labels agree on {100 * self.label_agreement:.3f} % of brain voxels (< {100 * MIN_LABEL_AGREEMENT:.2f} %)")
        if self.slice_bin_agreement is not None and self.slice_bin_agreement < 1.0:
            out.append(f"{self.name}: slice bins agree on {100 * self.slice_bin_agreement:.1f} % of tumour slices")
        if self.torch_bin != self.onnx_bin:
            out.append(f"{self.name}: volume bin {self.onnx_bin} by ONNX Runtime, {self.torch_bin} by PyTorch")
        if not math.isfinite(self.segmenter_max_logit_diff):
            out.append(f"{self.name}: segmenter logits are not finite")
        return out

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def check_volume(
    name: str,
    image: npt.NDArray[np.floating],
    reference: CombinedPredictor,
    exported: CombinedPredictor,
    *,
    truth: npt.NDArray[np.uint8] | None = None,
) -> VolumeParity:
    """Compare the two predictors on one raw volume.

    Args:
        name: For the report.
        image: ``(D, C, H, W)`` raw intensities.
        reference: The PyTorch predictor (``segmenter`` set).
        exported: The predictor of the export (ONNX Runtime networks).
        truth: ``(D, 3, H, W)`` one-hot truth: its tumour slices feed the survival
            comparison when the segmenter finds no tumour (an untrained model).

    Returns:
        The figures.
    """
    nets = exported.networks
    segmenter, survival = reference.segmenter, reference.survival
    if not isinstance(nets, OnnxNetworks) or segmenter is None:
        raise TypeError("check_volume compares a PyTorch predictor with an ONNX Runtime one")
    raw = np.asarray(image, dtype=np.float32)
    age = None
    if survival is not None and survival.age_scaler is not None:
        age = (survival.age_scaler.min_age + survival.age_scaler.max_age) / 2
    ref = reference.predict_volume(raw, age, name=name)
    got = exported.predict_volume(raw, age, name=name)
    brain = brain_mask(raw)
    n_brain = int(brain.sum())
    agreement = float((ref.labels[brain] == got.labels[brain]).mean()) if n_brain else 1.0

    # Plain U-Net against its graph on a few whole brain slices.
    brain_slices = np.flatnonzero(brain.reshape(brain.shape[0], -1).any(axis=1))
    picked = brain_slices[np.linspace(0, brain_slices.size - 1, min(_LOGIT_SLICES, brain_slices.size)).astype(int)] if brain_slices.size else brain_slices
    seg_diff = 0.0
    if picked.size:
        normed = normalise_volume(raw[picked], segmenter.config.normalisation, brain=brain[picked])
        _, _, h, w = normed.shape
        top, bottom, left, right = stride_padding(h, w)
        padded = np.ascontiguousarray(np.pad(normed, ((0, 0), (0, 0), (top, bottom), (left, right))))
        with torch.inference_mode():
            want = segmenter.eval().unet(torch.from_numpy(padded)).numpy()
        seg_diff = float(np.abs(want - nets.segmenter_logits(padded)).max())

    surv_diff = slice_agree = None
    if survival is not None and age is not None and survival.age_scaler is not None:
        classes = labels_to_classes(ref.labels)
        tumour = np.flatnonzero(classes.reshape(classes.shape[0], -1).any(axis=1))
        one_hot = classes_to_one_hot(classes[tumour])
        if tumour.size == 0 and truth is not None:
            tumour = np.flatnonzero(truth.reshape(truth.shape[0], -1).any(axis=1))
            one_hot = np.asarray(truth[tumour], dtype=np.uint8)
        if tumour.size:
            keep = np.linspace(0, tumour.size - 1, min(_SURVIVAL_SLICES, tumour.size)).astype(int)
            one_hot = np.ascontiguousarray(one_hot[keep])
            scaled = survival.age_scaler.transform(age)
            with torch.inference_mode():
                x = prepare_masks(torch.from_numpy(one_hot), size=survival.config.input_size)
                want_s = survival.eval()(x, torch.full((x.shape[0], 1), scaled)).numpy()
            got_s = nets.survival_logits(one_hot, scaled)
            surv_diff = float(np.abs(want_s - got_s).max())
            slice_agree = float((want_s.argmax(axis=1) == got_s.argmax(axis=1)).mean())
    return VolumeParity(
        name=name,
        brain_voxels=n_brain,
        label_agreement=agreement,
        segmenter_max_logit_diff=seg_diff,
        survival_max_logit_diff=surv_diff,
        slice_bin_agreement=slice_agree,
        torch_bin=ref.predicted_bin,
        onnx_bin=got.predicted_bin,
    )
