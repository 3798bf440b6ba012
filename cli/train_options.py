"""The options of ``brats train``, defined once and handed to its commands as typed records.

Each group of options (every command's, the segmenter's, the survival classifier's) is a
frozen record whose field names are the parameter names, which are the training configs'
field names where the option sets one. A command takes the records it needs:
``def train_segmenter_cmd(run: RunOptions, seg: SegmenterOptions)``. Each record also says
which of its options were given on the command line, so that they can override a preset.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource
from rich import box
from rich.table import Table

from brats_sdk.bins import BinMethod
from brats_sdk.data.normalise import Normalisation
from brats_sdk.data.sources import DataFormat
from brats_sdk.data.splits import SplitMode
from brats_sdk.models.pretrained import EncoderWeights
from brats_sdk.training.loop import KeepWeights
from brats_sdk.training.presets import SegmenterPreset, describe, preset_config
from brats_sdk.training.schedule import LrSchedule
from brats_sdk.training.segmenter_pipeline import SegmenterTrainConfig
from brats_sdk.training.survival_pipeline import SurvivalTrainConfig
from cli.console import console
from cli.options import (
    EnumChoice,
    Triple,
    device_option,
    format_option,
    parse_int_list,
    quiet_option,
)

__all__ = [
    "RunOptions",
    "SegmenterOptions",
    "SurvivalOptions",
    "run_options",
    "segmenter_config",
    "segmenter_options",
    "survival_config",
    "survival_options",
]

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What every ``brats train`` command takes (help text in :func:`run_options`)."""

    data_dir: Path
    out_dir: Path
    epochs: int | None
    batch_size: int | None
    accumulate_steps: int
    patience: int
    step_size: int
    seed: int
    max_volumes: int | None
    volumes: tuple[int, ...] | None
    max_steps_per_epoch: int | None
    num_workers: int
    split_mode: SplitMode
    encoder_weights: str | None
    amp: bool
    resume: bool
    split_csv: Path | None
    data_format: DataFormat
    device: str
    quiet: bool
    given: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class SegmenterOptions:
    """What ``brats train segmenter`` (and ``all``) adds (help text in :func:`segmenter_options`)."""

    preset: SegmenterPreset
    stage_epochs: tuple[int, int, int]
    lrs: tuple[float, float, float]
    drop_no_brain: bool
    batch_dice: bool
    background_weight: float
    input_size: int | None
    crop_size: int | None
    tumour_fraction: float | None
    normalisation: Normalisation
    schedule: LrSchedule
    warmup_steps: int
    time_limit_minutes: float | None
    cpu_bf16: bool
    ce_weight: float
    augment: bool
    oedema_contrast_min: float
    max_val_slices: int | None
    keep_best: bool
    given: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class SurvivalOptions:
    """What ``brats train survival`` (and ``all``) adds (help text in :func:`survival_options`)."""

    survival_csv: Path | None
    bins: BinMethod
    id_map_csv: Path | None
    survival_lr: float
    survival_augment: bool
    given: frozenset[str] = frozenset()


def _as_record(record: Callable[..., R], name: str, options: Sequence[Callable[[F], F]]) -> Callable[[F], F]:
    """Add ``options`` to a command and hand their values to it as one ``record``, in the
    parameter ``name``, with the names given on the command line (or by the environment)."""
    fields = [f.name for f in dataclasses.fields(record) if f.name != "given"]  # type: ignore[arg-type]  # a dataclass type

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def packed(*args: object, **kwargs: object) -> object:
            ctx = click.get_current_context()
            values = {field: kwargs.pop(field) for field in fields}
            given = frozenset(field for field in fields if _given(ctx, field))
            return command(*args, **kwargs, **{name: record(**values, given=given)})

        wrapped: F = packed  # type: ignore[assignment]  # same parameters as the Click command sees
        for option in reversed(options):
            wrapped = option(wrapped)
        return wrapped

    return decorate


def _given(ctx: click.Context, param: str) -> bool:
    source = ctx.get_parameter_source(param)
    return source is not None and source not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def _volumes(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    return parse_int_list(value, name="--volumes")


def _weights(_ctx: click.Context, _param: click.Parameter, value: EncoderWeights) -> str | None:
    return value.config_value


def _not(_ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    return not value


def _is_best(_ctx: click.Context, _param: click.Parameter, value: KeepWeights) -> bool:
    return value is KeepWeights.BEST


run_options = _as_record(RunOptions, "run", [
    click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path)),
    click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run folder."),
    click.option("--epochs", type=click.IntRange(min=1), default=None, help="Cap on epochs (of every stage)."),
    click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Slices per optimizer step."),
    click.option("--accumulate", "accumulate_steps", type=click.IntRange(min=1), default=1, show_default=True,
                 help="Micro-batches per step (when a batch does not fit)."),
    click.option("--patience", type=click.IntRange(min=1), default=3, show_default=True, help="Early-stopping patience (epochs)."),
    click.option("--step-size", type=click.IntRange(min=1), default=10, show_default=True, help="StepLR period (epochs), gamma 0.1."),
    click.option("--seed", type=int, default=0, show_default=True, help="Seed of split, weights and sample order."),
    click.option("--max-volumes", type=click.IntRange(min=1), default=None, help="Use only the first N volumes."),
    click.option("--volumes", "volumes", default=None, callback=_volumes, help="Use only these volumes, e.g. 1,5,9."),
    click.option("--max-steps", "max_steps_per_epoch", type=click.IntRange(min=1), default=None,
                 help="Cap on optimizer steps per epoch (quick runs)."),
    click.option("--num-workers", type=click.IntRange(min=0), default=0, show_default=True, help="DataLoader worker processes."),
    click.option("--split", "split_mode", type=EnumChoice(SplitMode), default="patient", show_default=True,
                 help="patient (default) or slice: the paper's split, which leaks patients between train and test."),
    click.option("--encoder-weights", type=EnumChoice(EncoderWeights), default=EncoderWeights.NONE.value, show_default=True,
                 callback=_weights, help="Encoder initialisation; imagenet needs the weights cached or a network."),
    click.option("--no-amp", "amp", is_flag=True, callback=_not, help="Disable mixed precision on CUDA."),
    click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoints."),
    click.option("--split-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                 help="Use this split (an earlier run's split.csv, or columns volume,slice,part,mode,seed written "
                      "by hand) instead of planning one."),
    format_option,
    device_option,
    quiet_option,
])


survival_options = _as_record(SurvivalOptions, "surv", [
    click.option("--survival-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                 help="survival_info.csv (default: the one beside the data)."),
    click.option("--bins", type=EnumChoice(BinMethod), default="quantile", show_default=True,
                 help="quantile: tertiles of training patients (the paper); brats: 304.2/456.25-day cut-offs."),
    click.option("--id-map", "id_map_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                 help="CSV volume,patient_id overriding BraTS20_Training_{V:03d}."),
    click.option("--survival-lr", type=click.FloatRange(min=0.0, min_open=True), default=1e-4, show_default=True,
                 help="Adam learning rate of the survival classifier (the paper: 1e-4)."),
    click.option("--survival-augment", is_flag=True,
                 help="Random flips and quarter turns of the survival classifier's training masks."),
])


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


segmenter_options = _as_record(SegmenterOptions, "seg", [
    click.option("--preset", type=EnumChoice(SegmenterPreset), default="paper", show_default=True,
                 help="A named recipe: paper (three stages on whole slices, the paper's settings) or cpu (one "
                      "stage on tumour windows, about an hour on a 2-core CPU). Options given explicitly "
                      "override it; --show-preset prints its settings."),
    click.option("--show-preset", type=EnumChoice(SegmenterPreset), default=None, is_eager=True,
                 expose_value=False, callback=_show_preset, help="Print every setting of a preset and exit."),
    click.option("--stage-epochs", type=Triple(int), default="50,50,50", show_default=True,
                 help="Maximum epochs of stages 1,2,3 (0 skips a stage)."),
    click.option("--lr", "lrs", type=Triple(float), default="1e-4,1e-3,1e-5", show_default=True,
                 help="Learning rates of stages 1,2,3."),
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
    click.option("--time-limit", "time_limit_minutes", type=click.FloatRange(min=0.0, min_open=True), default=None,
                 help="Minutes of training (all stages, validation included); then validate and stop."),
    click.option("--cpu-bf16", is_flag=True,
                 help="bf16 autocast when training on a CPU (fast only on CPUs with native bf16)."),
    click.option("--ce-weight", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
                 help="Add this times the cross-entropy to the Dice loss (the paper: 0)."),
    click.option("--augment", is_flag=True, help="Random mirroring and intensity jitter of training slices."),
    click.option("--oedema-contrast-min", type=click.FloatRange(min=0.0, max=1.0), default=1.0, show_default=True,
                 help="With --augment, fade the oedema of half the training windows holding it towards the "
                      "healthy brain by a factor per channel drawn from [this, 1] (1: off)."),
    click.option("--max-val-slices", type=click.IntRange(min=1), default=None,
                 help="Validate each epoch on at most this many slices (a fixed subset, tumour first)."),
    click.option("--keep", "keep_best", type=EnumChoice(KeepWeights), default=KeepWeights.BEST.value, show_default=True,
                 callback=_is_best,
                 help="Final weights: the best validated epoch (the paper's) or the last one (for --schedule cosine)."),
])

_SEGMENTER_FIELDS = frozenset(f.name for f in dataclasses.fields(SegmenterTrainConfig)) - {"data_dir", "out_dir"}


def segmenter_config(
    run: RunOptions, seg: SegmenterOptions, *, device: str, survival_csv: Path | None = None
) -> SegmenterTrainConfig:
    """The preset's config with every option given on the command line on top.

    Raises:
        ConfigError: An invalid combination of values.
    """
    explicit: dict[str, object] = {
        name: getattr(record, name) for record in (run, seg) for name in record.given & _SEGMENTER_FIELDS
    }
    explicit.update(device=device, survival_csv=survival_csv)
    return preset_config(seg.preset, data_dir=run.data_dir, out_dir=run.out_dir, overrides=explicit)


def survival_config(
    run: RunOptions, surv: SurvivalOptions, *, device: str, epochs: int | None, survival_csv: Path | None
) -> SurvivalTrainConfig:
    """The survival classifier's config from the options (``epochs``: None for its default).

    Raises:
        ConfigError: An invalid combination of values.
    """
    return SurvivalTrainConfig(
        data_dir=run.data_dir, survival_csv=survival_csv, out_dir=run.out_dir, bins=surv.bins,
        epochs=epochs or 50, batch_size=run.batch_size or 32, lr=surv.survival_lr, patience=run.patience,
        step_size=run.step_size, seed=run.seed, max_volumes=run.max_volumes, volumes=run.volumes,
        num_workers=run.num_workers, device=device, split_mode=run.split_mode, encoder_weights=run.encoder_weights,
        id_map_csv=surv.id_map_csv, max_steps_per_epoch=run.max_steps_per_epoch, amp=run.amp, resume=run.resume,
        data_format=run.data_format, augment=surv.survival_augment, split_csv=run.split_csv,
    )
