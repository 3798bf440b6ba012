"""The networks of a ``brats export`` folder as ONNX Runtime sessions, without torch.

:class:`OnnxNetworks` is what :meth:`CombinedPredictor.from_export
<brats_sdk.predict.predictor.CombinedPredictor.from_export>` runs its pipeline on: the same
brain boxes, skipped slices, vote and outputs as the PyTorch path, with numpy around
the two graphs. Nothing on this path imports torch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt

from brats_sdk.bins import SurvivalBins
from brats_sdk.data.age_scaling import AgeScaler
from brats_sdk.data.crops import stride_padding
from brats_sdk.data.normalise import Normalisation
from brats_sdk.errors import ConfigError
from brats_sdk.labels import classes_to_one_hot
from brats_sdk.predict.export_manifest import ExportManifest, NetworkEntry, read_manifest

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["INSTALL_HINT", "OnnxNetworks", "RuntimeDevice", "import_onnxruntime"]

logger = logging.getLogger(__name__)

INSTALL_HINT = 'ONNX export and prediction need onnx and onnxruntime: pip install "brats-sdk[onnx]"'

_T = TypeVar("_T")
_R = TypeVar("_R")
_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"


def import_onnxruntime() -> ModuleType:
    """The ``onnxruntime`` module.

    Raises:
        ConfigError: It is not installed (the message says what to install).
    """
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    module: ModuleType = onnxruntime
    return module


@dataclass(frozen=True, slots=True)
class RuntimeDevice:
    """Where ONNX Runtime runs the graphs.

    Attributes:
        type: ``cuda`` when the first provider is CUDA's, else ``cpu``.
        providers: The sessions' execution providers, in order of preference.
    """

    type: str
    providers: tuple[str, ...]

    def __str__(self) -> str:
        return f"onnxruntime:{self.providers[0] if self.providers else _CPU}"


class OnnxNetworks:
    """An export's graphs as :class:`~brats_sdk.predict.networks.PredictionNetworks`.

    Args:
        manifest: The export's ``export.json``.
        export_dir: Its folder.
        providers: ONNX Runtime execution providers (default: CUDA where available, then CPU).
        crop_background: Pad brain-box crops with background, as PyTorch does (for graphs
            that take a ``background`` input; older exports pad with zeros).

    Raises:
        ConfigError: ``onnxruntime`` is missing, or a provider it does not have.
    """

    def __init__(
        self, manifest: ExportManifest, export_dir: Path, *, providers: Sequence[str] | None = None, crop_background: bool = True
    ) -> None:
        ort = import_onnxruntime()
        available = list(ort.get_available_providers())
        chosen = tuple(providers) if providers is not None else tuple(p for p in (_CUDA, _CPU) if p in available)
        unknown = [p for p in chosen if p not in available]
        if unknown or not chosen:
            raise ConfigError(f"ONNX Runtime providers {unknown or list(chosen)} are not available; available: {', '.join(available)}")
        self.manifest = manifest
        self.export_dir = Path(export_dir)
        self._seg = self._session(ort, manifest.segmenter, chosen)
        self._surv = None if manifest.survival is None else self._session(ort, manifest.survival, chosen)
        used = tuple(self._seg.get_providers())
        self._device = RuntimeDevice(type="cuda" if used and used[0] == _CUDA else "cpu", providers=used)
        self._seg_dtype = _input_dtype(manifest.segmenter)
        self._switch = "background" in {i.name for i in self._seg.get_inputs()}
        if crop_background and not self._switch:
            logger.info("%s: an export without the background input; its crops pad with zeros", export_dir)
        self._crop_background = crop_background and self._switch
        self._surv_dtype = _input_dtype(manifest.survival) if manifest.survival is not None else np.dtype(np.float32)

    @classmethod
    def load(cls, export_dir: Path, *, providers: Sequence[str] | None = None, crop_background: bool = True) -> OnnxNetworks:
        """Read ``export.json`` (checking versions and model hashes) and open the sessions.

        Raises:
            CheckpointError: As :func:`~brats_sdk.predict.export_manifest.read_manifest`.
            ConfigError: ``onnxruntime`` is missing or a provider is unknown.
        """
        import_onnxruntime()  # the install hint before anything else
        return cls(read_manifest(export_dir), export_dir, providers=providers, crop_background=crop_background)

    def _session(self, ort: ModuleType, entry: NetworkEntry, providers: tuple[str, ...]) -> onnxruntime.InferenceSession:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session: onnxruntime.InferenceSession = ort.InferenceSession(
            str(self.export_dir / entry.file), sess_options=options, providers=list(providers)
        )
        return session

    # ------------------------------------------------------------------ what the pipeline reads
    @property
    def in_channels(self) -> int:
        return len(self.manifest.image_channels)

    @property
    def normalisation(self) -> Normalisation:
        return self.manifest.normalisation

    @property
    def resizes(self) -> bool:
        return False  # `brats export` exports only segmenters that pad (no input_size)

    @property
    def bins(self) -> SurvivalBins | None:
        return self.manifest.bins

    @property
    def age_scaler(self) -> AgeScaler | None:
        return self.manifest.age_scaler

    @property
    def has_survival(self) -> bool:
        return self._surv is not None

    @property
    def n_bins(self) -> int:
        return 0 if self.manifest.bins is None else self.manifest.bins.n_bins

    @property
    def device(self) -> RuntimeDevice:
        return self._device

    @property
    def workers(self) -> int:
        return 1  # ONNX Runtime spreads each graph over the cores itself

    def map(self, fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        return [fn(item) for item in items]

    def metadata(self) -> Mapping[str, object]:
        m = self.manifest
        return {
            "segmenter": dict(m.segmenter.metadata),
            "survival": None if m.survival is None else dict(m.survival.metadata),
            "export": {"dir": str(self.export_dir), "sdk_version": m.sdk_version, "precision": m.precision, "opset": m.opset},
        }

    # ------------------------------------------------------------------ the graphs
    def segmenter_logits(self, images: npt.NDArray[np.float32], *, background: bool = False) -> npt.NDArray[np.float32]:
        """Logits ``(B, classes, H, W)`` of normalised images ``(B, C, H, W)``, ``H, W``
        multiples of 32 (the U-Net as exported), padded with zeros or, where the graph
        can, with ``background``."""
        feed = {"image": np.ascontiguousarray(images, dtype=self._seg_dtype)}
        if self._switch:
            feed["background"] = np.array([1.0 if background else 0.0], dtype=np.float32)
        out = self._seg.run(None, feed)[0]
        return np.asarray(out, dtype=np.float32)

    def survival_logits(self, one_hot: npt.NDArray[np.uint8], scaled_age: float) -> npt.NDArray[np.float32]:
        """Logits ``(S, n_bins)`` of one-hot masks ``(S, 3, H, W)`` and one scaled age."""
        if self._surv is None:
            raise ConfigError("this export has no survival network")
        feeds = {
            "masks": np.ascontiguousarray(one_hot, dtype=self._surv_dtype),
            "age": np.full((one_hot.shape[0], 1), scaled_age, dtype=np.float32).astype(self._surv_dtype),
        }
        return np.asarray(self._surv.run(None, feeds)[0], dtype=np.float32)

    def unet_labels(self, images: npt.NDArray[np.float32], rows: tuple[int, int], cols: tuple[int, int]) -> npt.NDArray[np.uint8]:
        labels: npt.NDArray[np.uint8] = self.unet_logits(images, rows, cols).argmax(axis=1).astype(np.uint8)
        return labels

    def unet_logits(self, images: npt.NDArray[np.float32], rows: tuple[int, int], cols: tuple[int, int]) -> npt.NDArray[np.float32]:
        return self.segmenter_logits(images, background=self._crop_background)[..., rows[0] : rows[1], cols[0] : cols[1]]

    def unet_classes(self, images: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        """Class indices of whole slices of any size: zero-padded to multiples of 32 as the
        segmenter pads them, the logits cropped back."""
        classes: npt.NDArray[np.uint8] = self.unet_slice_logits(images).argmax(axis=1).astype(np.uint8)
        return classes

    def unet_slice_logits(self, images: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        _, _, h, w = images.shape
        top, bottom, left, right = stride_padding(h, w)
        padded = np.pad(images, ((0, 0), (0, 0), (top, bottom), (left, right))) if top + bottom + left + right else images
        return self.segmenter_logits(padded)[..., top : top + h, left : left + w]

    def survival_chunk(self, classes: npt.NDArray[np.uint8], scaled_age: float) -> npt.NDArray[np.float64]:
        logits = self.survival_logits(classes_to_one_hot(classes), scaled_age).astype(np.float64)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs: npt.NDArray[np.float64] = shifted / shifted.sum(axis=1, keepdims=True)
        return probs


def _input_dtype(entry: NetworkEntry) -> np.dtype[np.floating]:
    """The numpy dtype the graph's first input takes (float32, or float16 for fp16 exports)."""
    return np.dtype(np.float16) if entry.inputs[0].dtype == "float16" else np.dtype(np.float32)
