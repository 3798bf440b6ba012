"""Survival-bin classifier of the paper: ResNet-50 on tumour masks plus an age branch."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn
from torchvision.models import resnet50

from brats_sdk.bins import SurvivalBins
from brats_sdk.checkpoint import CheckpointKind
from brats_sdk.constants import MASK_CHANNELS, SURVIVAL_INPUT_SIZE
from brats_sdk.data.age_scaling import AgeScaler
from brats_sdk.errors import ConfigError, DataError
from brats_sdk.models.batched import in_batches
from brats_sdk.models.persist import Checkpointed, ModelRecord
from brats_sdk.models.pretrained import check_encoder_weights, resnet50_imagenet_state_dict
from brats_sdk.models.survival_inputs import bin_probabilities, prepare_age, prepare_masks

__all__ = [
    "AgeScaler",
    "SurvivalClassifier",
    "SurvivalConfig",
    "bin_probabilities",
    "prepare_age",
    "prepare_masks",
]

logger = logging.getLogger(__name__)

_N_MASK_CHANNELS = len(MASK_CHANNELS)
_IMAGE_FEATURES = 128
_AGE_FEATURES = 10


@dataclass(frozen=True)
class SurvivalConfig:
    """How a :class:`SurvivalClassifier` is built.

    Attributes:
        n_bins: Number of survival bins (classes), at least 2.
        encoder_weights: None (random initialisation) or ``"imagenet"`` for the ResNet-50.
        dropout: Dropout probability of the three dropout layers, in ``[0, 1)``.
        input_size: Side of the square mask images the network takes (224 in the paper).

    Raises:
        ConfigError: An invalid value.
    """

    n_bins: int = 3
    encoder_weights: str | None = None
    dropout: float = 0.3
    input_size: int = SURVIVAL_INPUT_SIZE

    def __post_init__(self) -> None:
        check_encoder_weights(self.encoder_weights)
        if type(self.n_bins) is not int or self.n_bins < 2:
            raise ConfigError(f"n_bins must be an int >= 2, got {self.n_bins!r}")
        if not isinstance(self.dropout, int | float) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if type(self.input_size) is not int or self.input_size < 32:
            raise ConfigError(f"input_size must be an int >= 32, got {self.input_size!r}")


class SurvivalClassifier(Checkpointed[SurvivalConfig], nn.Module):
    """The paper's survival-bin classifier.

    Image branch: torchvision ResNet-50 with ``fc = Linear(2048, 128), ReLU, Dropout``.
    Age branch: ``Linear(1, 10), ReLU, Linear(10, 10)``. Head on the concatenation (138):
    ``Linear(138, 256), ReLU, Dropout, Linear(256, 128), ReLU, Dropout, Linear(128, n_bins)``.

    Args:
        config: Build options; default ``SurvivalConfig()`` (or ``n_bins`` from ``bins``).
        bins: Survival bins the classes stand for; saved in checkpoints.
        age_scaler: Age scaling fitted on the training patients; saved in checkpoints and
            needed by :meth:`predict_proba`.
        encoder_weights: Overrides ``config.encoder_weights`` when given.

    Attributes:
        config: The config.
        bins: The survival bins, or None.
        age_scaler: The age scaler, or None.
        metadata: Free-form plain-data dict stored in checkpoints (empty by default).

    Raises:
        ConfigError: Invalid options, or ``bins`` with another number of bins than the config.
        WeightsUnavailableError: ImageNet weights were requested but are not available.
    """

    checkpoint_kind = CheckpointKind.SURVIVAL
    config_type = SurvivalConfig
    model_name = "survival"

    def __init__(
        self,
        config: SurvivalConfig | None = None,
        *,
        bins: SurvivalBins | None = None,
        age_scaler: AgeScaler | None = None,
        encoder_weights: str | None = None,
    ) -> None:
        super().__init__()
        if config is None:
            config = SurvivalConfig(n_bins=bins.n_bins) if bins is not None else SurvivalConfig()
        if encoder_weights is not None:
            config = dataclasses.replace(config, encoder_weights=encoder_weights)
        if bins is not None and bins.n_bins != config.n_bins:
            raise ConfigError(
                f"survival bins have {bins.n_bins} bins but the config has n_bins={config.n_bins}"
            )
        self.config: SurvivalConfig = config
        self.bins: SurvivalBins | None = bins
        self.age_scaler: AgeScaler | None = age_scaler
        self.metadata: dict[str, object] = {}

        p = config.dropout
        backbone = resnet50(weights=None)
        if config.encoder_weights is not None:
            backbone.load_state_dict(resnet50_imagenet_state_dict())
        backbone.fc = nn.Sequential(
            nn.Linear(2048, _IMAGE_FEATURES), nn.ReLU(inplace=True), nn.Dropout(p)
        )
        self.backbone: nn.Module = backbone
        self.age_branch = nn.Sequential(
            nn.Linear(1, _AGE_FEATURES),
            nn.ReLU(inplace=True),
            nn.Linear(_AGE_FEATURES, _AGE_FEATURES),
        )
        self.head = nn.Sequential(
            nn.Linear(_IMAGE_FEATURES + _AGE_FEATURES, 256),
            nn.ReLU(inplace=True),
            nn.Dropout(p),
            nn.Linear(256, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(p),
            nn.Linear(128, config.n_bins),
        )

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.parameters()).device

    def forward(self, masks: Tensor, age: Tensor) -> Tensor:
        """Bin logits.

        Args:
            masks: Prepared masks ``(B, 3, S, S)`` float, ``S = config.input_size``
                (see :func:`prepare_masks`).
            age: Scaled ages ``(B, 1)`` float (see :func:`prepare_age`).

        Returns:
            Logits ``(B, n_bins)``.

        Raises:
            DataError: Wrong shapes or dtypes, or batch sizes that differ.
        """
        size = self.config.input_size
        if masks.ndim != 4 or tuple(masks.shape[1:]) != (_N_MASK_CHANNELS, size, size):
            raise DataError(
                f"masks must be (B, {_N_MASK_CHANNELS}, {size}, {size}) (use prepare_masks), "
                f"got shape {tuple(masks.shape)}"
            )
        if age.ndim != 2 or age.shape[1] != 1 or age.shape[0] != masks.shape[0]:
            raise DataError(
                f"age must be (B, 1) with B = {masks.shape[0]} (use prepare_age), got shape {tuple(age.shape)}"
            )
        if not (masks.dtype.is_floating_point and age.dtype.is_floating_point):
            raise DataError(
                f"masks and age must be float tensors, got {masks.dtype} and {age.dtype}"
            )
        features = torch.cat([self.backbone(masks), self.age_branch(age)], dim=1)
        logits: Tensor = self.head(features)
        return logits

    def predict_proba(
        self,
        masks_one_hot: Tensor | npt.NDArray[np.generic],
        ages: Sequence[float] | npt.NDArray[np.floating],
        *,
        batch_size: int = 32,
        device: str | torch.device | None = None,
    ) -> npt.NDArray[np.float64]:
        """Bin probabilities per slice.

        Scales ages with :func:`prepare_age` and runs :func:`bin_probabilities` in eval mode
        under :func:`torch.inference_mode`, ``batch_size`` slices at a time, and restores
        the previous train/eval mode.

        Args:
            masks_one_hot: Tumour masks ``(N, 3, H, W)`` in ``[0, 1]`` (NCR, ED, ET), any H, W.
            ages: ``N`` ages in years.
            batch_size: Slices per forward pass (>= 1).
            device: Device to run on; the model is moved there and stays there. None:
                the model's current device.

        Returns:
            Probabilities ``(N, n_bins)`` float64, rows summing to 1.

        Raises:
            ConfigError: No age scaler is set, or ``batch_size`` < 1.
            DataError: Bad masks or ages, or their counts differ.
        """
        if self.age_scaler is None:
            raise ConfigError(
                "this survival model has no age scaler; pass age_scaler=AgeScaler.fit(...)"
            )
        masks = torch.as_tensor(masks_one_hot)
        age = prepare_age(ages, self.age_scaler)
        if masks.ndim != 4 or masks.shape[0] != age.shape[0]:
            raise DataError(
                f"got masks of shape {tuple(masks.shape)} and {age.shape[0]} ages; "
                "expected (N, 3, H, W) masks and N ages"
            )

        def step(items: slice, target: torch.device) -> npt.NDArray[np.float64]:
            probs = bin_probabilities(self, masks[items].to(target), age[items], size=self.config.input_size)
            return probs.cpu().numpy()

        empty = np.zeros((0, self.config.n_bins), dtype=np.float64)
        return in_batches(self, masks.shape[0], step, batch_size=batch_size, device=device, empty=empty)

    def predict(
        self,
        masks_one_hot: Tensor | npt.NDArray[np.generic],
        ages: Sequence[float] | npt.NDArray[np.floating],
        *,
        batch_size: int = 32,
        device: str | torch.device | None = None,
    ) -> npt.NDArray[np.int64]:
        """Most probable bin per slice: ``argmax`` of :meth:`predict_proba`.

        Args:
            masks_one_hot: Tumour masks ``(N, 3, H, W)``.
            ages: ``N`` ages in years.
            batch_size: Slices per forward pass.
            device: As in :meth:`predict_proba`.

        Returns:
            Bin indices ``(N,)`` int64.

        Raises:
            ConfigError: As :meth:`predict_proba`.
            DataError: As :meth:`predict_proba`.
        """
        proba = self.predict_proba(masks_one_hot, ages, batch_size=batch_size, device=device)
        best: npt.NDArray[np.int64] = proba.argmax(axis=1).astype(np.int64)
        return best

    def checkpoint_extras(self) -> dict[str, object]:
        """The bins and the age scaler (plain dicts, or None) saved beside the weights."""
        return {
            "bins": None if self.bins is None else self.bins.to_dict(),
            "age_scaler": None if self.age_scaler is None else self.age_scaler.to_dict(),
        }

    @classmethod
    def from_record(cls, config: SurvivalConfig, record: ModelRecord) -> Self:
        """The classifier of a stored config with the bins and age scaler saved beside it.

        Raises:
            ConfigError: Invalid bins or age scaling.
        """
        raw_bins, raw_scaler = record.data.get("bins"), record.data.get("age_scaler")
        bins = SurvivalBins.from_dict(raw_bins) if isinstance(raw_bins, dict) else None
        scaler = AgeScaler.from_dict(raw_scaler) if isinstance(raw_scaler, dict) else None
        return cls(config, bins=bins, age_scaler=scaler)
