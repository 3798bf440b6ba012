"""``brats predict VOLUMES_DIR --age-csv CSV (--model-dir RUN | --segmenter P --survival P) --out OUT``."""

from __future__ import annotations

from pathlib import Path

import click
from rich import box
from rich.table import Table

from brats_sdk.data.clinical import PatientIdMap, read_age_table
from brats_sdk.data.nifti_labels import LabelConvention
from brats_sdk.data.sources import DataFormat, open_source
from brats_sdk.data.splits import PARTS, SplitMode, read_split_csv
from brats_sdk.distributed import is_main_process
from brats_sdk.errors import ConfigError
from brats_sdk.options import TTA, UncertaintyMethod
from brats_sdk.out_dir import prepare_out_dir
from brats_sdk.predict.batch import BatchOptions, run_batch
from brats_sdk.predict.config import CropPadding
from brats_sdk.predict.export_manifest import is_export_dir
from brats_sdk.predict.predictor import CombinedPredictor, Precision, PredictorConfig
from brats_sdk.predict.results import VolumeFailure, VolumePrediction
from brats_sdk.predict.uncertainty import DEFAULT_UNCERTAINTY
from brats_sdk.run_files import ERRORS_CSV, PREDICTIONS_CSV, SPLIT_FILE
from cli.console import console, counted, err_console, progress_updates
from cli.exit_codes import ExitCode
from cli.options import (
    announce_device,
    device_option,
    format_option,
    label_convention_option,
    parse_int_list,
    quiet_option,
    warn_slow_bf16,
)


@click.command("predict")
@click.argument("volumes_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--age-csv", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Ages: columns Brats20ID,Age or volume,age. Without it only segmentation is predicted.")
@click.option("--model-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A `brats train all` run folder (instead of --segmenter/--survival), or a `brats export` "
                   "folder (holding export.json: predicts through ONNX Runtime, without PyTorch).")
@click.option("--segmenter", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Segmenter checkpoint.")
@click.option("--survival", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Survival checkpoint.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="Slices per U-Net pass.")
@click.option("--precision", type=click.Choice([p.value for p in Precision]), default="fp32", show_default=True,
              help="bf16 networks and inputs: faster on GPUs and on CPUs with native bf16 (AVX-512 BF16, AMX), "
                   "slower than fp32 on other CPUs; may change a few labels.")
@click.option("--full-slices", is_flag=True, help="Run the U-Net on every full slice (no brain crop or skipping).")
@click.option("--crop-margin", type=click.IntRange(min=0), default=8, show_default=True,
              help="Background pixels kept around each slice's brain box (before rounding to 32); 0 is faster but "
                   "moves more tumour labels at the crop border (see benchmarks/README.md).")
@click.option("--crop-padding", type=click.Choice([c.value for c in CropPadding]), default=CropPadding.BACKGROUND.value,
              show_default=True,
              help="What the U-Net's layers pad a brain-box crop with: background (each layer's features of background, "
                   "which keeps the whole slice's labels) or zeros (moves more labels; see benchmarks/README.md).")
@click.option("--slice-step", type=click.IntRange(min=1), default=3, show_default=True,
              help="Run the U-Net first on every N-th brain slice, then only near slices where it found tumour "
                   "(the rest is background); 1 runs every brain slice.")
@click.option("--min-component-voxels", type=click.IntRange(min=0), default=0, show_default=True,
              help="Tumour components (26-connected) smaller than this, other than the largest, become background "
                   "(labels, volumes, survival vote; not the saved probabilities), e.g. 1000; 0 keeps every "
                   "component (the paper's).")
@click.option("--plain-networks", is_flag=True,
              help="Run the networks as trained: no folded BatchNorm, fused upsampling, survival tumour windows or "
                   "Winograd and oneDNN convolutions (slower; these rewrites change only float rounding).")
@click.option("--save-masks", is_flag=True, help="Write masks/volume_<V>_pred.h5 per volume.")
@click.option("--save-nifti", is_flag=True, help="Write nifti/<case>_pred.nii.gz per volume (aligned with NIfTI input).")
@click.option("--tta", type=click.Choice([t.value for t in TTA]), default=TTA.NONE.value, show_default=True,
              help="flips: average the U-Net's softmax over the four in-plane mirrorings (4x the U-Net's work).")
@click.option("--save-probabilities", is_flag=True,
              help="Also write the class probabilities (background, NCR, ED, ET): `probabilities` in the mask "
                   "files, nifti/<case>_probabilities.nii.gz with --save-nifti.")
@click.option("--save-uncertainty", is_flag=True,
              help="Also write QU-BraTS uncertainty maps (uint8 0-100, 100 = most uncertain): unc_whole/core/enhance "
                   "in the mask files, nifti/<case>_unc_{whole,core,enhance}.nii.gz with --save-nifti.")
@click.option("--uncertainty", "uncertainty_method", type=click.Choice([m.value for m in UncertaintyMethod]),
              default=DEFAULT_UNCERTAINTY.value, show_default=True,
              help="missed: binary entropy of the region probability p outside the predicted region, 0 inside; "
                   "margin: 100(1-|2p-1|); entropy: binary entropy everywhere; spread: range over the TTA members "
                   "(needs --tta flips).")
@click.option("--volumes", "volumes_text", default=None, help="Predict only these volumes, e.g. 1,5,9.")
@click.option("--part", type=click.Choice(list(PARTS)), default=None,
              help="Predict only the volumes of this part of the --model-dir run's split.csv (e.g. test: the "
                   "patients the run held out), on the data the run was trained on.")
@click.option("--id-map", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="CSV volume,patient_id overriding BraTS20_Training_{V:03d}.")
@format_option
@label_convention_option
@device_option
@quiet_option
def predict_cmd(
    volumes_dir: Path, out_dir: Path, age_csv: Path | None, model_dir: Path | None, segmenter: Path | None,
    survival: Path | None, batch_size: int, precision: str, full_slices: bool, crop_margin: int, crop_padding: str,
    slice_step: int,
    min_component_voxels: int, plain_networks: bool,
    save_masks: bool, save_nifti: bool, tta: str, save_probabilities: bool, save_uncertainty: bool, uncertainty_method: str,
    volumes_text: str | None, part: str | None, id_map: Path | None, data_format: DataFormat,
    label_convention: LabelConvention, device: str, quiet: bool,
) -> None:
    """Segment and classify every volume in VOLUMES_DIR.

    Exit 0 when every volume was predicted, 3 when some were skipped (listed in errors.csv,
    the others predicted), 1 on an error in the input, 2 on a usage error.
    """
    if model_dir is None and segmenter is None:
        raise ConfigError("give --model-dir RUN_DIR or --segmenter PATH (and --survival PATH)")
    if model_dir is not None and (segmenter is not None or survival is not None):
        raise ConfigError("give either --model-dir or --segmenter/--survival, not both")
    for flag, wanted in (("--save-uncertainty", save_uncertainty), ("--save-probabilities", save_probabilities)):
        if wanted and not (save_masks or save_nifti):
            raise ConfigError(f"{flag} writes into the mask or NIfTI files: add --save-masks or --save-nifti")
    prepare_out_dir(out_dir)  # before the models load: an unwritable --out fails at once
    ages = read_age_table(age_csv) if age_csv is not None else None
    ids = PatientIdMap.from_csv(id_map) if id_map is not None else None
    config = PredictorConfig(
        batch_size=batch_size, precision=Precision(precision), skip_empty_slices=not full_slices, crop_to_brain=not full_slices,
        crop_margin=crop_margin, crop_padding=CropPadding(crop_padding), slice_step=slice_step, fold_batchnorm=not plain_networks, fuse_upsampling=not plain_networks,
        tumour_windows=not plain_networks, fast_convolutions=not plain_networks, tta=TTA(tta), probabilities=save_probabilities,
        uncertainty=UncertaintyMethod(uncertainty_method) if save_uncertainty else None,
        min_component_voxels=min_component_voxels,
    )
    exported = model_dir is not None and is_export_dir(model_dir)
    if exported and model_dir is not None:
        predictor = CombinedPredictor.from_export(model_dir, config=config)
        if is_main_process():
            console.print(f"Runtime: [bold]{predictor.device}[/bold] (export {model_dir})")
    elif model_dir is not None:
        resolved = announce_device(device)
        warn_slow_bf16(resolved, config.precision is Precision.BF16, "--precision bf16")
        predictor = CombinedPredictor.from_run_dir(model_dir, device=resolved, config=config)
    else:
        resolved = announce_device(device)
        warn_slow_bf16(resolved, config.precision is Precision.BF16, "--precision bf16")
        predictor = CombinedPredictor.from_checkpoints(segmenter=segmenter, survival=survival, device=resolved, config=config)  # type: ignore[arg-type]  # checked above
    subset = parse_int_list(volumes_text, name="--volumes")
    # The source checks --volumes as train and convert do: unknown volumes are an error.
    source = open_source(
        volumes_dir, fmt=data_format, require_mask=False, volumes=subset, label_convention=label_convention,
        skip_broken=True,
    )
    if part is not None:
        subset = _part_volumes(model_dir, part, subset)
    quiet = quiet or not is_main_process()

    with progress_updates("Predicting volumes", quiet=quiet) as progress:
        def on_volume(r: VolumePrediction | VolumeFailure) -> None:
            if isinstance(r, VolumeFailure) and not quiet:
                err_console.print(f"[red]failed[/red] volume {r.volume}: {r.reason}", markup=True, soft_wrap=True)

        summary = run_batch(
            predictor, source, out_dir, ages=ages, id_map=ids,
            options=BatchOptions(save_masks=save_masks, save_nifti=save_nifti, volumes=subset),
            on_volume=on_volume, progress=progress,
        )
    if not is_main_process():
        return
    bins = predictor.bins
    labels = "/".join(bins.labels) if bins else ""
    table = Table(title=f"Predictions ({counted(summary.predictions, 'volume')}, {summary.seconds:.1f} s)",
                  caption=f"votes: slices per bin ({labels}); WT / TC / ET: region volumes in mL; all columns in "
                          f"{PREDICTIONS_CSV}", box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)
    # Fits 80 columns: patient ids stay whole, the other cells fold rather than end in "…".
    for col in ("patient", "age", "bin (days)", "votes", "WT", "TC", "ET", "status"):
        left = col in ("patient", "status", "bin (days)")
        table.add_column(col, justify="left" if left else "right", overflow="fold", no_wrap=col == "patient")
    for v in summary.volumes:
        voted = bins is not None and v.predicted_bin is not None
        votes = "/".join(str(n) for n in v.votes) if voted and v.votes is not None else "-"
        label = f"{v.bin_label} ({v.bin_days})" if voted else "-"
        table.add_row(
            v.patient_id, _fmt(v.age), label, votes, _fmt(v.region_ml.get("WT")),
            _fmt(v.region_ml.get("TC")), _fmt(v.region_ml.get("ET")), v.status,
        )
    console.print(table)
    console.print(f"Wrote {out_dir / PREDICTIONS_CSV}")
    if summary.failures:
        console.print(f"[red]{counted(len(summary.failures), 'volume')} failed; see {out_dir / ERRORS_CSV}[/red]")
        raise SystemExit(ExitCode.VOLUMES_SKIPPED)


def _part_volumes(model_dir: Path | None, part: str, subset: tuple[int, ...] | None) -> tuple[int, ...]:
    """The volumes of ``part`` in the run's split (within ``subset`` when given)."""
    if model_dir is None:
        raise ConfigError("--part reads the run's split.csv: give --model-dir")
    split = read_split_csv(model_dir / SPLIT_FILE)
    if split.mode is not SplitMode.PATIENT:
        raise ConfigError(f"{model_dir / SPLIT_FILE}: a {split.mode.value} split has no held-out volumes; --part needs a patient split")
    volumes = dict(zip(PARTS, (split.train, split.val, split.test), strict=True))[part]
    if not volumes:
        raise ConfigError(f"{model_dir / SPLIT_FILE}: the {part} part is empty")
    return tuple(v for v in volumes if subset is None or v in subset)


def _fmt(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)
