"""Both training pipelines end to end on the synthetic cohort, with real models on the CPU.

Runs are cut short with ``max_steps_per_epoch``; what is checked is the wiring: the
files a run writes, the freezing of stage 2, resume, the split's reuse and the
survival model's bins. (The segmenter's learning proof is in ``test_training_loop.py``.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from brats_sdk.checkpoint import CheckpointKind, load_checkpoint
from brats_sdk.constants import SURVIVAL_CSV
from brats_sdk.data.scan import scan_source
from brats_sdk.data.sources import open_source
from brats_sdk.data.splits import Split, SplitMode, read_split_csv, write_split_csv
from brats_sdk.errors import ConfigError, DataError
from brats_sdk.models.segmenter import HeadKind, Segmenter
from brats_sdk.models.survival import SurvivalClassifier
from brats_sdk.run_files import SEGMENTER_FILE, SPLIT_FILE, SURVIVAL_EVAL_FILE, SURVIVAL_FILE
from brats_sdk.training.loop import BEST, LAST
from brats_sdk.training.run import load_or_plan_split, part_indices
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

HEAD = "unet.segmentation_head."


def seg_config(data: Path, out: Path, **overrides: object) -> SegmenterTrainConfig:
    """A quick CPU run: batches of 8, two optimizer steps per epoch."""
    options: dict[str, object] = {
        "batch_size": 8, "stage_epochs": (1, 1, 0), "lrs": (1e-3, 1e-3, 1e-5), "max_steps_per_epoch": 2,
        "device": "cpu", "amp": False,
    }
    options.update(overrides)
    return SegmenterTrainConfig(data_dir=data, out_dir=out, **options)  # type: ignore[arg-type]  # test options


def model_state(path: Path) -> dict[str, torch.Tensor]:
    ckpt = load_checkpoint(path, kind=None)
    state = ckpt["model"] if "model" in ckpt else ckpt["state_dict"]
    assert isinstance(state, dict)
    return state


# ------------------------------------------------------------------------------ segmenter
@dataclass(frozen=True)
class SegRun:
    out: Path
    result: SegmenterTrainResult


@pytest.fixture(scope="module")
def seg_run(tiny_cohort: Path, module_tmp: Path) -> SegRun:
    out = module_tmp / "seg_run"
    return SegRun(out, train_segmenter(seg_config(tiny_cohort, out)))


def test_segmenter_run_writes_its_files(seg_run: SegRun) -> None:
    out, result = seg_run.out, seg_run.result
    for name in ("split.csv", "scan.json", "history.csv", SEGMENTER_FILE, "stage1/last.pt", "stage1/best.pt", "stage2/last.pt", "stage2/best.pt"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.tmp"))
    assert [s.epochs_run for s in result.stages] == [1, 1]
    assert result.n_slices["train"] > 0 and result.n_slices["val"] > 0 and result.n_slices["test"] > 0
    model = Segmenter.from_checkpoint(result.model_path)
    assert model.metadata["best_stage"] in (1, 2)
    assert model.metadata["leaks_patients"] is False
    assert set(result.test_metrics) >= {"dice_NCR", "dice_ED", "dice_ET", "dice_mean"}


def test_stage_two_trains_only_the_head(seg_run: SegRun) -> None:
    stage1 = model_state(seg_run.out / "stage1" / BEST)
    stage2 = model_state(seg_run.out / "stage2" / BEST)
    backbone = [k for k in stage1 if not k.startswith(HEAD)]
    assert any("running_mean" in k for k in backbone)
    # Every encoder and decoder tensor, BatchNorm running statistics included, is unchanged.
    changed = [k for k in backbone if not torch.equal(stage1[k], stage2[k])]
    assert not changed, changed[:5]
    # The head is the paper's (three convolutions) and only its parameters were optimised.
    head2 = sorted(k for k in stage2 if k.startswith(HEAD))
    assert head2 == [f"{HEAD}{i}.{p}" for i in (0, 2, 4) for p in ("bias", "weight")]
    optimizer = load_checkpoint(seg_run.out / "stage2" / LAST, kind=CheckpointKind.TRAINING_STATE)["optimizer"]
    assert isinstance(optimizer, dict)
    assert len(optimizer["param_groups"][0]["params"]) == len(head2)


def test_frozen_backbone_keeps_batchnorm_in_eval_mode() -> None:
    model = Segmenter(head=HeadKind.PAPER)
    model.freeze_backbone()
    model.train()
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and not any(m.training for m in norms)
    assert model.head.training
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    model(torch.randn(2, 4, 32, 32))
    assert all(torch.equal(before[k], model.state_dict()[k]) for k in before)
    model.unfreeze()
    model.train()
    assert all(m.training for m in norms)


def test_skipped_later_stages_keep_the_trained_head(tiny_cohort: Path, tmp_path: Path) -> None:
    # A skipped stage 2 must not swap in an untrained paper head before the save.
    result = train_segmenter(seg_config(tiny_cohort, tmp_path, stage_epochs=(1, 0, 0)))
    model = Segmenter.from_checkpoint(result.model_path)
    assert model.config.head is HeadKind.DEFAULT and model.metadata["best_stage"] == 1
    best = model_state(tmp_path / "stage1" / BEST)
    saved = model.state_dict()
    assert saved.keys() == best.keys() and all(torch.equal(saved[k], best[k]) for k in best)


def test_crop_training_trains_on_windows_and_validates_on_the_brain_box(tiny_cohort: Path, tmp_path: Path) -> None:
    result = train_segmenter(
        seg_config(tiny_cohort, tmp_path, stage_epochs=(1, 0, 0), crop_size=32, tumour_fraction=0.5, drop_no_brain=True)
    )
    model = Segmenter.from_checkpoint(result.model_path)
    config = model.metadata["train_config"]
    assert isinstance(config, dict) and config["crop_size"] == 32 and config["tumour_fraction"] == 0.5
    assert set(result.test_metrics) >= {"dice_NCR", "dice_ED", "dice_ET"}
    with pytest.raises(ConfigError, match="exclude each other"):
        seg_config(tiny_cohort, tmp_path, crop_size=64, input_size=256)
    with pytest.raises(ConfigError, match="tumour fraction"):
        seg_config(tiny_cohort, tmp_path, tumour_fraction=0.0)


@pytest.mark.slow
@pytest.mark.parametrize("extra", [{}, {"crop_size": 32, "tumour_fraction": 0.5}], ids=["whole-slices", "crops"])
def test_segmenter_pipeline_resume_matches_uninterrupted_run(tiny_cohort: Path, tmp_path: Path, extra: dict[str, object]) -> None:
    whole = train_segmenter(seg_config(tiny_cohort, tmp_path / "a", stage_epochs=(2, 0, 0), **extra))
    train_segmenter(seg_config(tiny_cohort, tmp_path / "b", stage_epochs=(1, 0, 0), **extra))
    resumed = train_segmenter(seg_config(tiny_cohort, tmp_path / "b", stage_epochs=(2, 0, 0), resume=True, **extra))
    assert resumed.stages[0].epochs_run == 2 and [r.epoch for r in resumed.stages[0].history] == [2]
    a = Segmenter.from_checkpoint(whole.model_path).state_dict()
    b = Segmenter.from_checkpoint(resumed.model_path).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    for name in (LAST, BEST):
        sa, sb = model_state(tmp_path / "a" / "stage1" / name), model_state(tmp_path / "b" / "stage1" / name)
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
    assert resumed.test_metrics == whole.test_metrics


# ------------------------------------------------------------------------------ survival
@pytest.fixture(scope="module")
def surv_run(tiny_cohort: Path, module_tmp: Path) -> tuple[Path, SurvivalTrainResult]:
    out = module_tmp / "surv_run"
    config = SurvivalTrainConfig(
        data_dir=tiny_cohort, survival_csv=tiny_cohort / SURVIVAL_CSV, out_dir=out, epochs=1, batch_size=4,
        max_steps_per_epoch=1, device="cpu", amp=False,
    )
    return out, train_survival(config)


@pytest.mark.slow
def test_survival_run_writes_model_and_evaluation(surv_run: tuple[Path, SurvivalTrainResult]) -> None:
    out, result = surv_run
    assert result.model_path == out / SURVIVAL_FILE and result.model_path.is_file()
    for name in ("split.csv", "scan.json", "history.csv", "survival/last.pt", "survival/best.pt"):
        assert (out / name).is_file(), name
    report = json.loads((out / SURVIVAL_EVAL_FILE).read_text())
    assert report["split_mode"] == "patient" and report["leaks_patients"] is False
    for level in ("per_slice", "per_slice_nonempty", "per_patient"):
        assert isinstance(report[level], dict), level
        assert {"accuracy", "n", "per_bin_accuracy", "confusion", "auc"} <= set(report[level])
        assert 0.0 <= report[level]["accuracy"] <= 1.0
    assert report["per_patient"]["n"] == result.patients["test"]
    assert report["per_slice"]["n"] >= report["per_slice_nonempty"]["n"] > 0
    assert len(report["bin_ranges"]) == result.bins.n_bins == 3


@pytest.mark.slow
def test_survival_checkpoint_round_trips_bins_and_age_scaler(surv_run: tuple[Path, SurvivalTrainResult]) -> None:
    _, result = surv_run
    model = SurvivalClassifier.from_checkpoint(result.model_path)
    assert model.bins == result.bins
    assert model.age_scaler == result.age_scaler
    assert model.metadata["leaks_patients"] is False
    assert model.metadata["patients"] == result.patients


@pytest.mark.slow
def test_survival_slice_split_says_it_leaks(tiny_cohort: Path, tmp_path: Path) -> None:
    config = SurvivalTrainConfig(
        data_dir=tiny_cohort, survival_csv=tiny_cohort / SURVIVAL_CSV, out_dir=tmp_path, epochs=1, batch_size=4,
        max_steps_per_epoch=1, device="cpu", amp=False, split_mode=SplitMode.SLICE,
    )
    result = train_survival(config)
    assert result.split.leaks_patients
    assert SurvivalClassifier.from_checkpoint(result.model_path).metadata["leaks_patients"] is True
    report = json.loads((tmp_path / SURVIVAL_EVAL_FILE).read_text())
    assert report["split_mode"] == "slice" and report["leaks_patients"] is True


# ------------------------------------------------------------------------------ run folder
@pytest.fixture(scope="module")
def tiny_keys(tiny_cohort: Path) -> list[tuple[int, int]]:
    source = open_source(tiny_cohort)
    return [source.slice_key(i) for i in range(len(source))]


def plan(run_dir: Path, keys: list[tuple[int, int]], *, mode: SplitMode = SplitMode.PATIENT, seed: int = 0, csv: Path | None = None) -> Split:
    volumes = sorted({v for v, _ in keys})
    return load_or_plan_split(run_dir, volumes=volumes, keys=keys, mode=mode, seed=seed, survival_csv=csv)


def test_saved_split_is_reused(tiny_cohort: Path, tiny_keys: list[tuple[int, int]], tmp_path: Path) -> None:
    first = plan(tmp_path, tiny_keys, csv=tiny_cohort / SURVIVAL_CSV)
    text = (tmp_path / SPLIT_FILE).read_text()
    again = plan(tmp_path, tiny_keys, seed=7)  # another seed: the saved split still wins
    assert again == first == read_split_csv(tmp_path / SPLIT_FILE)
    assert (tmp_path / SPLIT_FILE).read_text() == text
    assert plan(tmp_path / "other", tiny_keys, seed=7) != first


def test_saved_split_with_unknown_volumes_is_a_data_error(tiny_keys: list[tuple[int, int]], tmp_path: Path) -> None:
    write_split_csv(Split(SplitMode.PATIENT, 0, train=(1, 2, 3), val=(4,), test=(99,)), tmp_path / SPLIT_FILE)
    with pytest.raises(DataError, match=r"\[99\]"):
        plan(tmp_path, tiny_keys)


def test_saved_split_of_another_mode_is_a_data_error(tiny_keys: list[tuple[int, int]], tmp_path: Path) -> None:
    plan(tmp_path, tiny_keys, mode=SplitMode.SLICE)
    with pytest.raises(DataError, match="slice split"):
        plan(tmp_path, tiny_keys, mode=SplitMode.PATIENT)


def test_patient_split_parts_are_disjoint_by_volume(tiny_cohort: Path, tiny_keys: list[tuple[int, int]], tmp_path: Path) -> None:
    source = open_source(tiny_cohort)
    split = plan(tmp_path, tiny_keys, csv=tiny_cohort / SURVIVAL_CSV)
    parts = part_indices(source, split)
    volumes = [{tiny_keys[i][0] for i in p} for p in (parts.train, parts.val, parts.test)]
    assert all(volumes)
    assert not (volumes[0] & volumes[1]) and not (volumes[0] & volumes[2]) and not (volumes[1] & volumes[2])
    assert sorted(parts.train + parts.val + parts.test) == list(range(len(source)))
    assert volumes == [set(split.train), set(split.val), set(split.test)]
    # Filters: a slice predicate and a set of volumes.
    facts = scan_source(source).slices
    brain = part_indices(source, split, keep=lambda i: facts[i].has_brain)
    assert set(brain.train) == {i for i in parts.train if facts[i].has_brain} != set(parts.train)
    some = part_indices(source, split, volumes={split.train[0]})
    assert some.val == some.test == () and {tiny_keys[i][0] for i in some.train} == {split.train[0]}


def test_slice_split_maps_every_key_once(tiny_cohort: Path, tiny_keys: list[tuple[int, int]], tmp_path: Path) -> None:
    source = open_source(tiny_cohort)
    split = plan(tmp_path, tiny_keys, mode=SplitMode.SLICE)
    assert split.leaks_patients
    parts = part_indices(source, split)
    assert sorted(parts.train + parts.val + parts.test) == list(range(len(source)))
    assert {tiny_keys[i] for i in parts.test} == set(split.test_slices)


def test_a_new_split_takes_the_given_fractions(tiny_keys: list[tuple[int, int]], tmp_path: Path) -> None:
    """The audit plans its splits here too: fractions reach both modes (10 volumes at
    0.6/0.2/0.2 -> 6/2/2 patients), and the default stays 8/1/1."""
    volumes = sorted({v for v, _ in tiny_keys})
    assert len(volumes) == 10
    wide = load_or_plan_split(tmp_path / "p", volumes=volumes, keys=tiny_keys, mode=SplitMode.PATIENT, seed=0,
                              survival_csv=None, fractions=(0.6, 0.2, 0.2))
    assert (len(wide.train), len(wide.val), len(wide.test)) == (6, 2, 2)
    default = plan(tmp_path / "d", tiny_keys)
    assert (len(default.train), len(default.val), len(default.test)) == (8, 1, 1)
    slices = load_or_plan_split(tmp_path / "s", volumes=volumes, keys=tiny_keys, mode=SplitMode.SLICE, seed=0,
                                survival_csv=None, fractions=(0.5, 0.25, 0.25))
    n = len(tiny_keys)
    assert len(slices.train_slices) == round(n * 0.5) and len(slices.test_slices) + len(slices.val_slices) == n - round(n * 0.5)
