"""Named segmenter recipes: every setting of ``brats train segmenter`` in one place.

``paper`` is the paper's recipe (three stages on whole slices, the paper's Dice loss,
Adam 1e-4 with StepLR), the defaults of :class:`SegmenterTrainConfig`. ``cpu`` is a
recipe for a small CPU: one stage of 60 epochs of at most 200 steps (an epoch is one pass
over the training slices, so a handful of patients gives fewer steps) on random 128 x 128 windows at native
resolution, half of them drawn from slices with tumour, Dice + cross-entropy pooled over
the batch, intensity jitter, mirroring, rotation and zoom, oedema faded per channel down
to 0.2 of its contrast in half the windows holding it, a cosine schedule, the last
epoch's weights, validation on a capped subset of slices, bf16 autocast where the CPU
computes bf16 natively, and a time limit that keeps the whole command within an hour on
a slower CPU (the schedule then ends early but still on its lowest rate; the README
holds what the recipe scores on real held-out cases). Options given explicitly override
a preset's values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from brats_sdk.device import cpu_has_native_bf16
from brats_sdk.errors import ConfigError
from brats_sdk.options import OptionEnum, config_to_dict
from brats_sdk.training.schedule import LrSchedule
from brats_sdk.training.segmenter_pipeline import SegmenterTrainConfig

__all__ = ["SegmenterPreset", "describe", "preset_config", "preset_values"]


class SegmenterPreset(OptionEnum):
    """Named recipes of ``brats train segmenter``.

    PAPER: the paper's three stages on whole slices (the defaults).
    CPU: one stage on tumour windows, sized for a 2-core CPU and about an hour.
    """

    PAPER = "paper"
    CPU = "cpu"


_CPU: Mapping[str, object] = MappingProxyType({
    "batch_size": 16,
    "stage_epochs": (60, 0, 0),
    "epochs": None,
    "lrs": (1e-3, 1e-3, 1e-5),
    "patience": 60,
    "max_steps_per_epoch": 200,
    "drop_no_brain": True,
    "batch_dice": True,
    "background_weight": 0.25,
    "crop_size": 128,
    "tumour_fraction": 0.5,
    "schedule": LrSchedule.COSINE,
    "warmup_steps": 200,
    "ce_weight": 1.0,
    "augment": True,
    "oedema_contrast_min": 0.2,
    "max_val_slices": 150,
    "keep_best": False,
    "time_limit_minutes": 52.0,
})


def preset_values(preset: SegmenterPreset | str) -> dict[str, object]:
    """The settings a preset gives (config field -> value), beyond the data and run folders.

    ``cpu`` turns bf16 autocast on where the CPU has native bf16 (there it trains faster
    than fp32 at the same results; benchmarks/README.md has the figures), so the value depends on this machine.

    Raises:
        ConfigError: An unknown preset.
    """
    kind = SegmenterPreset.parse(preset)
    base = SegmenterTrainConfig(data_dir=Path("."), out_dir=Path("."))
    values = {f.name: getattr(base, f.name) for f in dataclasses.fields(base) if f.name not in ("data_dir", "out_dir")}
    if kind is SegmenterPreset.CPU:
        values.update(_CPU)
        values["cpu_bf16"] = cpu_has_native_bf16()
    return values


def preset_config(
    preset: SegmenterPreset | str, *, data_dir: Path, out_dir: Path, overrides: Mapping[str, object] | None = None
) -> SegmenterTrainConfig:
    """A :class:`SegmenterTrainConfig` from a preset, with ``overrides`` (field -> value) on top.

    Raises:
        ConfigError: An unknown preset or field, or an invalid value.
    """
    values = preset_values(preset)
    extra = dict(overrides or {})
    unknown = sorted(set(extra) - set(values))
    if unknown:
        raise ConfigError(f"unknown segmenter settings {unknown}; known: {sorted(values)}")
    values.update(extra)
    return SegmenterTrainConfig(data_dir=data_dir, out_dir=out_dir, **values)  # type: ignore[arg-type]  # field names checked above


def describe(config: SegmenterTrainConfig) -> dict[str, object]:
    """A config as plain values (enums as strings), for ``--show-preset`` and run folders."""
    return {k: v for k, v in config_to_dict(config).items() if k not in ("data_dir", "out_dir")}
