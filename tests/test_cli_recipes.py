"""Training presets, explicit splits and held-out prediction through the CLI, and the
real-data example script run tiny on three real cases."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

from brats_sdk.data.splits import Split, SplitMode, read_split_csv, write_split_csv
from brats_sdk.errors import ConfigError
from brats_sdk.training.loop import KeepWeights
from brats_sdk.training.presets import SegmenterPreset, preset_config, preset_values
from cli.main import cli

ROOT = Path(__file__).resolve().parents[1]


def _metadata(run: Path) -> dict[str, object]:
    ckpt = torch.load(run / "segmenter.pt", map_location="cpu", weights_only=True)
    meta = ckpt["metadata"]
    assert isinstance(meta, dict)
    return meta


def test_show_preset_prints_every_setting_without_data() -> None:
    res = CliRunner().invoke(cli, ["train", "segmenter", "--show-preset", "cpu"])
    assert res.exit_code == 0, res.output
    for line in ("crop_size", "128", "schedule", "cosine", "ce_weight", "time_limit_minutes", "oedema_contrast_min"):
        assert line in res.output
    paper = CliRunner().invoke(cli, ["train", "segmenter", "--show-preset", "paper"])
    assert paper.exit_code == 0 and "(50, 50, 50)" in paper.output and "step" in paper.output


def test_keep_takes_its_values_from_the_library_enum(tmp_path: Path) -> None:
    """`--keep` offers exactly KeepWeights' values; a wrong one is a usage error naming them."""
    assert KeepWeights.parse("last") is KeepWeights.LAST
    with pytest.raises(ConfigError, match="supported: best, last"):
        KeepWeights.parse("lats")
    help_text = CliRunner().invoke(cli, ["train", "segmenter", "--help"]).output
    assert "[best|last]" in help_text
    res = CliRunner().invoke(cli, ["train", "segmenter", str(tmp_path), "--out", str(tmp_path / "r"), "--keep", "lats"])
    assert res.exit_code == 2 and "'lats' is not one of 'best', 'last'" in res.output
    root = click.Context(cli)
    train = cli.get_command(root, "train")
    assert isinstance(train, click.Group)
    segmenter = train.get_command(root, "segmenter")
    assert segmenter is not None
    for value, keep_best in (("best", True), ("last", False)):
        args = [str(tmp_path), "--out", str(tmp_path / "r"), "--keep", value]
        assert segmenter.make_context("segmenter", args).params["keep_best"] is keep_best


def test_presets_in_the_library() -> None:
    paper = preset_values("paper")
    assert paper["stage_epochs"] == (50, 50, 50) and paper["batch_size"] == 120 and paper["crop_size"] is None
    cpu = preset_config(SegmenterPreset.CPU, data_dir=Path("d"), out_dir=Path("o"), overrides={"batch_size": 4})
    assert cpu.batch_size == 4 and cpu.crop_size == 128 and cpu.time_limit_minutes is not None
    assert cpu.augment and cpu.oedema_contrast_min == 0.2 and paper["oedema_contrast_min"] == 1.0
    with pytest.raises(Exception, match="unknown segmenter settings"):
        preset_config("cpu", data_dir=Path("d"), out_dir=Path("o"), overrides={"colour": 1})
    with pytest.raises(Exception, match="supported: paper, cpu"):
        preset_values("gpu")


@pytest.mark.slow
def test_preset_with_explicit_options_split_file_and_held_out_prediction(tiny_cohort: Path, tmp_path: Path) -> None:
    """`--preset cpu` gives the recipe, options given on the command line win, `--split-csv`
    fixes the patients, and `brats predict --part test` predicts exactly the held-out ones."""
    split_file = tmp_path / "my_split.csv"
    write_split_csv(Split(SplitMode.PATIENT, 0, train=(1, 2, 3, 4, 5, 6), val=(7, 8), test=(9, 10)), split_file)
    run = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(cli, [
        "train", "segmenter", str(tiny_cohort), "--out", str(run), "--preset", "cpu", "--split-csv", str(split_file),
        "--stage-epochs", "1,0,0", "--max-steps", "2", "--batch-size", "4", "--crop-size", "32", "--device", "cpu", "--quiet",
    ])
    assert res.exit_code == 0, res.output
    used = _metadata(run)["train_config"]
    assert isinstance(used, dict)
    # From the preset ...
    assert used["schedule"] == "cosine" and used["ce_weight"] == 1.0 and used["augment"] is True
    assert used["tumour_fraction"] == 0.5 and used["max_val_slices"] == 150 and used["keep_best"] is False
    # ... and from the command line.
    assert used["batch_size"] == 4 and used["crop_size"] == 32 and used["stage_epochs"] == [1, 0, 0]
    assert read_split_csv(run / "split.csv") == read_split_csv(split_file)

    other = tmp_path / "other_split.csv"
    write_split_csv(Split(SplitMode.PATIENT, 0, train=(1, 2, 3, 4, 5, 6, 7), val=(8,), test=(9, 10)), other)
    clash = runner.invoke(cli, ["train", "segmenter", str(tiny_cohort), "--out", str(run), "--split-csv", str(other),
                                "--stage-epochs", "1,0,0", "--max-steps", "1", "--device", "cpu", "--quiet"])
    assert clash.exit_code == 1 and "already holds another split" in clash.output

    preds = tmp_path / "preds"
    res = runner.invoke(cli, ["predict", str(tiny_cohort), "--model-dir", str(run), "--part", "test", "--out", str(preds),
                              "--device", "cpu", "--quiet"])
    assert res.exit_code == 0, res.output
    with (preds / "predictions.csv").open(newline="") as f:
        assert sorted(int(r["volume"]) for r in csv.DictReader(f)) == [9, 10]
    no_run = runner.invoke(cli, ["predict", str(tiny_cohort), "--segmenter", str(run / "segmenter.pt"), "--part", "test",
                                 "--out", str(tmp_path / "p2"), "--device", "cpu"])
    assert no_run.exit_code == 1 and "--model-dir" in no_run.output


@pytest.mark.slow
def test_real_data_example_runs_tiny_on_three_real_cases(real_labelled: Path, tmp_path: Path) -> None:
    """examples/real_data.sh end to end, a few steps on three real cases (one per part)."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "brats").exists():
        pytest.skip("the brats console script is not installed beside this Python")
    data = tmp_path / "cases"
    data.mkdir()
    for name in ("Brats18_CBICA_AQN_1", "Brats18_TCIA03_265_1", "Brats18_TCIA10_628_1"):
        shutil.copytree(real_labelled / name, data / name)
    split_file = tmp_path / "split.csv"
    write_split_csv(Split(SplitMode.PATIENT, 0, train=(1,), val=(2,), test=(3,)), split_file)
    env = {
        **os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "SPLIT_CSV": str(split_file),
        "TRAIN_ARGS": "--stage-epochs 1,0,0 --max-steps 2 --batch-size 2 --max-val-slices 8 --device cpu",
    }
    out = tmp_path / "out"
    res = subprocess.run(["bash", str(ROOT / "examples" / "real_data.sh"), str(data), str(out)],
                         capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (out / "run" / "segmenter.pt").is_file() and (out / "report" / "metrics.json").is_file()
    assert (out / "predictions" / "nifti" / "Brats18_TCIA10_628_1_pred.nii.gz").is_file()
    with (out / "report" / "per_volume.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["patient_id"] for r in rows] == ["Brats18_TCIA10_628_1"]
    assert 0.0 <= float(rows[0]["WT_dice"]) <= 1.0 and float(rows[0]["WT_hd95"]) >= 0.0
