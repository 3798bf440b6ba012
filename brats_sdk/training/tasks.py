"""The two training tasks: segmentation (Dice loss) and survival (cross-entropy)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from brats_sdk.constants import MASK_CHANNELS, N_CLASSES, SURVIVAL_INPUT_SIZE
from brats_sdk.metrics.channels import dice_from_confusion, pixel_confusion
from brats_sdk.models.losses import DiceLoss
from brats_sdk.models.survival import prepare_masks
from brats_sdk.training.protocols import Batch

__all__ = ["SegmentationMeter", "SegmentationTask", "SurvivalMeter", "SurvivalTask"]


class SegmentationMeter:
    """Pooled per-channel Dice (NCR, ED, ET) of the arg-max prediction.

    Accumulates the pixel confusion matrix and scores it with the package's metric
    (:func:`~brats_sdk.metrics.channels.dice_from_confusion`): channels empty in both
    truth and prediction score 1.0.
    """

    def __init__(self) -> None:
        self._sums = torch.zeros(N_CLASSES * N_CLASSES, dtype=torch.float64)

    def update(self, outputs: torch.Tensor, batch: Batch) -> None:
        confusion = pixel_confusion(outputs.to("cpu").numpy(), batch["target"].numpy(), N_CLASSES)
        self._sums += torch.from_numpy(confusion.ravel()).to(torch.float64)

    def totals(self) -> torch.Tensor:
        return self._sums.clone()

    def summarise(self, totals: torch.Tensor) -> dict[str, float]:
        dice = dice_from_confusion(totals.view(N_CLASSES, N_CLASSES).numpy())
        out = {f"dice_{name}": dice[name] for name in MASK_CHANNELS}
        out["dice_mean"] = sum(out.values()) / len(MASK_CHANNELS)
        return out


class SegmentationTask:
    """Segmenter on normalised slices with the paper's Dice loss.

    Args:
        loss: The loss (defaults to ``DiceLoss()`` with weights [0, 1, 1, 1]).
    """

    def __init__(self, loss: nn.Module | None = None) -> None:
        self.loss = loss or DiceLoss()

    def step(self, model: nn.Module, batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # Channels-last, as the segmenter pipeline lays out its weights (faster convolutions).
        image = batch["image"].to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        target = batch["target"].to(device, non_blocking=True).long()
        logits = model(image)
        # The loss runs in fp32 even under autocast: softmax sums over 57,600 pixels.
        loss = self.loss(logits.float(), target)
        return loss, logits.detach().argmax(dim=1)

    def new_meter(self) -> SegmentationMeter:
        return SegmentationMeter()

    def batch_size_of(self, batch: Batch) -> int:
        return int(batch["image"].shape[0])


class SurvivalMeter:
    """Slice-level accuracy of the survival classifier."""

    def __init__(self) -> None:
        self._sums = torch.zeros(2, dtype=torch.float64)

    def update(self, outputs: torch.Tensor, batch: Batch) -> None:
        pred = outputs.argmax(dim=1).to("cpu")
        self._sums += torch.tensor([float((pred == batch["target"]).sum()), float(pred.numel())], dtype=torch.float64)

    def totals(self) -> torch.Tensor:
        return self._sums.clone()

    def summarise(self, totals: torch.Tensor) -> dict[str, float]:
        return {"accuracy": float(totals[0] / max(float(totals[1]), 1.0))}


class SurvivalTask:
    """Survival classifier on tumour masks and scaled age, with cross-entropy.

    Args:
        input_size: Side the masks are resized to (the model's ``config.input_size``).
    """

    def __init__(self, input_size: int = SURVIVAL_INPUT_SIZE) -> None:
        self.input_size = input_size

    def step(self, model: nn.Module, batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        masks = prepare_masks(batch["mask"].to(device, non_blocking=True), size=self.input_size)
        age = batch["age"].to(device, non_blocking=True)
        logits = model(masks, age)
        loss = F.cross_entropy(logits.float(), batch["target"].to(device))
        return loss, logits.detach().float()

    def new_meter(self) -> SurvivalMeter:
        return SurvivalMeter()

    def batch_size_of(self, batch: Batch) -> int:
        return int(batch["mask"].shape[0])
