"""2D tumour segmenter: ``smp.Unet`` with a ResNet-18 encoder and the paper's optional head."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from types import MappingProxyType
from typing import Self

import numpy as np
import numpy.typing as npt
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brats_sdk.checkpoint import CheckpointKind
from brats_sdk.constants import IMAGE_CHANNELS, N_CLASSES
from brats_sdk.data.crops import stride_padding
from brats_sdk.data.normalise import Normalisation
from brats_sdk.errors import ConfigError, DataError
from brats_sdk.labels import classes_to_labels
from brats_sdk.models.batched import in_batches
from brats_sdk.models.persist import Checkpointed
from brats_sdk.models.pretrained import check_encoder_weights, ensure_smp_encoder_weights
from brats_sdk.options import OptionEnum, config_to_dict

__all__ = ["HeadKind", "Segmenter", "SegmenterConfig", "config_to_dict"]

logger = logging.getLogger(__name__)

_STRIDE = 32  # the U-Net's total down-sampling: inputs must be a multiple of it
_HEAD_PREFIX = "unet.segmentation_head."


class HeadKind(OptionEnum):
    """Segmentation head on top of the U-Net decoder.

    DEFAULT: smp's head, one Conv3x3 16 -> n_classes.
    PAPER: the paper's head, Conv3x3 16->8, ReLU, Conv3x3 8->4, ReLU, Conv1x1 4->n_classes.
    """

    DEFAULT = "default"
    PAPER = "paper"


@dataclass(frozen=True)
class SegmenterConfig:
    """How a :class:`Segmenter` is built.

    Attributes:
        encoder_name: smp encoder name (``"resnet18"`` in the paper).
        encoder_weights: None (random initialisation) or ``"imagenet"``.
        in_channels: Input channels, the 4 MRI modalities.
        n_classes: Output classes, background + 3 tumour regions.
        head: Segmentation head (a :class:`HeadKind` or its string value).
        input_size: None: inputs are zero-padded to a multiple of 32 and the logits
            cropped back (no interpolation). An int (the paper: 256): images are resized
            bilinearly to ``input_size x input_size`` and the logits back to ``H x W``.
            Must be a positive multiple of 32.
        normalisation: The intensity normalisation the network's input gets (a
            :class:`~brats_sdk.data.normalise.Normalisation` or its value); training and
            prediction both apply it.

    Raises:
        ConfigError: An invalid value.
    """

    encoder_name: str = "resnet18"
    encoder_weights: str | None = None
    in_channels: int = len(IMAGE_CHANNELS)
    n_classes: int = N_CLASSES
    head: HeadKind = HeadKind.DEFAULT
    input_size: int | None = None
    normalisation: Normalisation = Normalisation.SLICE

    def __post_init__(self) -> None:
        object.__setattr__(self, "head", HeadKind.parse(self.head))
        object.__setattr__(self, "normalisation", Normalisation.parse(self.normalisation))
        check_encoder_weights(self.encoder_weights)
        if not isinstance(self.encoder_name, str) or not self.encoder_name:
            raise ConfigError(f"encoder_name must be a non-empty string, got {self.encoder_name!r}")
        if type(self.in_channels) is not int or self.in_channels < 1:
            raise ConfigError(f"in_channels must be a positive int, got {self.in_channels!r}")
        if type(self.n_classes) is not int or not 2 <= self.n_classes <= 255:
            raise ConfigError(f"n_classes must be an int in 2..255, got {self.n_classes!r}")
        if self.input_size is not None and (
            type(self.input_size) is not int or self.input_size <= 0 or self.input_size % _STRIDE
        ):
            raise ConfigError(
                f"input_size must be None or a positive multiple of {_STRIDE}, got {self.input_size!r}"
            )


def _paper_head(in_channels: int, n_classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(8, 4, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(4, n_classes, kernel_size=1),
    )


class Segmenter(Checkpointed[SegmenterConfig], nn.Module):
    """U-Net (segmentation-models-pytorch) mapping MRI slices to class logits.

    Args:
        config: Build options; defaults to ``SegmenterConfig()`` (the paper's network).
        head: Overrides ``config.head`` when given.
        encoder_name: Overrides ``config.encoder_name`` when given.
        encoder_weights: Overrides ``config.encoder_weights`` when given (None keeps the
            config's value).

    Attributes:
        config: The current config (replaced, not mutated, by :meth:`replace_head`).
        unet: The ``smp.Unet``.
        metadata: Free-form plain-data dict stored in checkpoints (empty by default).

    Raises:
        ConfigError: An invalid option (unknown head, encoder or weights).
        WeightsUnavailableError: ImageNet weights were requested but are neither cached
            nor downloadable.
    """

    checkpoint_kind = CheckpointKind.SEGMENTER
    config_type = SegmenterConfig
    model_name = "segmenter"
    # Checkpoints that record no normalisation were trained with per-volume normalisation.
    legacy_config = MappingProxyType({"normalisation": Normalisation.VOLUME.value})

    def __init__(
        self,
        config: SegmenterConfig | None = None,
        *,
        head: HeadKind | str | None = None,
        encoder_name: str | None = None,
        encoder_weights: str | None = None,
    ) -> None:
        super().__init__()
        cfg = config if config is not None else SegmenterConfig()
        overrides: dict[str, object] = {}
        if head is not None:
            overrides["head"] = HeadKind.parse(head)
        if encoder_name is not None:
            overrides["encoder_name"] = encoder_name
        if encoder_weights is not None:
            overrides["encoder_weights"] = encoder_weights
        cfg = dataclasses.replace(cfg, **overrides)  # type: ignore[arg-type]  # fields checked in __post_init__
        self.config: SegmenterConfig = cfg
        self.metadata: dict[str, object] = {}
        self._backbone_frozen = False

        if (
            cfg.encoder_name not in smp.encoders.get_encoder_names()
            and not cfg.encoder_name.startswith("tu-")
        ):
            raise ConfigError(
                f"unknown encoder {cfg.encoder_name!r}; supported encoders: "
                f"{', '.join(sorted(smp.encoders.get_encoder_names()))}"
            )
        ensure_smp_encoder_weights(cfg.encoder_name, cfg.encoder_weights)
        self.unet: nn.Module = smp.Unet(
            encoder_name=cfg.encoder_name,
            encoder_weights=cfg.encoder_weights,
            in_channels=cfg.in_channels,
            classes=cfg.n_classes,
        )
        if cfg.head is HeadKind.PAPER:
            self._install_paper_head()

    # ----------------------------------------------------------------- head & freezing
    @property
    def head(self) -> nn.Module:
        """The segmentation head (the only part trained when the backbone is frozen)."""
        head = self.unet.segmentation_head
        if not isinstance(head, nn.Module):
            raise TypeError("the U-Net has no segmentation head module")
        return head

    @property
    def backbone_frozen(self) -> bool:
        """Whether :meth:`freeze_backbone` is in effect."""
        return self._backbone_frozen

    def _decoder_out_channels(self) -> int:
        for module in self.head.modules():
            if isinstance(module, nn.Conv2d):
                return module.in_channels
        raise ConfigError("cannot find the input width of the segmentation head")

    def _install_paper_head(self) -> None:
        ref = next(self.head.parameters())
        new_head = _paper_head(self._decoder_out_channels(), self.config.n_classes)
        self.unet.segmentation_head = new_head.to(device=ref.device, dtype=ref.dtype)

    def replace_head(self) -> None:
        """Install a freshly initialised paper head (the paper's training stage 2).

        Always replaces the current head, even a paper head, so the head's weights start
        anew. ``config.head`` becomes :attr:`HeadKind.PAPER`. The new head is trainable.
        """
        self._install_paper_head()
        self.config = dataclasses.replace(self.config, head=HeadKind.PAPER)
        logger.info("segmentation head replaced by the paper head")

    def freeze_backbone(self) -> None:
        """Train only the head: encoder and decoder get ``requires_grad=False``.

        Their BatchNorm layers also stay in eval mode while the model is in train mode
        (see :meth:`train`): BatchNorm updates its running statistics in every training
        forward pass whatever ``requires_grad`` says, so without this the "frozen" backbone
        would still change and the head would be trained on drifting features.
        """
        for name, param in self.named_parameters():
            param.requires_grad_(name.startswith(_HEAD_PREFIX))
        self._backbone_frozen = True
        self.train(self.training)

    def unfreeze(self) -> None:
        """Make every parameter trainable again and let BatchNorm statistics update."""
        for param in self.parameters():
            param.requires_grad_(True)
        self._backbone_frozen = False
        self.train(self.training)

    def train(self, mode: bool = True) -> Self:
        """Set train/eval mode; with a frozen backbone its BatchNorm layers stay in eval.

        Args:
            mode: True for training mode.

        Returns:
            self.
        """
        super().train(mode)
        if mode and self._backbone_frozen:
            head_modules = set(self.head.modules())
            for module in self.modules():
                if (
                    isinstance(module, nn.modules.batchnorm._BatchNorm)
                    and module not in head_modules
                ):
                    module.eval()
        return self

    # ------------------------------------------------------------------------ forward
    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise DataError(f"segmenter input must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4:
            raise DataError(f"segmenter input must be (B, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.config.in_channels:
            raise DataError(
                f"segmenter input has {x.shape[1]} channels, expected {self.config.in_channels} "
                f"({', '.join(IMAGE_CHANNELS)})"
            )
        if not x.dtype.is_floating_point:
            raise DataError(f"segmenter input must be a float tensor, got {x.dtype}")
        if not bool(torch.isfinite(x).all()):
            raise DataError("segmenter input holds NaN or infinite values")

    def forward(self, x: Tensor) -> Tensor:
        """Class logits for a batch of slices.

        Args:
            x: Normalised images ``(B, in_channels, H, W)``, any ``H, W``. Background
                is 0 after normalisation, so zero padding adds background.

        Returns:
            Logits ``(B, n_classes, H, W)``.

        Raises:
            DataError: Wrong number of dims or channels, non-float dtype, or NaN/inf values.
        """
        self._check_input(x)
        height, width = int(x.shape[-2]), int(x.shape[-1])
        size = self.config.input_size
        if size is not None:
            resized = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            logits: Tensor = self.unet(resized)
            return F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        top, bottom, left, right = self.pad_offsets(height, width)
        pad_h, pad_w = top + bottom, left + right
        padded = F.pad(x, (left, pad_w - left, top, pad_h - top)) if pad_h or pad_w else x
        logits = self.unet(padded)
        return logits[..., top : top + height, left : left + width]

    @staticmethod
    def pad_offsets(height: int, width: int) -> tuple[int, int, int, int]:
        """Zero padding (top, bottom, left, right) that :meth:`forward` adds to reach a
        multiple of 32 (split evenly, the extra pixel at the bottom/right).

        Exposed so that callers cropping inputs (the predictor's brain box) can keep the
        network's pooling grid aligned with the full-slice computation.
        """
        return stride_padding(height, width)

    # ---------------------------------------------------------------------- inference
    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.parameters()).device

    def predict(
        self,
        volume: npt.NDArray[np.floating] | Tensor,
        *,
        batch_size: int = 32,
        device: str | torch.device | None = None,
    ) -> npt.NDArray[np.uint8]:
        """Class-index map of a stack of slices.

        Runs in eval mode under :func:`torch.inference_mode`, ``batch_size`` slices at a
        time; the previous train/eval mode is restored afterwards.

        Args:
            volume: Normalised images ``(D, in_channels, H, W)`` (numpy or tensor).
            batch_size: Slices per forward pass (>= 1).
            device: Device to run on; the model is moved there and stays there. None:
                the model's current device.

        Returns:
            Class indices ``(D, H, W)`` uint8 in ``0..n_classes-1`` (0 = background).

        Raises:
            ConfigError: ``batch_size`` < 1.
            DataError: ``volume`` has the wrong shape or holds NaN/inf values.
        """
        data = torch.as_tensor(volume)
        if data.ndim != 4:
            raise DataError(f"volume must be (D, C, H, W), got shape {tuple(data.shape)}")

        def step(items: slice, target: torch.device) -> npt.NDArray[np.uint8]:
            classes: npt.NDArray[np.uint8] = self(data[items].to(target, torch.float32)).argmax(dim=1).to(torch.uint8).cpu().numpy()
            return classes

        empty = np.zeros((0, *data.shape[2:]), dtype=np.uint8)
        return in_batches(self, data.shape[0], step, batch_size=batch_size, device=device, empty=empty)

    def predict_labels(
        self,
        volume: npt.NDArray[np.floating] | Tensor,
        *,
        batch_size: int = 32,
        device: str | torch.device | None = None,
    ) -> npt.NDArray[np.uint8]:
        """BraTS label map of a stack of slices: :meth:`predict` mapped to {0, 1, 2, 4}.

        Args:
            volume: Normalised images ``(D, in_channels, H, W)``.
            batch_size: Slices per forward pass.
            device: As in :meth:`predict`.

        Returns:
            BraTS labels ``(D, H, W)`` uint8 in {0, 1, 2, 4}.

        Raises:
            ConfigError: As :meth:`predict`.
            DataError: As :meth:`predict`.
        """
        return classes_to_labels(self.predict(volume, batch_size=batch_size, device=device))
