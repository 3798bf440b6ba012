"""CombinedPredictor: segmenter -> tumour masks -> survival classifier -> volume vote.

The paper's pipeline, made fast on a CPU without changing its answer:

- slices without brain are not run through the U-Net (they are background), and of the
  tumour-free stretches of the volume only every third slice is (``slice_step``): the
  U-Net runs first on every third slice, then on the slices next to those where it
  found tumour, computing their labels only near that tumour (within
  :data:`~brats_sdk.predict.boxes.TUMOUR_MARGIN` pixels of its box);
- the U-Net sees only each slice's brain bounding box, cut in the network's padded
  frame at multiples of 32 so that its pooling grid matches the full-slice run, with a
  margin of background around the brain (slices whose boxes have one shape share a
  batch); the decoder's last blocks and the head run only around the boxes where the
  batch's labels are wanted, and each slice's labels are pasted back there (outside,
  as outside the brain, the label is background);
- the survival network runs only on slices whose predicted mask is not empty (the
  paper drops the others before the vote anyway), and its first layers only on a
  window around the tumour (outside it their maps are those of an empty mask);
- the PyTorch networks rewritten (:func:`~brats_sdk.predict.accel.accelerate`), on a
  CPU whole batches side by side, one core each, each normalising its own brain boxes.

One step departs from the paper's answer on purpose: tumour components under
``min_component_voxels`` other than the largest become background before the region
volumes and the vote (:mod:`~brats_sdk.predict.components`; 0 keeps them all).

The pipeline is numpy over a :class:`~brats_sdk.predict.networks.PredictionNetworks`
adapter (PyTorch, or ONNX Runtime for an export). ``benchmarks/bench_predict.py``
measures the speed-up and how many labels differ from the full-slice computation.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from brats_sdk.bins import SurvivalBins
from brats_sdk.constants import VOXEL_SPACING_MM
from brats_sdk.data.clinical import PatientIdMap, patient_id_of
from brats_sdk.data.crops import Box, stride_padding, union_box
from brats_sdk.data.normalise import brain_mask, normalise_volume
from brats_sdk.data.protocols import VolumeSource
from brats_sdk.errors import BratsError, CheckpointError, ConfigError, DataError
from brats_sdk.labels import classes_to_labels
from brats_sdk.metrics.survival import majority_vote
from brats_sdk.options import TTA, UncertaintyMethod
from brats_sdk.predict.boxes import (
    CropBatch,
    SliceFill,
    copy_fill,
    grid_span,
    near_tumour,
    normalising_fill,
    plan_crops,
    tumour_regions,
)
from brats_sdk.predict.components import drop_small_components
from brats_sdk.predict.config import CropPadding, Precision, PredictorConfig
from brats_sdk.predict.networks import DeviceLike, PredictionNetworks
from brats_sdk.predict.results import VolumeFailure, VolumePrediction, region_volumes_ml
from brats_sdk.predict.tta import UnetRunner, VolumeOutputs
from brats_sdk.predict.uncertainty import uncertainty_maps
from brats_sdk.run_files import SEGMENTER_FILE, SURVIVAL_FILE

if TYPE_CHECKING:
    import torch

    from brats_sdk.models.segmenter import Segmenter
    from brats_sdk.models.survival import SurvivalClassifier

__all__ = ["CombinedPredictor", "Precision", "PredictorConfig"]

logger = logging.getLogger(__name__)


AgeLookup = Callable[[int, str], float | None]


class CombinedPredictor:
    """Segmentation and survival class of whole volumes: PyTorch networks (the constructor,
    :meth:`from_run_dir`, :meth:`from_checkpoints`) or an export's ONNX Runtime sessions
    (:meth:`from_export`, which never imports torch) behind one numpy pipeline.

    Args:
        segmenter: A trained :class:`Segmenter`.
        survival: A trained :class:`SurvivalClassifier` (with bins and age scaling), or
            None for segmentation only.
        device: Device request (``auto`` picks CUDA, then MPS, then CPU).
        config: Inference options.
        tta: ``none`` or ``flips``; overrides ``config.tta`` when given.

    Attributes:
        segmenter, survival, config: The models passed in (None for an export), the options.

    Example:
        >>> predictor = CombinedPredictor.from_run_dir("runs/demo")  # doctest: +SKIP
        >>> result = predictor.predict_volume(image, age=61.0)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        segmenter: Segmenter,
        survival: SurvivalClassifier | None = None,
        device: str | torch.device = "auto",
        config: PredictorConfig | None = None,
        tta: TTA | str | None = None,
    ) -> None:
        from brats_sdk.predict.torch_networks import TorchNetworks

        self.config = config or PredictorConfig()
        if tta is not None:
            self.config = dataclasses.replace(self.config, tta=TTA.parse(tta))
        self.segmenter: Segmenter | None = segmenter
        self.survival: SurvivalClassifier | None = survival
        self._nets: PredictionNetworks = TorchNetworks(segmenter, survival, device, self.config)
        if survival is not None and (survival.bins is None or survival.age_scaler is None):
            raise ConfigError("the survival model has no bins or age scaling; train it with brats_sdk or set them")

    @classmethod
    def from_networks(cls, networks: PredictionNetworks, *, config: PredictorConfig | None = None) -> CombinedPredictor:
        """The pipeline over any :class:`~brats_sdk.predict.networks.PredictionNetworks`
        (``segmenter`` and ``survival`` are then None)."""
        predictor = cls.__new__(cls)
        predictor.config = config or PredictorConfig()
        predictor.segmenter, predictor.survival = None, None
        predictor._nets = networks
        return predictor

    @classmethod
    def from_export(
        cls, export_dir: Path | str, *, providers: Sequence[str] | None = None, config: PredictorConfig | None = None
    ) -> CombinedPredictor:
        """Load a ``brats export`` folder: the same pipeline through ONNX Runtime sessions,
        without importing torch.

        Args:
            export_dir: The folder holding ``export.json`` and the ``.onnx`` files.
            providers: ONNX Runtime execution providers, in order of preference (default:
                ``CUDAExecutionProvider`` where available, then ``CPUExecutionProvider``).
            config: Inference options (the network rewrites and ``precision`` apply to
                PyTorch only: an export runs as it was exported; ``crop_padding`` applies
                to both).

        Raises:
            CheckpointError: No or a bad ``export.json``, or a model file whose hash differs.
            ConfigError: ``onnxruntime`` is not installed, or an unknown provider.
        """
        from brats_sdk.predict.onnx_networks import OnnxNetworks

        background = (config or PredictorConfig()).crop_padding is CropPadding.BACKGROUND
        networks = OnnxNetworks.load(Path(export_dir), providers=providers, crop_background=background)
        return cls.from_networks(networks, config=config)

    @classmethod
    def from_checkpoints(
        cls,
        *,
        segmenter: Path | str,
        survival: Path | str | None = None,
        device: str | torch.device = "auto",
        config: PredictorConfig | None = None,
    ) -> CombinedPredictor:
        """Load both models from their checkpoint files.

        Raises:
            CheckpointError: A file is missing, of the other kind, or of another format version.
        """
        from brats_sdk.models.segmenter import Segmenter
        from brats_sdk.models.survival import SurvivalClassifier

        seg = Segmenter.from_checkpoint(Path(segmenter))
        surv = SurvivalClassifier.from_checkpoint(Path(survival)) if survival is not None else None
        return cls(segmenter=seg, survival=surv, device=device, config=config)

    @classmethod
    def from_run_dir(
        cls, run_dir: Path | str, *, device: str | torch.device = "auto", config: PredictorConfig | None = None
    ) -> CombinedPredictor:
        """Load ``segmenter.pt`` and ``survival.pt`` (if present) from a ``brats train`` run folder.

        Raises:
            CheckpointError: No segmenter checkpoint in ``run_dir``.
        """
        from brats_sdk.checkpoint import CheckpointKind, peek_kind

        run = Path(run_dir)
        seg = run / SEGMENTER_FILE
        if not seg.exists():
            raise CheckpointError(f"{run}: no {SEGMENTER_FILE} in this run folder")
        surv = run / SURVIVAL_FILE
        if surv.exists() and peek_kind(surv) is not CheckpointKind.SURVIVAL:
            raise CheckpointError(f"{surv}: is not a survival checkpoint")
        return cls.from_checkpoints(segmenter=seg, survival=surv if surv.exists() else None, device=device, config=config)

    @property
    def networks(self) -> PredictionNetworks:
        """The networks the pipeline runs."""
        return self._nets

    @property
    def bins(self) -> SurvivalBins | None:
        return self._nets.bins

    @property
    def device(self) -> DeviceLike:
        """Where the networks run (a ``torch.device`` for PyTorch networks)."""
        return self._nets.device

    def models_metadata(self) -> Mapping[str, object]:
        """``{"segmenter": ..., "survival": ...}``: what the models record about themselves."""
        return self._nets.metadata()

    # ------------------------------------------------------------------ one volume
    def predict_volume(
        self,
        image: npt.NDArray[np.floating],
        age: float | None = None,
        *,
        spacing: Sequence[float] = VOXEL_SPACING_MM,
        volume: int = 0,
        name: str = "",
        patient_id: str = "",
    ) -> VolumePrediction:
        """Predict one raw volume.

        Args:
            image: ``(D, 4, H, W)`` raw intensities (the predictor normalises them with
                the segmenter's rule, ``segmenter.config.normalisation``).
            age: Age in years, or None (the survival fields are then empty).
            spacing: Voxel spacing in mm (slice, row, column), for the region volumes.
            volume, name, patient_id: Identity carried into the result.

        Returns:
            The :class:`VolumePrediction`.

        Raises:
            DataError: Wrong shape or non-finite values.
        """
        t0 = time.perf_counter()
        arr = np.asarray(image)
        channels = self._nets.in_channels
        if arr.ndim != 4 or arr.shape[1] != channels:
            raise DataError(f"expected a raw volume (D, {channels}, H, W), got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise DataError("volume holds NaN or infinite values")
        arr = arr.astype(np.float32, copy=False)
        brain = brain_mask(arr)
        rule = self._nets.normalisation
        seg = self._segment(arr.shape, brain, normalising_fill(arr, brain, rule), lambda: normalise_volume(arr, rule, brain=brain))
        classes, cfg = seg.classes, self.config
        maps = None if cfg.uncertainty is None or seg.probs is None else uncertainty_maps(seg.probs, cfg.uncertainty, spread=seg.spread)
        probabilities = seg.probs.astype(np.float16) if cfg.probabilities and seg.probs is not None else None
        base = dict(volume=volume, name=name, patient_id=patient_id, labels=classes_to_labels(classes), age=age,
                    region_ml=region_volumes_ml(classes, spacing), probabilities=probabilities, uncertainty=maps)
        n_bins = 0 if self.bins is None else self.bins.n_bins
        empty_probs = np.zeros((0, n_bins), dtype=np.float64)
        nonempty = tuple(int(i) for i in np.flatnonzero(classes.reshape(classes.shape[0], -1).any(axis=1)))
        status = None
        if not self._nets.has_survival:
            status = "no survival model"
        elif age is None or not math.isfinite(age):
            status = "no age"
        elif not nonempty:
            status = "no tumour predicted"
        if status is not None:
            return VolumePrediction(
                **base, slice_indices=nonempty if self._nets.has_survival else (), slice_probs=empty_probs,  # type: ignore[arg-type]  # keys match fields
                predicted_bin=None, mean_prob_bin=None, mean_probs=None, votes=None, bin_label=None, bin_days=None,
                status=status, seconds=time.perf_counter() - t0,
            )
        probs = self.survival_probs(classes[list(nonempty)], float(age))  # type: ignore[arg-type]  # age checked above
        bins = self.bins
        winner, votes = majority_vote(probs)
        mean = probs.mean(axis=0)
        return VolumePrediction(
            **base,  # type: ignore[arg-type]  # keys match fields
            slice_indices=nonempty,
            slice_probs=probs,
            predicted_bin=winner,
            mean_prob_bin=int(mean.argmax()),
            mean_probs=tuple(float(p) for p in mean),
            votes=votes,
            bin_label=bins.labels[winner] if bins else None,
            bin_days=bins.range_text(winner) if bins else None,
            status="ok",
            seconds=time.perf_counter() - t0,
        )

    def segment_normalised(self, normed: npt.NDArray[np.float32], brain: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.uint8]:
        """Class indices ``(D, H, W)`` of a normalised volume, with the shortcuts of
        :class:`PredictorConfig` (skip slices without brain, crop to the brain box) and
        its small tumour components dropped.

        Args:
            normed: ``(D, 4, H, W)`` normalised images.
            brain: ``(D, H, W)`` brain mask (computed from ``normed`` when None: its
                background is exactly 0).
        """
        if brain is None:
            brain = np.asarray((normed != 0).any(axis=1))
        return self._segment(normed.shape, brain, copy_fill(normed), lambda: normed).classes

    def _segment(
        self,
        shape: tuple[int, ...],
        brain: npt.NDArray[np.bool_],
        fill: SliceFill,
        normalised: Callable[[], npt.NDArray[np.float32]],
    ) -> VolumeOutputs:
        """Class indices ``(D, H, W)`` (and the probabilities the config asks for) of a volume
        of ``shape``: brain boxes written by ``fill`` when the U-Net runs on crops, else the
        whole ``normalised()`` volume."""
        cfg = self.config
        d, _, h, w = shape
        spread = cfg.uncertainty is UncertaintyMethod.SPREAD
        keep = cfg.probabilities or cfg.uncertainty is not None
        out = VolumeOutputs((d, h, w), probabilities=keep, spread=spread)
        runner = UnetRunner(self._nets, tta=cfg.tta, probabilities=keep, spread=spread)
        classes = out.classes
        crops = cfg.crop_to_brain and not self._nets.resizes
        whole: list[npt.NDArray[np.float32]] = []  # the normalised volume, made once if needed

        def run(slices: npt.NDArray[np.intp], regions: Mapping[int, Box] | None = None) -> None:
            if slices.size == 0:
                return
            if crops:
                self._segment_brain_boxes(shape, brain, slices, fill, out, runner, regions)
            else:
                if not whole:
                    whole.append(normalised())
                out.put(slices, runner.slices(np.ascontiguousarray(whole[0][slices]), cfg.batch_size))

        if not cfg.skip_empty_slices:
            run(np.arange(d))
        else:
            idx = np.flatnonzero(brain.reshape(d, -1).any(axis=1))
            first = idx[idx % cfg.slice_step == 0]
            run(first)
            if cfg.slice_step > 1:
                tumour = first[classes[first].any(axis=(1, 2))]
                second = near_tumour(np.setdiff1d(idx, first), tumour, cfg.slice_step)
                run(second, tumour_regions(classes, second, tumour, cfg.slice_step) if crops else None)
        dropped = drop_small_components(classes, cfg.min_component_voxels)
        if dropped:
            logger.debug("%d voxels of tumour components under %d voxels set to background", dropped, cfg.min_component_voxels)
        return out

    def _segment_brain_boxes(
        self,
        shape: tuple[int, ...],
        brain: npt.NDArray[np.bool_],
        idx: npt.NDArray[np.intp],
        fill: SliceFill,
        out: VolumeOutputs,
        runner: UnetRunner,
        regions: Mapping[int, Box] | None = None,
    ) -> None:
        """Run the U-Net on each slice's brain box, cut from the network's padded frame at
        multiples of 32 (so the pooling grid matches the full-slice run), slices with boxes
        of one shape batched together, batches side by side on a CPU; write the outputs
        in the brain boxes, or in their parts inside ``regions`` (see ``plan_crops``), into
        ``out``."""
        _, channels, h, w = shape
        top, _, left, _ = pad = stride_padding(h, w)

        def run(batch: CropBatch) -> None:
            crop = np.zeros((len(batch.slices), channels, batch.rows, batch.cols), dtype=np.float32)

            def in_crop(boxes: Sequence[Box]) -> list[Box]:
                return [
                    (b[0] + top - r0, b[1] + top - r0, b[2] + left - c0, b[3] + left - c0)
                    for (r0, c0), b in zip(batch.origins, boxes, strict=True)
                ]

            # The crop is zero outside each brain box (background).
            for k, (i, b, cb) in enumerate(zip(batch.slices, batch.boxes, in_crop(batch.boxes), strict=True)):
                fill(i, b, crop[k, :, cb[0] : cb[1], cb[2] : cb[3]])
            # Labels are wanted in each slice's window only (outside the brain is
            # background): the network's last layers run on the windows' union, snapped to
            # 16 pixels so that few window shapes occur and oneDNN's kernels get reused.
            windows = in_crop(batch.windows)
            y0, y1, x0, x1 = union_box(windows) or (0, batch.rows, 0, batch.cols)  # a batch has a window
            wy = grid_span(y0, y1, batch.rows, 0, grid=16)
            wx = grid_span(x0, x1, batch.cols, 0, grid=16)
            res = runner.crops(crop, wy, wx)
            for k, (i, b, cb) in enumerate(zip(batch.slices, batch.windows, windows, strict=True)):
                out.paste(i, b, res, k, slice(cb[0] - wy[0], cb[1] - wy[0]), slice(cb[2] - wx[0], cb[3] - wx[0]))

        cfg = self.config
        batches = plan_crops(brain, [int(i) for i in idx], pad, cfg.crop_margin, cfg.batch_size, regions)
        self._nets.map(run, batches)

    def survival_probs(self, classes: npt.NDArray[np.uint8], age: float) -> npt.NDArray[np.float64]:
        """Survival probabilities ``(S, n_bins)`` of ``S`` class-index slices ``(S, H, W)``."""
        nets = self._nets
        if not nets.has_survival:
            raise ConfigError("no survival model loaded")
        scaler = nets.age_scaler
        if scaler is None:
            raise ConfigError("the survival model has no age scaling")
        scaled_age = scaler.transform(age)

        def run(span: tuple[int, int]) -> npt.NDArray[np.float64]:
            return nets.survival_chunk(classes[span[0] : span[1]], scaled_age)

        spans = _chunks(classes.shape[0], self.config.survival_batch_size, nets.workers)
        out = nets.map(run, spans)
        return np.concatenate(out) if out else np.zeros((0, nets.n_bins))

    # ------------------------------------------------------------------ many volumes
    def predict_source(
        self,
        source: VolumeSource,
        ages: AgeLookup | Mapping[int, float] | None = None,
        *,
        id_map: PatientIdMap | None = None,
        volumes: Iterable[int] | None = None,
    ) -> Iterator[VolumePrediction | VolumeFailure]:
        """Predict every volume of ``source``, one volume in memory at a time.

        A volume whose data is bad yields a :class:`VolumeFailure` and the others go on.

        Args:
            source: Any volume source.
            ages: ``(volume, patient_id) -> age`` (e.g. ``AgeTable.age_for``) or a mapping
                volume -> age; None: no ages (segmentation only).
            id_map: Volume -> patient id for h5 sources (default ``BraTS20_Training_{V:03d}``).
            volumes: Only these volumes.
        """
        wanted = None if volumes is None else set(volumes)
        for info in source.volumes():
            if wanted is not None and info.volume not in wanted:
                continue
            pid = patient_id_of(info, id_map)
            age = _age_of(ages, info.volume, pid)
            try:
                rec = source.load_volume(info.volume)
                yield self.predict_volume(
                    rec.image, age, spacing=rec.info.spacing, volume=info.volume, name=info.name, patient_id=pid
                )
            except BratsError as exc:
                logger.warning("volume %d (%s) failed: %s", info.volume, info.name, exc)
                yield VolumeFailure(volume=info.volume, name=info.name, patient_id=pid, reason=str(exc).splitlines()[0])


def _age_of(ages: AgeLookup | Mapping[int, float] | None, volume: int, patient_id: str) -> float | None:
    if ages is None:
        return None
    if isinstance(ages, Mapping):
        return ages.get(volume)
    return ages(volume, patient_id)


def _chunks(n: int, size: int, workers: int) -> list[tuple[int, int]]:
    """``[0, n)`` cut into spans of at most ``size``, as many as a multiple of ``workers``
    (where ``n`` allows), of equal length to one, so that workers end together."""
    batches = math.ceil(n / size)
    count = min(n, math.ceil(batches / workers) * workers)
    return list(itertools.pairwise(n * k // count for k in range(count + 1))) if count else []
