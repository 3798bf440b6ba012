"""The shared training loop with real models on small inputs, on the CPU.

The resume, checkpoint, determinism and history tests train the real U-Net on a few
48 x 48 slices of the synthetic cohort; the early-stopping and gradient-accumulation
tests use a one-layer convolution (no BatchNorm, so a batch split in two has the
same gradient) through the same loop and the library's own task.
"""

from __future__ import annotations

import csv
import dataclasses
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from brats_sdk.checkpoint import FORMAT_VERSION, CheckpointKind
from brats_sdk.data.datasets import SegmentationDataset
from brats_sdk.data.protocols import DataSource
from brats_sdk.data.scan import SourceScan, scan_source
from brats_sdk.data.sources import open_source
from brats_sdk.errors import CheckpointError, ConfigError
from brats_sdk.models.losses import DiceLoss
from brats_sdk.models.segmenter import Segmenter
from brats_sdk.training.history import HistoryFile
from brats_sdk.training.loop import BEST, LAST, FitConfig, FitResult, fit
from brats_sdk.training.observer import EpochRecord
from brats_sdk.training.tasks import SegmentationTask
from tests.helpers import TensorDataset

CPU = torch.device("cpu")
TIMING_COLUMNS = ("seconds", "samples_per_s")
# 32 training slices in micro-batches of 8: four optimizer steps per epoch.
SEG_FIT = FitConfig(lr=1e-3, max_epochs=2, batch_size=8, patience=5, amp=False, seed=0)


# ------------------------------------------------------------------------------ helpers
@dataclass(frozen=True)
class SegData:
    source: DataSource
    scan: SourceScan
    train: SegmentationDataset
    val: SegmentationDataset


def tiny_net(seed: int = 0) -> nn.Module:
    """A real, batch-independent segmentation network: one 3x3 convolution 4 -> 4 classes."""
    torch.manual_seed(seed)
    return nn.Conv2d(4, 4, kernel_size=3, padding=1)


def fit_segmenter(data: SegData, out: Path, config: FitConfig, *, resume: bool = False, stage: str = "train") -> tuple[Segmenter, FitResult]:
    torch.manual_seed(0)  # the same initial weights in every run
    model = Segmenter()
    result = fit(
        model=model, task=SegmentationTask(), train_data=data.train, val_data=data.val, config=config,
        device=CPU, checkpoint_dir=out, stage=stage, resume=resume, history=HistoryFile(out / "history.csv"),
    )
    return model, result


def load_pt(path: Path) -> dict[str, object]:
    data = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(data, dict)
    return data


def state_of(ckpt: Mapping[str, object], key: str = "model") -> dict[str, torch.Tensor]:
    state = ckpt[key]
    assert isinstance(state, dict)
    return state


def assert_same_state(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"tensors differ: {differ[:5]}"


def csv_rows(path: Path, *, drop: tuple[str, ...] = TIMING_COLUMNS) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


def untimed(records: tuple[EpochRecord, ...]) -> list[EpochRecord]:
    return [dataclasses.replace(r, seconds=0.0, samples_per_s=0.0) for r in records]


def optimizer_tensors(ckpt: Mapping[str, object]) -> dict[str, torch.Tensor]:
    opt = ckpt["optimizer"]
    assert isinstance(opt, dict)
    return {f"{p}.{name}": t for p, s in opt["state"].items() for name, t in s.items()}


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def seg_data(tiny_cohort: Path) -> SegData:
    """Volumes 1-2 (32 slices) train, volume 3 (16 slices) validates."""
    source = open_source(tiny_cohort, volumes=(1, 2, 3))
    scan = scan_source(source)
    keys = [source.slice_key(i) for i in range(len(source))]
    train = [i for i, (v, _) in enumerate(keys) if v in (1, 2)]
    val = [i for i, (v, _) in enumerate(keys) if v == 3]
    return SegData(source, scan, SegmentationDataset(source, train, scan.stats), SegmentationDataset(source, val, scan.stats))


@dataclass(frozen=True)
class Runs:
    """An uninterrupted 2-epoch run (A) and a 1-epoch run resumed to 2 epochs (B)."""

    a_dir: Path
    a_model: dict[str, torch.Tensor]
    a_result: FitResult
    b_dir: Path
    b_model: dict[str, torch.Tensor]
    b_result: FitResult
    b_last_after_epoch1: Path


@pytest.fixture(scope="module")
def runs(seg_data: SegData, module_tmp: Path) -> Runs:
    root = module_tmp / "loop_runs"
    model_a, result_a = fit_segmenter(seg_data, root / "A", SEG_FIT)
    fit_segmenter(seg_data, root / "B", dataclasses.replace(SEG_FIT, max_epochs=1))
    saved = root / "B_last_epoch1.pt"
    shutil.copy(root / "B" / LAST, saved)
    model_b, result_b = fit_segmenter(seg_data, root / "B", SEG_FIT, resume=True)
    return Runs(
        root / "A", {k: v.clone() for k, v in model_a.state_dict().items()}, result_a,
        root / "B", {k: v.clone() for k, v in model_b.state_dict().items()}, result_b, saved,
    )


# ------------------------------------------------------------------------------ resume
def test_resumed_run_matches_uninterrupted_run(runs: Runs) -> None:
    assert runs.b_result.epochs_run == runs.a_result.epochs_run == 2
    assert (runs.b_result.best_epoch, runs.b_result.best_val_loss) == (runs.a_result.best_epoch, runs.a_result.best_val_loss)
    assert runs.b_result.best_metrics == runs.a_result.best_metrics
    # The resumed call trains epoch 2 only; it equals the uninterrupted run's epoch 2.
    assert [r.epoch for r in runs.b_result.history] == [2]
    assert untimed(runs.b_result.history) == untimed(runs.a_result.history)[1:]
    # Bit-identical weights: the best ones left in the model, and the last epoch's.
    assert_same_state(runs.a_model, runs.b_model)
    last_a, last_b = load_pt(runs.a_dir / LAST), load_pt(runs.b_dir / LAST)
    assert_same_state(state_of(last_a), state_of(last_b))
    assert_same_state(optimizer_tensors(last_a), optimizer_tensors(last_b))
    assert last_a["scheduler"] == last_b["scheduler"]
    assert torch.equal(last_a["rng_cpu"], last_b["rng_cpu"])  # type: ignore[arg-type]  # saved tensors
    assert_same_state(state_of(load_pt(runs.a_dir / BEST)), state_of(load_pt(runs.b_dir / BEST)))
    assert csv_rows(runs.a_dir / "history.csv") == csv_rows(runs.b_dir / "history.csv")


def test_epoch_2_changed_the_weights(runs: Runs) -> None:
    """Guards the test above: a resume that trained nothing would also 'match' on best.pt."""
    epoch1 = state_of(load_pt(runs.b_last_after_epoch1))
    last = state_of(load_pt(runs.b_dir / LAST))
    assert any(not torch.equal(epoch1[k], last[k]) for k in epoch1)


def test_resume_redoes_lost_epoch_and_truncates_history(runs: Runs, seg_data: SegData, tmp_path: Path) -> None:
    """A crash after history got epoch 2 but before last.pt did: epoch 2 is redone once."""
    out = tmp_path / "run"
    shutil.copytree(runs.b_dir, out)
    shutil.copy(runs.b_last_after_epoch1, out / LAST)
    HistoryFile(out / "history.csv").append(EpochRecord("other_stage", 1, 0.1, 0.5, 0.5, 1.0, 1.0))
    assert [r["epoch"] for r in csv_rows(out / "history.csv")] == ["1", "2", "1"]
    model, result = fit_segmenter(seg_data, out, SEG_FIT, resume=True)
    rows = csv_rows(out / "history.csv")
    assert [(r["stage"], r["epoch"]) for r in rows] == [("train", "1"), ("other_stage", "1"), ("train", "2")]
    assert [r for r in rows if r["stage"] == "train"] == csv_rows(runs.a_dir / "history.csv")
    assert_same_state(model.state_dict(), runs.a_model)
    assert result.epochs_run == 2


def test_resume_after_the_last_epoch_trains_nothing(runs: Runs, seg_data: SegData, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(runs.a_dir, out)
    model, result = fit_segmenter(seg_data, out, SEG_FIT, resume=True)
    assert result.history == () and result.epochs_run == 2
    assert result.best_epoch == runs.a_result.best_epoch
    assert_same_state(model.state_dict(), runs.a_model)
    assert len(csv_rows(out / "history.csv")) == 2


# ------------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("name", [LAST, BEST])
def test_checkpoints_hold_weights_and_record(runs: Runs, name: str) -> None:
    ckpt = load_pt(runs.a_dir / name)
    assert ckpt["format_version"] == FORMAT_VERSION
    assert ckpt["kind"] == CheckpointKind.TRAINING_STATE.value
    assert ckpt["stage"] == "train"
    state = ckpt["state"]
    assert isinstance(state, dict)
    assert state["epoch"] == (2 if name == LAST else runs.a_result.best_epoch)
    assert ckpt["fit_config"] == dataclasses.asdict(SEG_FIT)
    assert state_of(ckpt).keys() == Segmenter().state_dict().keys()


def test_last_holds_everything_to_resume_and_best_only_weights(runs: Runs) -> None:
    last, best = load_pt(runs.a_dir / LAST), load_pt(runs.a_dir / BEST)
    resume_keys = {"optimizer", "scheduler", "scaler", "rng_cpu", "rng_cuda"}
    assert resume_keys <= last.keys()
    assert isinstance(last["rng_cpu"], torch.Tensor) and last["rng_cpu"].dtype == torch.uint8
    assert not resume_keys & best.keys()
    # Adam keeps two moments per weight, so best.pt is about a third of last.pt.
    assert (runs.a_dir / BEST).stat().st_size < 0.4 * (runs.a_dir / LAST).stat().st_size


def test_no_temporary_files_are_left(runs: Runs) -> None:
    for folder in (runs.a_dir, runs.b_dir):
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted([LAST, BEST, "history.csv"]), names


def test_resuming_another_stage_is_refused(runs: Runs, seg_data: SegData, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(runs.a_dir, out)
    with pytest.raises(CheckpointError, match="stage 'train', cannot resume stage 'stage2'"):
        fit_segmenter(seg_data, out, SEG_FIT, resume=True, stage="stage2")


def test_resuming_another_model_is_refused(runs: Runs, seg_data: SegData, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(runs.a_dir, out)
    with pytest.raises(CheckpointError, match="cannot resume"):
        fit(model=tiny_net(), task=SegmentationTask(), train_data=seg_data.train, val_data=seg_data.val,
            config=SEG_FIT, device=CPU, checkpoint_dir=out, stage="train", resume=True)


def test_without_resume_a_run_starts_afresh(runs: Runs, seg_data: SegData, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(runs.a_dir, out)
    _, result = fit_segmenter(seg_data, out, dataclasses.replace(SEG_FIT, max_epochs=1))
    assert result.epochs_run == 1
    assert [r["epoch"] for r in csv_rows(out / "history.csv")] == ["1"]
    assert load_pt(out / LAST)["state"]["epoch"] == 1  # type: ignore[index]  # a dict we saved


# ------------------------------------------------------------------------------ history
def test_history_rows_per_epoch(runs: Runs) -> None:
    with (runs.a_dir / "history.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        columns = reader.fieldnames or []
    for col in ("stage", "epoch", "lr", "train_loss", "val_loss", "val_dice_NCR", "val_dice_ED", "val_dice_ET", "val_dice_mean"):
        assert col in columns, col
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for row, record in zip(rows, runs.a_result.history, strict=True):
        assert float(row["val_loss"]) == record.val_loss
        assert float(row["train_loss"]) == record.train_loss
        assert float(row["val_dice_ET"]) == record.metrics["dice_ET"]
        assert 0.0 <= float(row["val_dice_mean"]) <= 1.0


def test_history_file_keeps_other_stages_and_rewrites_atomically(tmp_path: Path) -> None:
    history = HistoryFile(tmp_path / "history.csv")
    for stage in ("stage1", "stage2"):
        for epoch in (1, 2, 3):
            history.append(EpochRecord(stage, epoch, 1e-3, 0.5, 0.4, 1.0, 10.0, {"dice_ET": 0.5}))
    reread = HistoryFile(tmp_path / "history.csv")
    reread.truncate("stage2", 1)
    assert [(r["stage"], r["epoch"]) for r in csv_rows(tmp_path / "history.csv", drop=())] == [
        ("stage1", "1"), ("stage1", "2"), ("stage1", "3"), ("stage2", "1"),
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["history.csv"]


# ------------------------------------------------------------------------------ determinism
def test_same_seed_same_weights_other_seed_other_weights(seg_data: SegData, tmp_path: Path) -> None:
    quick = dataclasses.replace(SEG_FIT, max_epochs=1, max_steps_per_epoch=2)
    first, _ = fit_segmenter(seg_data, tmp_path / "a", quick)
    again, _ = fit_segmenter(seg_data, tmp_path / "b", quick)
    other, _ = fit_segmenter(seg_data, tmp_path / "c", dataclasses.replace(quick, seed=1))
    assert_same_state(first.state_dict(), again.state_dict())
    differ = [k for k, v in first.state_dict().items() if not torch.equal(v, other.state_dict()[k])]
    assert differ, "another seed (another sample order) must give other weights"


# ------------------------------------------------------------------------------ early stopping
def test_early_stopping_restores_the_best_weights(tmp_path: Path) -> None:
    """Training wants class 1 on every pixel while validation wants class 0.

    The inputs are constant and the network is a 1x1 convolution to two classes, so
    every pixel has the same logit difference ``d = l1 - l0``; the training gradient
    of ``d`` is negative at every step, Adam raises ``d`` at every step and the
    validation loss ``softplus(d)`` rises with every epoch. Epoch 1 is the best and,
    with patience 2, the loop stops after epoch 3 of 20.
    """
    images = torch.ones(16, 4, 8, 8)
    train = TensorDataset(images[:8], torch.ones(8, 8, 8, dtype=torch.int64))
    val = TensorDataset(images[8:], torch.zeros(8, 8, 8, dtype=torch.int64))
    torch.manual_seed(0)
    model = nn.Conv2d(4, 2, kernel_size=1)
    config = FitConfig(lr=1e-2, max_epochs=20, batch_size=4, patience=2, amp=False)
    result = fit(model=model, task=SegmentationTask(loss=nn.CrossEntropyLoss()), train_data=train, val_data=val,
                 config=config, device=CPU, checkpoint_dir=tmp_path)
    assert result.stopped_early
    assert result.epochs_run == 3 < config.max_epochs
    assert result.best_epoch == 1
    val_losses = [r.val_loss for r in result.history]
    assert val_losses == sorted(val_losses) and len(set(val_losses)) == 3
    assert result.best_val_loss == val_losses[0]
    best, last = load_pt(tmp_path / BEST), load_pt(tmp_path / LAST)
    assert_same_state(model.state_dict(), state_of(best))
    assert not torch.equal(model.state_dict()["weight"], state_of(last)["weight"])
    assert last["state"]["stopped_early"] is True  # type: ignore[index]  # a dict we saved

    # Resuming an early-stopped run trains nothing more.
    again = nn.Conv2d(4, 2, kernel_size=1)
    resumed = fit(model=again, task=SegmentationTask(loss=nn.CrossEntropyLoss()), train_data=train, val_data=val,
                  config=config, device=CPU, checkpoint_dir=tmp_path, resume=True)
    assert resumed.history == () and resumed.stopped_early and resumed.epochs_run == 3
    assert_same_state(again.state_dict(), model.state_dict())


# ------------------------------------------------------------------------------ accumulation
@pytest.mark.parametrize("n_samples", [8, 14])
def test_gradient_accumulation_matches_one_big_batch(seg_data: SegData, n_samples: int, tmp_path: Path) -> None:
    """batch 8 as 2 micro-batches of 4 == batch 8 at once (14 samples: a short last step)."""
    items = [seg_data.train[i] for i in range(16, 16 + n_samples)]  # volume 2's middle: tumour slices
    data = TensorDataset(torch.stack([s["image"] for s in items]), torch.stack([s["target"] for s in items]))
    weights = []
    for accumulate in (1, 2):
        model = tiny_net()
        config = FitConfig(lr=1e-2, max_epochs=1, batch_size=8, accumulate_steps=accumulate, amp=False)
        fit(model=model, task=SegmentationTask(loss=DiceLoss()), train_data=data, val_data=data, config=config,
            device=CPU, checkpoint_dir=tmp_path / f"acc{accumulate}")
        weights.append(model.state_dict())
    start = tiny_net().state_dict()
    assert not torch.equal(weights[0]["weight"], start["weight"])
    for key in start:
        torch.testing.assert_close(weights[1][key], weights[0][key], rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------ config
@pytest.mark.parametrize(
    "kwargs", [{"lr": 0.0}, {"max_epochs": 0}, {"patience": 0}, {"accumulate_steps": 9, "batch_size": 8}, {"max_steps_per_epoch": 0}]
)
def test_fit_config_rejects_invalid_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        FitConfig(**kwargs)  # type: ignore[arg-type]  # deliberately wrong values


def test_empty_data_is_a_config_error(seg_data: SegData, tmp_path: Path) -> None:
    empty = TensorDataset(torch.zeros(0, 4, 8, 8), torch.zeros(0, 8, 8, dtype=torch.int64))
    with pytest.raises(ConfigError, match="non-empty"):
        fit(model=tiny_net(), task=SegmentationTask(), train_data=empty, val_data=seg_data.val,
            config=SEG_FIT, device=CPU, checkpoint_dir=tmp_path)


# ------------------------------------------------------------------------------ learning
@pytest.mark.slow
def test_segmenter_learns(small_cohort: Path, tmp_path: Path) -> None:
    """A short CPU run finds the tumours of held-out slices.

    The tumour slices of the small cohort, every fourth one held out (16 train, 5
    validate), Adam lr 3e-3, batches of 4, 14 epochs (56 steps). Measured on this
    CPU: validation Dice loss 0.98 -> 0.57, pooled foreground Dice 0.46 (ED 0.77,
    ET 0.61, NCR 0; the necrotic cores are a few pixels at 64 x 64).

    Only tumour slices: the paper's per-slice Dice loss (smooth 1) scores an
    all-background prediction 1.0 on every slice without tumour, and a short run on
    all slices settles there first (Dice 0 for many epochs).
    """
    source = open_source(small_cohort)
    scan = scan_source(source)
    tumour = [i for i in range(len(source)) if scan.slices[i].has_tumour]
    val = tumour[1::4]
    train = [i for i in tumour if i not in val]
    torch.manual_seed(0)
    model = Segmenter()
    config = FitConfig(lr=3e-3, max_epochs=14, batch_size=4, patience=14, amp=False)
    result = fit(model=model, task=SegmentationTask(), train_data=SegmentationDataset(source, train, scan.stats),
                 val_data=SegmentationDataset(source, val, scan.stats), config=config, device=CPU,
                 checkpoint_dir=tmp_path)
    first = result.history[0]
    assert first.val_loss > 0.9 and first.metrics["dice_mean"] < 0.05
    assert result.best_val_loss < 0.75 * first.val_loss
    assert result.best_metrics["dice_mean"] >= 0.3, result.best_metrics
    assert result.best_metrics["dice_ED"] >= 0.5, result.best_metrics
