"""``brats train segmenter|survival|all``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource
from rich import box
from rich.table import Table

from brats_sdk.bins import BinMethod
from brats_sdk.data.normalise import Normalisation
from brats_sdk.data.splits import SplitMode
from brats_sdk.distributed import is_main_process
from brats_sdk.models.pretrained import EncoderWeights
from brats_sdk.training.presets import SegmenterPreset, describe, preset_config
from brats_sdk.training.run import require_survival_csv
from brats_sdk.training.schedule import LrSchedule
from brats_sdk.training.segmenter_pipeline import (
    SegmenterTrainConfig,
    SegmenterTrainResult,
    train_segmenter,
)
from brats_sdk.training.survival_pipeline import (
    SurvivalTrainConfig,
    SurvivalTrainResult,
    train_survival,
)
from cli.console import console, progress_updates
from cli.observer import RichObserver
from cli.options import (
    EnumChoice,
    Triple,
    announce_device,
    device_option,
    format_option,
    parse_int_list,
    quiet_option,
    warn_slow_bf16,
)

F = TypeVar("F", bound=Callable[..., Any])


def _common(f: F) -> F:
    """Options both models take (help text lives here once)."""
    decorators = [
        click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path)),
        click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run folder."),
        click.option("--epochs", type=click.IntRange(min=1), default=None, help="Cap on epochs (of every stage)."),
        click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Slices per optimizer step."),
        click.option("--accumulate", type=click.IntRange(min=1), default=1, show_default=True, help="Micro-batches per step (when a batch does not fit)."),
        click.option("--patience", type=click.IntRange(min=1), default=3, show_default=True, help="Early-stopping patience (epochs)."),
        click.option("--step-size", type=click.IntRange(min=1), default=10, show_default=True, help="StepLR period (epochs), gamma 0.1."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of split, weights and sample order."),
        click.option("--max-volumes", type=click.IntRange(min=1), default=None, help="Use only the first N volumes."),
        click.option("--volumes", "volumes_text", default=None, help="Use only these volumes, e.g. 1,5,9."),
        click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Cap on optimizer steps per epoch (quick runs)."),
        click.option("--num-workers", type=click.IntRange(min=0), default=0, show_default=True, help="DataLoader worker processes."),
        click.option("--split", "split_mode", type=EnumChoice(SplitMode), default="patient", show_default=True,
                     help="patient (default) or slice: the paper's split, which leaks patients between train and test."),
        click.option("--encoder-weights", type=EnumChoice(EncoderWeights), default=EncoderWeights.NONE.value, show_default=True,
                     help="Encoder initialisation; imagenet needs the weights cached or a network."),
        click.option("--no-amp", is_flag=True, help="Disable mixed precision on CUDA."),
        click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoints."),
        click.option("--split-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                     help="Use this split (an earlier run's split.csv, or columns volume,slice,part,mode,seed written "
                          "by hand) instead of planning one."),
        format_option,
        device_option,
        quiet_option,
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


def _survival_options(f: F) -> F:
    decorators = [
        click.option("--survival-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                     help="survival_info.csv (default: the one beside the data)."),
        click.option("--bins", type=EnumChoice(BinMethod), default="quantile", show_default=True,
                     help="quantile: tertiles of training patients (the paper); brats: 304.2/456.25-day cut-offs."),
        click.option("--id-map", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                     help="CSV volume,patient_id overriding BraTS20_Training_{V:03d}."),
        click.option("--survival-lr", type=click.FloatRange(min=0.0, min_open=True), default=1e-4, show_default=True,
                     help="Adam learning rate of the survival classifier (the paper: 1e-4)."),
        click.option("--survival-augment", is_flag=True,
                     help="Random flips and quarter turns of the survival classifier's training masks."),
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


def _segmenter_options(f: F) -> F:
    decorators = [
        click.option("--preset", type=EnumChoice(SegmenterPreset), default="paper", show_default=True,
                     help="A named recipe: paper (three stages on whole slices, the paper's settings) or cpu (one "
                          "stage on tumour windows, about an hour on a 2-core CPU). Options given explicitly "
                          "override it; --show-preset prints its settings."),
        click.option("--show-preset", type=EnumChoice(SegmenterPreset), default=None, is_eager=True,
                     expose_value=False, callback=_show_preset, help="Print every setting of a preset and exit."),
        click.option("--stage-epochs", type=Triple(int), default="50,50,50", show_default=True, help="Maximum epochs of stages 1,2,3 (0 skips a stage)."),
        click.option("--lr", "lr_text", type=Triple(float), default="1e-4,1e-3,1e-5", show_default=True, help="Learning rates of stages 1,2,3."),
        click.option("--drop-no-brain", is_flag=True, help="Leave out slices without brain."),
        click.option("--batch-dice", is_flag=True,
                     help="Dice pooled over the batch instead of per slice (the paper's); learns faster."),
        click.option("--background-weight", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
                     help="Dice weight of the background class (the paper: 0)."),
        click.option("--input-size", type=int, default=None, help="Resize slices to this size (the paper: 256) instead of padding."),
        click.option("--crop-size", type=click.IntRange(min=32), default=None,
                     help="Train on random windows of this size at native resolution (mostly on tumour) and "
                          "validate on the brain box, instead of whole slices (the paper's)."),
        click.option("--tumour-fraction", type=click.FloatRange(min=0.0, max=1.0, min_open=True, max_open=True), default=None,
                     help="Draw slices with tumour this share of the time instead of every slice once an epoch."),
        click.option("--normalisation", type=EnumChoice(Normalisation), default="slice", show_default=True,
                     help="slice: z-score each slice over its brain (the same input from NIfTI and Kaggle's h5); "
                          "volume: over the volume's brain."),
        click.option("--schedule", type=EnumChoice(LrSchedule), default="step", show_default=True,
                     help="step: StepLR every --step-size epochs (the paper's); cosine: per step, with warm-up, "
                          "over the epochs or the time limit."),
        click.option("--warmup-steps", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Linear warm-up steps of the cosine schedule."),
        click.option("--time-limit", "time_limit", type=click.FloatRange(min=0.0, min_open=True), default=None,
                     help="Minutes of training (all stages, validation included); then validate and stop."),
        click.option("--cpu-bf16", is_flag=True,
                     help="bf16 autocast when training on a CPU (fast only on CPUs with native bf16)."),
        click.option("--ce-weight", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
                     help="Add this times the cross-entropy to the Dice loss (the paper: 0)."),
        click.option("--augment", is_flag=True, help="Random mirroring and intensity jitter of training slices."),
        click.option("--max-val-slices", type=click.IntRange(min=1), default=None,
                     help="Validate each epoch on at most this many slices (a fixed subset, tumour first)."),
        click.option("--keep", "keep", type=click.Choice(["best", "last"]), default="best", show_default=True,
                     help="Final weights: the best validated epoch (the paper's) or the last one (for --schedule cosine)."),
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


@click.group("train")
def train_group() -> None:
    """Train the segmenter, the survival classifier, or both."""


# Segmenter config field -> the CLI parameter that sets it. A preset gives every field;
# parameters given on the command line override it.
_SEG_PARAMS: dict[str, str] = {
    "batch_size": "batch_size", "stage_epochs": "stage_epochs", "epochs": "epochs", "lrs": "lr_text",
    "patience": "patience", "step_size": "step_size", "seed": "seed", "max_volumes": "max_volumes",
    "volumes": "volumes_text", "num_workers": "num_workers", "split_mode": "split_mode",
    "drop_no_brain": "drop_no_brain", "input_size": "input_size", "batch_dice": "batch_dice",
    "background_weight": "background_weight", "crop_size": "crop_size", "tumour_fraction": "tumour_fraction",
    "encoder_weights": "encoder_weights", "accumulate_steps": "accumulate", "max_steps_per_epoch": "max_steps",
    "amp": "no_amp", "resume": "resume", "data_format": "data_format", "normalisation": "normalisation",
    "schedule": "schedule", "warmup_steps": "warmup_steps", "time_limit_minutes": "time_limit",
    "cpu_bf16": "cpu_bf16", "ce_weight": "ce_weight", "augment": "augment", "max_val_slices": "max_val_slices",
    "split_csv": "split_csv", "keep_best": "keep",
}


def _seg_values(kw: dict[str, Any]) -> dict[str, Any]:
    """Every segmenter field as the command line's options give it."""
    return {
        "batch_size": kw["batch_size"] or 120, "stage_epochs": kw["stage_epochs"],
        "epochs": kw["epochs"], "lrs": kw["lr_text"], "patience": kw["patience"],
        "step_size": kw["step_size"], "seed": kw["seed"], "max_volumes": kw["max_volumes"],
        "volumes": parse_int_list(kw["volumes_text"], name="--volumes"), "num_workers": kw["num_workers"],
        "split_mode": kw["split_mode"], "drop_no_brain": kw["drop_no_brain"], "input_size": kw["input_size"],
        "batch_dice": kw["batch_dice"], "background_weight": kw["background_weight"], "crop_size": kw["crop_size"],
        "tumour_fraction": kw["tumour_fraction"],
        "encoder_weights": kw["encoder_weights"].config_value,
        "accumulate_steps": kw["accumulate"], "max_steps_per_epoch": kw["max_steps"], "amp": not kw["no_amp"],
        "resume": kw["resume"], "data_format": kw["data_format"],
        "normalisation": kw["normalisation"], "schedule": kw["schedule"],
        "warmup_steps": kw["warmup_steps"], "time_limit_minutes": kw["time_limit"], "cpu_bf16": kw["cpu_bf16"],
        "ce_weight": kw["ce_weight"], "augment": kw["augment"], "max_val_slices": kw["max_val_slices"],
        "split_csv": kw["split_csv"], "keep_best": kw["keep"] == "best",
    }


def _given(param: str) -> bool:
    """Whether ``param`` was set on the command line (or by an environment variable)."""
    ctx = click.get_current_context()
    source = ctx.get_parameter_source(param)
    return source is not None and source not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def _seg_config(kw: dict[str, Any], device: str) -> SegmenterTrainConfig:
    values = _seg_values(kw)
    explicit = {field: values[field] for field, param in _SEG_PARAMS.items() if _given(param)}
    explicit.update(device=device, survival_csv=kw.get("survival_csv"))
    return preset_config(kw["preset"], data_dir=kw["data_dir"], out_dir=kw["out_dir"], overrides=explicit)


def _show_preset(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """``--show-preset NAME``: print every setting of the preset and exit."""
    if value is None or ctx.resilient_parsing:
        return
    config = preset_config(value, data_dir=Path("DATA_DIR"), out_dir=Path("RUN_DIR"))
    table = Table(title=f"Preset {value} of brats train segmenter", box=box.SIMPLE_HEAD)
    table.add_column("setting")
    table.add_column("value")
    for name, setting in describe(config).items():
        table.add_row(name, str(setting))
    console.print(table)
    ctx.exit(0)


def _surv_config(kw: dict[str, Any], device: str, survival_csv: Path | None) -> SurvivalTrainConfig:
    return SurvivalTrainConfig(
        data_dir=kw["data_dir"], survival_csv=survival_csv, out_dir=kw["out_dir"], bins=kw["bins"],
        epochs=kw["epochs"] or 50, batch_size=kw["batch_size"] or 32, lr=kw["survival_lr"], patience=kw["patience"],
        step_size=kw["step_size"], seed=kw["seed"], max_volumes=kw["max_volumes"],
        volumes=parse_int_list(kw["volumes_text"], name="--volumes"), num_workers=kw["num_workers"], device=device,
        split_mode=kw["split_mode"], encoder_weights=kw["encoder_weights"].config_value,
        id_map_csv=kw["id_map"], max_steps_per_epoch=kw["max_steps"], amp=not kw["no_amp"], resume=kw["resume"],
        data_format=kw["data_format"], augment=kw["survival_augment"], split_csv=kw["split_csv"],
    )


def _run_segmenter(kw: dict[str, Any], device: str) -> SegmenterTrainResult:
    config = _seg_config(kw, device)
    warn_slow_bf16(device, config.cpu_bf16, "--cpu-bf16")
    quiet = kw["quiet"] or not is_main_process()
    with progress_updates("Scanning slices", quiet=quiet) as progress, RichObserver(quiet=quiet) as observer:
        return train_segmenter(config, observer=observer, progress=progress)


def _run_survival(kw: dict[str, Any], device: str) -> SurvivalTrainResult:
    config = _surv_config(kw, device, kw.get("survival_csv"))
    quiet = kw["quiet"] or not is_main_process()
    with progress_updates("Scanning slices", quiet=quiet) as progress, RichObserver(quiet=quiet) as observer:
        return train_survival(config, observer=observer, progress=progress)


def _print_segmenter(r: SegmenterTrainResult) -> None:
    table = Table(title=f"Segmenter -> {r.model_path}")
    table.add_column("split")
    for name in ("NCR", "ED", "ET", "mean"):
        table.add_column(f"Dice {name}", justify="right")
    table.add_column("slices", justify="right")
    for part, metrics in (("validation", r.val_metrics), ("test", r.test_metrics)):
        table.add_row(part, *[f"{metrics[f'dice_{n}']:.3f}" if f"dice_{n}" in metrics else "-" for n in ("NCR", "ED", "ET", "mean")],
                      str(r.n_slices["val" if part == "validation" else "test"]))
    console.print(table)
    console.print(f"split: {r.split.mode.value} (train/val/test volumes {len(r.split.train)}/{len(r.split.val)}/{len(r.split.test)}), "
                  f"{r.seconds:.0f} s on {r.device}")
    if r.split.leaks_patients:
        console.print("[bold red]slice-level split: test slices come from training patients; the test figures leak.[/bold red]")


def _print_survival(r: SurvivalTrainResult) -> None:
    ranges = ", ".join(f"{r.bins.labels[b]} {r.bins.range_text(b)} d" for b in range(r.bins.n_bins))
    # Day ranges in the caption, not the headers: the table then fits 80 columns.
    table = Table(title=f"Survival classifier -> {r.model_path}",
                  caption=f"test patients, ground-truth masks; accuracy per true bin (n); bins: {ranges}",
                  box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)
    table.add_column("level", no_wrap=True)
    table.add_column("accuracy", justify="right")
    table.add_column("n", justify="right")
    for b in range(r.bins.n_bins):
        table.add_column(r.bins.labels[b], justify="right", overflow="fold")
    for name, label in (("per_slice", "per slice"), ("per_slice_nonempty", "per slice, non-empty mask"), ("per_patient", "per patient (vote)")):
        s = getattr(r.levels, name)
        if s is None:
            table.add_row(label, "-", "0", *["-"] * r.bins.n_bins)
            continue
        per_bin = [f"{a:.3f} (n={n})" if a is not None else f"- (n={n})" for a, n in zip(s.per_bin_accuracy, s.per_bin_n, strict=True)]
        table.add_row(label, f"{s.accuracy:.3f}", str(s.n), *per_bin)
    console.print(table)
    if r.levels.per_patient is not None:
        console.print(f"patient confusion matrix (rows truth, columns predicted): {r.levels.per_patient.confusion}")
    excluded = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r.excluded.items() if v)
    console.print(f"patients train/val/test {r.patients['train']}/{r.patients['val']}/{r.patients['test']}; "
                  f"left out: {excluded or 'none'}; {r.seconds:.0f} s on {r.device}")
    if r.split.leaks_patients:
        console.print("[bold red]slice-level split: the same patients are in train and test; these accuracies leak.[/bold red]")


@train_group.command("segmenter")
@_common
@_segmenter_options
def train_segmenter_cmd(**kw: Any) -> None:
    """Train the U-Net segmenter (the paper's three stages) on DATA_DIR."""
    device = announce_device(kw["device"])
    result = _run_segmenter(kw, device)
    if is_main_process():
        _print_segmenter(result)


@train_group.command("survival")
@_common
@_survival_options
def train_survival_cmd(**kw: Any) -> None:
    """Train the survival classifier on DATA_DIR's ground-truth masks."""
    device = announce_device(kw["device"])
    result = _run_survival(kw, device)
    if is_main_process():
        _print_survival(result)


@train_group.command("all")
@_common
@_segmenter_options
@_survival_options
@click.option("--survival-epochs", type=click.IntRange(min=1), default=None,
              help="Epochs of the survival classifier (default: --epochs, else 50).")
def train_all_cmd(**kw: Any) -> None:
    """Train both models into one run folder, on the same split."""
    device = announce_device(kw["device"])
    kw["survival_csv"] = require_survival_csv(kw["data_dir"], kw["data_format"], kw.get("survival_csv"))
    seg = _run_segmenter(kw, device)
    surv = _run_survival({**kw, "epochs": kw["survival_epochs"] or kw["epochs"]}, device)
    if is_main_process():
        _print_segmenter(seg)
        _print_survival(surv)
