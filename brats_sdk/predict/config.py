"""Inference options of :class:`~brats_sdk.predict.predictor.CombinedPredictor`."""

from __future__ import annotations

from dataclasses import dataclass

from brats_sdk.errors import ConfigError
from brats_sdk.options import TTA, OptionEnum, UncertaintyMethod

__all__ = ["CropPadding", "Precision", "PredictorConfig"]


class Precision(OptionEnum):
    """Arithmetic of inference. BF16 (bf16 copies of the networks, bf16 inputs) is faster
    on CPUs with native bf16 and may change a few labels (the benchmark counts them)."""

    FP32 = "fp32"
    BF16 = "bf16"


class CropPadding(OptionEnum):
    """What a brain-box crop's layers pad with at its edge. BACKGROUND: each layer's
    features of background (:mod:`~brats_sdk.predict.accel.background`), as a whole slice
    continues there; ZEROS: zeros, as the network pads the whole slice's edge."""

    BACKGROUND = "background"
    ZEROS = "zeros"


@dataclass(frozen=True, slots=True)
class PredictorConfig:
    """Inference options.

    Attributes:
        batch_size: Slices per U-Net forward pass (benchmarks/README.md gives the measured best).
        survival_batch_size: Slices per survival-network pass.
        precision: ``fp32`` (default) or ``bf16``.
        skip_empty_slices: Do not run the U-Net on slices without brain.
        crop_to_brain: Run the U-Net on each slice's brain bounding box only.
        crop_margin: Background pixels kept around the brain box (before rounding to 32).
        crop_padding: What the crop's layers pad with at its edge: ``background`` (the
            layers' features of background, which keeps the whole slice's labels) or
            ``zeros`` (``benchmarks/bench_predict.py`` counts the labels each changes).
        channels_last: Use channels-last memory format (faster convolutions on CPU).
        fold_batchnorm: Run copies of the networks with BatchNorm folded into the
            convolutions (faster; changes only float rounding).
        fuse_upsampling: In the folded U-Net copy, fuse each decoder block's nearest 2x
            upsampling into its first convolution (faster; changes only float
            rounding; needs ``fold_batchnorm``).
        tumour_windows: On a CPU, run the survival network's first layers only on a
            window around each slice's tumour; the rest of their maps is that of an empty
            mask, computed once (faster; changes only float rounding; benchmarks/README.md
            has the speed-ups measured).
        fast_convolutions: On a CPU in fp32, run the networks' 3x3 convolutions with 128
            channels or more as Winograd F(m x m, 3 x 3) convolutions, with up to 4x fewer
            multiplications, and every other convolution through oneDNN whatever its
            batch (:mod:`~brats_sdk.predict.accel.convolutions`; faster; changes only float
            rounding, Winograd's a few times the direct convolution's).
        slice_step: With ``skip_empty_slices``, the U-Net runs first on every
            ``slice_step``-th slice, then only on the slices less than ``slice_step`` away
            from one where it found tumour (with ``crop_to_brain``, labelling those only
            within :data:`~brats_sdk.predict.boxes.TUMOUR_MARGIN` pixels of that tumour's
            box); the rest is background. Tumours span tens of slices, so 3 skips about
            two thirds of the tumour-free slices; what it can miss is a speck of tumour no
            thicker than ``slice_step - 1`` slices between two tumour-free ones, or away
            from the tumour on the slices next to it (``benchmarks/bench_predict.py``
            counts the labels; README "Results and benchmarks" has 3 against 2 on real
            cases). 1: every slice with brain.
        tta: ``flips``: average the U-Net's softmax over the four in-plane mirrorings
            (:mod:`~brats_sdk.predict.tta`; four times the U-Net's work).
        probabilities: Return the class probabilities in :class:`VolumePrediction`.
        uncertainty: Return per-region uncertainty maps made this way
            (:mod:`~brats_sdk.predict.uncertainty`); None: none.
        min_component_voxels: Tumour components (26-connected) smaller than this, other
            than the largest, become background in the labels, the region volumes and the
            survival vote (:mod:`~brats_sdk.predict.components`); the probabilities and
            uncertainty maps stay the network's. 0: keep every component (the paper's);
            README "Results and benchmarks" (real data) has what 1000 (1 mL) does on real cases.
    """

    batch_size: int = 8
    survival_batch_size: int = 16
    precision: Precision = Precision.FP32
    skip_empty_slices: bool = True
    crop_to_brain: bool = True
    crop_margin: int = 8
    crop_padding: CropPadding = CropPadding.BACKGROUND
    channels_last: bool = True
    fold_batchnorm: bool = True
    fuse_upsampling: bool = True
    tumour_windows: bool = True
    fast_convolutions: bool = True
    slice_step: int = 3
    tta: TTA = TTA.NONE
    probabilities: bool = False
    uncertainty: UncertaintyMethod | None = None
    min_component_voxels: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", Precision.parse(self.precision))
        object.__setattr__(self, "tta", TTA.parse(self.tta))
        object.__setattr__(self, "crop_padding", CropPadding.parse(self.crop_padding))
        if self.uncertainty is not None:
            object.__setattr__(self, "uncertainty", UncertaintyMethod.parse(self.uncertainty))
        if self.uncertainty is UncertaintyMethod.SPREAD and self.tta is TTA.NONE:
            raise ConfigError("uncertainty 'spread' is the range over the TTA members: it needs tta='flips'")
        if self.batch_size < 1 or self.survival_batch_size < 1:
            raise ConfigError(f"batch sizes must be >= 1, got {self.batch_size} and {self.survival_batch_size}")
        if self.crop_margin < 0:
            raise ConfigError(f"crop_margin must be >= 0, got {self.crop_margin}")
        if self.min_component_voxels < 0:
            raise ConfigError(f"min_component_voxels must be >= 0, got {self.min_component_voxels}")
        if self.slice_step < 1:
            raise ConfigError(f"slice_step must be >= 1, got {self.slice_step}")
