"""``brats export``: a trained run as ONNX graphs plus ``export.json``, checked against PyTorch.

The graphs are the networks as trained (no inference rewrites), with dynamic batch and
spatial sizes: ``segmenter.onnx`` takes the brain-box crops the predictor cuts (any
multiple of 32 a side) and a ``background`` switch (1: every padded layer pads with its
background features, as PyTorch's crops do, :mod:`~brats_sdk.predict.accel.background`; 0:
zeros, as for whole slices), ``survival.onnx`` one-hot masks of any size (their resize and
ImageNet normalisation are in the graph) and the scaled age. Before the folder appears,
``onnx.checker`` checks both graphs and ONNX Runtime runs the whole prediction beside
PyTorch on a synthetic volume and on any volumes given (:mod:`~brats_sdk.export.parity`);
a mismatch beyond tolerance fails the export. The folder is built under a temporary
name beside the destination and renamed at the end, so a failed export leaves nothing.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor, nn
from torch.jit._trace import TracerWarning

from brats_sdk._version import __version__
from brats_sdk.constants import IMAGE_CHANNELS, MASK_CHANNELS, MASK_LABELS
from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.sources import open_source
from brats_sdk.data.splits import SplitMode, read_split_csv
from brats_sdk.data.synth import SynthConfig, make_cohort
from brats_sdk.errors import CheckpointError, ConfigError
from brats_sdk.export.parity import VolumeParity, check_volume
from brats_sdk.models.segmenter import Segmenter
from brats_sdk.models.survival import SurvivalClassifier, prepare_masks
from brats_sdk.options import OptionEnum, config_to_dict
from brats_sdk.predict.accel.background import (
    BackgroundSwitch,
    background_features,
    shift_to_background,
)
from brats_sdk.predict.export_manifest import (
    SEGMENTER_ONNX,
    SURVIVAL_ONNX,
    ExportManifest,
    NetworkEntry,
    TensorSpec,
    sha256_of,
    write_manifest,
)
from brats_sdk.predict.onnx_networks import INSTALL_HINT
from brats_sdk.predict.predictor import CombinedPredictor
from brats_sdk.run_files import SPLIT_FILE

__all__ = ["DEFAULT_OPSET", "ExportOptions", "ExportPrecision", "ExportResult", "export_run"]

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
_MIN_OPSET, _MAX_OPSET = 14, 20
# The synthetic volume every export is checked on: small, with a tumour.
_CHECK_SYNTH = SynthConfig(volumes=1, slices=20, size=96, seed=0)


class ExportPrecision(OptionEnum):
    """Arithmetic of the exported graphs (their inputs and outputs are float32 either way).

    FP32: as trained. FP16: half-precision weights and activations, for providers with
    fp16 kernels (CUDA); ONNX Runtime's CPU provider lacks many of them.
    """

    FP32 = "fp32"
    FP16 = "fp16"


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """What ``brats export`` writes and checks.

    Attributes:
        opset: ONNX opset (14..20).
        precision: ``fp32`` or ``fp16``.
        check_dirs: Data folders whose volumes the export is also checked on.
        check_volumes: Only these volumes of ``check_dirs`` (None: all).
        providers: ONNX Runtime providers of the check (default: CUDA where available, then CPU).
    """

    opset: int = DEFAULT_OPSET
    precision: ExportPrecision = ExportPrecision.FP32
    check_dirs: tuple[Path, ...] = ()
    check_volumes: tuple[int, ...] | None = None
    providers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", ExportPrecision.parse(self.precision))
        if not _MIN_OPSET <= self.opset <= _MAX_OPSET:
            raise ConfigError(f"opset must be in {_MIN_OPSET}..{_MAX_OPSET}, got {self.opset}")


@dataclass(frozen=True, slots=True)
class ExportResult:
    """A finished export: its folder, manifest and the parity per checked volume."""

    out_dir: Path
    manifest: ExportManifest
    parity: tuple[VolumeParity, ...]
    seconds: float


def export_run(
    run_dir: Path | str,
    out_dir: Path | str,
    options: ExportOptions | None = None,
    *,
    on_volume: Callable[[VolumeParity], None] | None = None,
) -> ExportResult:
    """Export a ``brats train`` run folder to ONNX and check it against PyTorch.

    Args:
        run_dir: Holds ``segmenter.pt`` and, optionally, ``survival.pt`` and ``split.csv``.
        out_dir: The export folder to create (absent or empty).
        options: Opset, precision and extra check volumes.
        on_volume: Called with each volume's parity (progress).

    Returns:
        The result; ``export.json`` holds the same parity figures.

    Raises:
        ConfigError: ``onnx``/``onnxruntime`` missing, ``out_dir`` not empty, or a
            segmenter that resizes its input (``input_size``), which is not exported.
        CheckpointError: The run's checkpoints are missing or bad, or ONNX Runtime and
            PyTorch disagree beyond tolerance (nothing is written then).
    """
    t0 = time.perf_counter()
    options = options or ExportOptions()
    onnx = _import_onnx()
    run, out = Path(run_dir), Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not an empty folder; remove it or choose another --out")
    reference = CombinedPredictor.from_run_dir(run, device="cpu")
    segmenter, survival = reference.segmenter, reference.survival
    if segmenter is None:
        raise CheckpointError(f"{run}: no segmenter")
    if segmenter.config.input_size is not None:
        raise ConfigError(f"{run}: the segmenter resizes its input to {segmenter.config.input_size}; only padding segmenters are exported")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp's folder is private; the export is not
        half = options.precision is ExportPrecision.FP16
        _export_segmenter(segmenter, tmp / SEGMENTER_ONNX, options.opset, half)
        if survival is not None:
            _export_survival(survival, tmp / SURVIVAL_ONNX, options.opset, half)
        for name in (SEGMENTER_ONNX, SURVIVAL_ONNX):
            if (tmp / name).exists():
                onnx.checker.check_model(str(tmp / name))
        manifest = _manifest(run, tmp, segmenter, survival, options)
        write_manifest(tmp, manifest)
        exported = CombinedPredictor.from_export(tmp, providers=options.providers)
        parity = _check(reference, exported, options, tmp, on_volume)
        manifest = replace(manifest, parity=_parity_summary(parity))
        write_manifest(tmp, manifest)
        problems = [p for v in parity for p in v.problems()]
        if problems:
            raise CheckpointError(f"the export does not match PyTorch: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("exported %s to %s", run, out)
    return ExportResult(out_dir=out, manifest=manifest, parity=tuple(parity), seconds=time.perf_counter() - t0)


def _import_onnx() -> ModuleType:
    try:
        import onnx
        import onnxruntime  # noqa: F401  # the check runs on it: fail before any work
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return onnx


class _SegmenterGraph(nn.Module):
    """The U-Net as trained: normalised crops (sides multiples of 32) and what their
    layers pad with (``background`` 1: the layers' background features, as PyTorch's crops;
    0: zeros, as whole slices) -> float32 logits."""

    def __init__(self, segmenter: Segmenter, half: bool) -> None:
        super().__init__()
        self.unet = copy.deepcopy(segmenter.unet).eval()
        self.switch = BackgroundSwitch()
        shift_to_background(self.unet, background_features(self.unet, segmenter.config.in_channels), self.switch)
        self.half_precision = half
        if half:
            self.unet.half()

    def forward(self, image: Tensor, background: Tensor) -> Tensor:
        x = image.half() if self.half_precision else image
        self.switch.on = background
        logits: Tensor = self.unet(x)
        return logits.float()


class _SurvivalGraph(nn.Module):
    """The survival network with its mask preparation (:func:`prepare_masks`) in the graph:
    one-hot masks of any size and the scaled age -> float32 bin logits."""

    def __init__(self, survival: SurvivalClassifier, half: bool) -> None:
        super().__init__()
        self.net = copy.deepcopy(survival).eval()
        self.size = survival.config.input_size
        self.half_precision = half
        if half:
            self.net.half()

    def forward(self, masks: Tensor, age: Tensor) -> Tensor:
        x = prepare_masks(masks, size=self.size)
        if self.half_precision:
            x, age = x.half(), age.half()
        logits: Tensor = self.net(x, age)
        return logits.float()


def _export_segmenter(segmenter: Segmenter, path: Path, opset: int, half: bool) -> None:
    example = torch.zeros(2, segmenter.config.in_channels, 64, 64)
    axes = {0: "batch", 2: "height", 3: "width"}
    _to_onnx(_SegmenterGraph(segmenter, half), (example, torch.ones(1)), path, ["image", "background"], ["logits"],
             {"image": axes, "logits": axes}, opset)


def _export_survival(survival: SurvivalClassifier, path: Path, opset: int, half: bool) -> None:
    masks = torch.zeros(2, len(MASK_CHANNELS), 48, 48)
    masks[:, 1, 10:30, 10:30] = 1.0
    age = torch.full((2, 1), 0.5)
    axes = {"masks": {0: "batch", 2: "height", 3: "width"}, "age": {0: "batch"}, "logits": {0: "batch"}}
    _to_onnx(_SurvivalGraph(survival, half), (masks, age), path, ["masks", "age"], ["logits"], axes, opset)


def _to_onnx(
    module: nn.Module,
    args: tuple[Tensor, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    axes: dict[str, dict[int, str]],
    opset: int,
) -> None:
    """Trace ``module`` into ``path`` with TorchScript's exporter (no onnxscript needed),
    the named axes dynamic."""
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The input checks of the networks become constants of the trace (the runtime
        # feeds what they check); the exporter notes that it is the older of two.
        warnings.simplefilter("ignore", TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            module, args, str(path), dynamo=False, input_names=inputs, output_names=outputs,
            dynamic_axes=axes, opset_version=opset, do_constant_folding=True,
        )


def _manifest(run: Path, folder: Path, segmenter: Segmenter, survival: SurvivalClassifier | None, options: ExportOptions) -> ExportManifest:
    seg = NetworkEntry(
        file=SEGMENTER_ONNX,
        sha256=sha256_of(folder / SEGMENTER_ONNX),
        inputs=(
            TensorSpec("image", ("batch", segmenter.config.in_channels, "height", "width"), "float32"),
            TensorSpec("background", (1,), "float32"),
        ),
        outputs=(TensorSpec("logits", ("batch", segmenter.config.n_classes, "height", "width"), "float32"),),
        config=config_to_dict(segmenter.config),
        metadata=dict(segmenter.metadata),
    )
    surv = None
    if survival is not None:
        surv = NetworkEntry(
            file=SURVIVAL_ONNX,
            sha256=sha256_of(folder / SURVIVAL_ONNX),
            inputs=(
                TensorSpec("masks", ("batch", len(MASK_CHANNELS), "height", "width"), "float32"),
                TensorSpec("age", ("batch", 1), "float32"),
            ),
            outputs=(TensorSpec("logits", ("batch", survival.config.n_bins), "float32"),),
            config=config_to_dict(survival.config),
            metadata=dict(survival.metadata),
        )
    return ExportManifest(
        sdk_version=__version__,
        opset=options.opset,
        precision=options.precision.value,
        image_channels=IMAGE_CHANNELS[: segmenter.config.in_channels],
        normalisation=segmenter.config.normalisation,
        class_labels=(0, *MASK_LABELS),
        mask_channels=MASK_CHANNELS,
        segmenter=seg,
        survival=surv,
        bins=None if survival is None else survival.bins,
        age_scaler=None if survival is None else survival.age_scaler,
        split=_split_summary(run),
        source_run=str(run.resolve()),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _split_summary(run: Path) -> dict[str, object] | None:
    path = run / SPLIT_FILE
    if not path.is_file():
        return None
    split = read_split_csv(path)
    if split.mode is SplitMode.PATIENT:
        return {"mode": split.mode.value, "seed": split.seed, "train": len(split.train), "val": len(split.val),
                "test": len(split.test), "test_volumes": list(split.test)}
    return {"mode": split.mode.value, "seed": split.seed, "train_slices": len(split.train_slices),
            "val_slices": len(split.val_slices), "test_slices": len(split.test_slices)}


def _check(
    reference: CombinedPredictor,
    exported: CombinedPredictor,
    options: ExportOptions,
    scratch: Path,
    on_volume: Callable[[VolumeParity], None] | None,
) -> list[VolumeParity]:
    """Parity on the synthetic volume, then on each volume of ``options.check_dirs``."""
    results: list[VolumeParity] = []

    def record(p: VolumeParity) -> None:
        results.append(p)
        if on_volume is not None:
            on_volume(p)

    synth_dir = Path(tempfile.mkdtemp(prefix="synth.", dir=scratch))
    try:
        rec = H5SliceFolder(make_cohort(synth_dir, _CHECK_SYNTH)).load_volume(1)
        record(check_volume("synthetic", rec.image, reference, exported, truth=rec.mask))
    finally:
        shutil.rmtree(synth_dir, ignore_errors=True)
    for folder in options.check_dirs:
        source = open_source(folder, require_mask=False)
        for info in source.volumes():
            if options.check_volumes is not None and info.volume not in options.check_volumes:
                continue
            rec = source.load_volume(info.volume)
            record(check_volume(info.name or f"volume_{info.volume}", rec.image, reference, exported, truth=rec.mask))
    return results


def _parity_summary(parity: list[VolumeParity]) -> dict[str, object]:
    surv = [p.survival_max_logit_diff for p in parity if p.survival_max_logit_diff is not None]
    voxels = sum(p.brain_voxels for p in parity)
    same = sum(p.label_agreement * p.brain_voxels for p in parity)
    return {
        "volumes": [p.to_dict() for p in parity],
        "segmenter_max_logit_diff": max(p.segmenter_max_logit_diff for p in parity),
        "survival_max_logit_diff": max(surv) if surv else None,
        "label_agreement": same / voxels if voxels else 1.0,
        "volume_bins_identical": all(p.torch_bin == p.onnx_bin for p in parity),
        "reference": "PyTorch predictor (default options) for labels and bins; plain networks for logits",
    }
