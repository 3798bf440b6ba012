"""The options both training pipelines take, declared and checked once.

:class:`TrainRunConfig` is the frozen base of ``SegmenterTrainConfig`` and
``SurvivalTrainConfig``: where the data and the run folder are, which volumes and
split, the optimiser's common settings and the machine's. Each model's config adds
its own fields (and may give a shared field another default).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from brats_sdk.config_checks import require_finite
from brats_sdk.data.sources import DataFormat
from brats_sdk.data.splits import SplitMode
from brats_sdk.errors import ConfigError
from brats_sdk.models.pretrained import check_encoder_weights

__all__ = ["TrainRunConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainRunConfig:
    """Options of every ``brats train`` command (keyword-only, as each model's config).

    Attributes:
        data_dir: Training data (any layout :func:`~brats_sdk.data.sources.open_source` reads).
        out_dir: Run folder.
        survival_csv: ``survival_info.csv``; None: the one beside the data (the
            segmenter uses it only to stratify the split by survival bin).
        epochs: Cap on epochs (of every stage), or None for the model's own.
        batch_size: Slices per optimizer step.
        patience: Early-stopping patience (epochs).
        step_size: StepLR period (epochs); gamma 0.1.
        seed: Seed of the split, the initial weights and the sample order.
        max_volumes: Use only the first N volumes.
        volumes: Use only these volumes.
        num_workers: DataLoader workers.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        split_mode: ``patient`` (default) or ``slice`` (the paper's, which leaks patients).
        encoder_weights: None or ``imagenet``.
        max_steps_per_epoch: Cap on optimizer steps per epoch, or None.
        amp: Mixed precision on CUDA.
        resume: Continue an interrupted run from its ``last`` checkpoints.
        data_format: Layout of ``data_dir``.
        augment: Random transforms of the training items (the paper: none).
        split_csv: Use this split file (volumes by number, as ``split.csv`` holds them)
            instead of planning one.

    Raises:
        ConfigError: An invalid value (checked here for both models).
    """

    data_dir: Path
    out_dir: Path
    survival_csv: Path | None = None
    epochs: int | None = None
    batch_size: int = 32
    patience: int = 3
    step_size: int = 10
    seed: int = 0
    max_volumes: int | None = None
    volumes: tuple[int, ...] | None = None
    num_workers: int = 0
    device: str = "auto"
    split_mode: SplitMode = SplitMode.PATIENT
    encoder_weights: str | None = None
    max_steps_per_epoch: int | None = None
    amp: bool = True
    resume: bool = False
    data_format: DataFormat = DataFormat.AUTO
    augment: bool = False
    split_csv: Path | None = None

    def __post_init__(self) -> None:
        require_finite(self)  # every float field, the subclass's too
        object.__setattr__(self, "split_mode", SplitMode.parse(self.split_mode))
        object.__setattr__(self, "data_format", DataFormat.parse(self.data_format))
        check_encoder_weights(self.encoder_weights)
        at_least = {
            "epochs": (self.epochs, 1),
            "batch_size": (self.batch_size, 1),
            "patience": (self.patience, 1),
            "step_size": (self.step_size, 1),
            "max_volumes": (self.max_volumes, 1),
            "num_workers": (self.num_workers, 0),
            "max_steps_per_epoch": (self.max_steps_per_epoch, 1),
        }
        for name, (value, low) in at_least.items():
            if value is not None and value < low:
                raise ConfigError(f"{name} must be >= {low}, got {value}")
