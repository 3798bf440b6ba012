"""What :class:`~brats_sdk.predict.predictor.CombinedPredictor` needs of the networks.

The predictor's pipeline (brain boxes, skipped slices, the vote, the statuses) is numpy;
the networks behind it are an adapter: PyTorch modules
(:class:`~brats_sdk.predict.torch_networks.TorchNetworks`) or ONNX Runtime sessions
(:class:`~brats_sdk.predict.onnx_networks.OnnxNetworks`, which never imports torch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from brats_sdk.bins import SurvivalBins
from brats_sdk.data.age_scaling import AgeScaler
from brats_sdk.data.normalise import Normalisation

__all__ = ["DeviceLike", "PredictionNetworks"]

_T = TypeVar("_T")
_R = TypeVar("_R")


class DeviceLike(Protocol):
    """Where the networks run: a ``torch.device`` or an ONNX Runtime device."""

    @property
    def type(self) -> str:
        """``cpu``, ``cuda`` or ``mps``."""
        ...


class PredictionNetworks(Protocol):
    """The segmenter and (optionally) the survival network, ready to run.

    Attributes:
        in_channels: Image channels the segmenter takes.
        normalisation: The segmenter's intensity normalisation.
        resizes: The segmenter resizes its input (``input_size`` set): no brain-box crops.
        bins: Survival bins, or None without a survival network.
        age_scaler: The survival network's age scaling, or None.
        has_survival: A survival network is loaded.
        n_bins: Bins of the survival network (0 without one).
        device: Where they run.
        workers: How many pieces of work :meth:`map` runs side by side.
    """

    @property
    def in_channels(self) -> int: ...

    @property
    def normalisation(self) -> Normalisation: ...

    @property
    def resizes(self) -> bool: ...

    @property
    def bins(self) -> SurvivalBins | None: ...

    @property
    def age_scaler(self) -> AgeScaler | None: ...

    @property
    def has_survival(self) -> bool: ...

    @property
    def n_bins(self) -> int: ...

    @property
    def device(self) -> DeviceLike: ...

    @property
    def workers(self) -> int: ...

    def map(self, fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        """``[fn(item) for item in items]`` (side by side where the adapter can), in order."""
        ...

    def unet_labels(self, images: npt.NDArray[np.float32], rows: tuple[int, int], cols: tuple[int, int]) -> npt.NDArray[np.uint8]:
        """Class indices ``(B, rows, cols)`` of a batch of crops ``(B, C, H, W)`` (sides
        multiples of 32) in the window ``rows x cols``."""
        ...

    def unet_classes(self, images: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        """Class indices ``(B, H, W)`` of one batch of whole normalised slices ``(B, C, H, W)``."""
        ...

    def unet_logits(self, images: npt.NDArray[np.float32], rows: tuple[int, int], cols: tuple[int, int]) -> npt.NDArray[np.float32]:
        """float32 logits ``(B, classes, rows, cols)`` of crops, as :meth:`unet_labels` takes them
        (their argmax is :meth:`unet_labels`)."""
        ...

    def unet_slice_logits(self, images: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """float32 logits ``(B, classes, H, W)`` of whole slices (their argmax is :meth:`unet_classes`)."""
        ...

    def survival_chunk(self, classes: npt.NDArray[np.uint8], scaled_age: float) -> npt.NDArray[np.float64]:
        """Survival probabilities ``(S, n_bins)`` of ``S`` class-index slices ``(S, H, W)``."""
        ...

    def metadata(self) -> Mapping[str, object]:
        """``{"segmenter": ..., "survival": ... or None}``: what the models record about
        themselves (for ``predictions.json``)."""
        ...
