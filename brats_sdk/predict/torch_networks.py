"""The PyTorch networks behind :class:`~brats_sdk.predict.predictor.CombinedPredictor`.

Eval-mode copies of the trained networks, rewritten for speed where the
:class:`~brats_sdk.predict.predictor.PredictorConfig` asks
(:func:`~brats_sdk.predict.accel.accelerate`), in channels-last memory and optionally as
bf16 copies; the survival probabilities come from the one path,
:func:`~brats_sdk.models.survival_inputs.bin_probabilities`; on a CPU, whole batches run
side by side, one core each (:class:`~brats_sdk.predict.workers.CpuWorkers`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import torch

from brats_sdk.bins import SurvivalBins
from brats_sdk.data.age_scaling import AgeScaler
from brats_sdk.data.normalise import Normalisation
from brats_sdk.device import resolve_device, warn_if_slow_bf16
from brats_sdk.labels import classes_to_one_hot
from brats_sdk.models.segmenter import Segmenter
from brats_sdk.models.survival import SurvivalClassifier, bin_probabilities
from brats_sdk.predict.accel import AccelOptions, accelerate, window_logits
from brats_sdk.predict.config import CropPadding, Precision, PredictorConfig
from brats_sdk.predict.workers import CpuWorkers

__all__ = ["TorchNetworks"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")


class TorchNetworks:
    """PyTorch modules as :class:`~brats_sdk.predict.networks.PredictionNetworks`.

    Args:
        segmenter: A trained :class:`Segmenter` (kept as it is: what runs is a copy).
        survival: A trained :class:`SurvivalClassifier`, or None.
        device: Device request (``auto`` picks CUDA, then MPS, then CPU).
        config: Inference options.
    """

    def __init__(
        self,
        segmenter: Segmenter,
        survival: SurvivalClassifier | None,
        device: str | torch.device,
        config: PredictorConfig,
    ) -> None:
        self.config = config
        self._device = resolve_device(device)
        if self.config.precision is Precision.BF16:
            warn_if_slow_bf16(self._device, "bf16 prediction")
        # The memory format and dtype of the networks' weights and of every input batch: bf16
        # copies of the weights are made once (autocast would cast them again every batch).
        self._fmt = torch.channels_last if self.config.channels_last else torch.contiguous_format
        self._dtype = torch.bfloat16 if self.config.precision is Precision.BF16 else torch.float32
        # What runs are eval-mode copies (BatchNorm folded unless told not to): the models
        # passed in keep their mode, device and memory format, so whatever else runs them is
        # not changed by building a predictor.
        self.segmenter = segmenter
        self.survival = survival
        fast = accelerate(
            segmenter, survival,
            AccelOptions(
                device=self._device, dtype=self._dtype, memory_format=self._fmt,
                fold_batchnorm=self.config.fold_batchnorm, fuse_upsampling=self.config.fuse_upsampling,
                tumour_windows=self.config.tumour_windows, fast_convolutions=self.config.fast_convolutions,
                crop_background=self.config.crop_padding is CropPadding.BACKGROUND,
            ),
        )
        self._seg_net = fast.segmenter
        self._crop_net = fast.crops
        # The U-Net whose last layers can run on windows of a crop (None: run it whole).
        self._window_unet = fast.window_unet
        self._surv_net = fast.survival
        # Batches of crops and chunks of masks run side by side on a CPU (see CpuWorkers).
        self._workers = CpuWorkers()

    # ------------------------------------------------------------------ what the pipeline reads
    @property
    def in_channels(self) -> int:
        return self.segmenter.config.in_channels

    @property
    def normalisation(self) -> Normalisation:
        return self.segmenter.config.normalisation

    @property
    def resizes(self) -> bool:
        return self.segmenter.config.input_size is not None

    @property
    def bins(self) -> SurvivalBins | None:
        return None if self.survival is None else self.survival.bins

    @property
    def age_scaler(self) -> AgeScaler | None:
        return None if self.survival is None else self.survival.age_scaler

    @property
    def has_survival(self) -> bool:
        return self.survival is not None

    @property
    def n_bins(self) -> int:
        return 0 if self.survival is None else self.survival.config.n_bins

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def workers(self) -> int:
        return self._workers.size(self._device)

    def map(self, fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        return self._workers.map(fn, items, device=self._device)

    def metadata(self) -> Mapping[str, object]:
        return {
            "segmenter": dict(self.segmenter.metadata),
            "survival": dict(self.survival.metadata) if self.survival is not None else None,
        }

    # ------------------------------------------------------------------ the networks
    def unet_labels(self, images: npt.NDArray[np.float32], rows: tuple[int, int], cols: tuple[int, int]) -> npt.NDArray[np.uint8]:
        """Class indices of ``images`` (a batch of crops, sides multiples of 32) in the
        window ``rows x cols``."""
        with torch.inference_mode():
            return self._window(images, rows, cols).argmax(dim=1).to(torch.uint8).cpu().numpy()

    def unet_logits(self, images: npt.NDArray[np.float32], rows: tuple[int, int], cols: tuple[int, int]) -> npt.NDArray[np.float32]:
        """float32 logits of ``images`` (crops) in the window ``rows x cols``."""
        with torch.inference_mode():
            out: npt.NDArray[np.float32] = self._window(images, rows, cols).float().cpu().numpy()
            return out

    def _window(self, images: npt.NDArray[np.float32], rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
        x = self._input(torch.from_numpy(images))
        if self._window_unet is not None:
            return window_logits(self._window_unet, x, rows, cols)
        logits: torch.Tensor = self._crop_net(x)[..., rows[0] : rows[1], cols[0] : cols[1]]
        return logits

    def unet_classes(self, images: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        """Class indices of one batch of whole normalised slices."""
        with torch.inference_mode():
            x = self._input(torch.from_numpy(images))
            classes: npt.NDArray[np.uint8] = self._seg_net(x).argmax(dim=1).to(torch.uint8).cpu().numpy()
            return classes

    def unet_slice_logits(self, images: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """float32 logits of one batch of whole normalised slices."""
        with torch.inference_mode():
            out: npt.NDArray[np.float32] = self._seg_net(self._input(torch.from_numpy(images))).float().cpu().numpy()
            return out

    def survival_chunk(self, classes: npt.NDArray[np.uint8], scaled_age: float) -> npt.NDArray[np.float64]:
        """Survival probabilities of class-index slices ``(S, H, W)``, through
        :func:`~brats_sdk.models.survival_inputs.bin_probabilities` on the rewritten network."""
        if self.survival is None or self._surv_net is None:
            raise RuntimeError("no survival network")  # the predictor checks before calling
        with torch.inference_mode():
            one_hot = torch.from_numpy(classes_to_one_hot(classes)).to(self._device)
            age = torch.full((one_hot.shape[0], 1), scaled_age, dtype=torch.float64)
            probs = bin_probabilities(self._surv_net, one_hot, age, size=self.survival.config.input_size, to_input=self._input)
            out: npt.NDArray[np.float64] = probs.cpu().numpy()
            return out

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on the networks' device, in their dtype and memory format."""
        return x.to(device=self._device, dtype=self._dtype, memory_format=self._fmt)
