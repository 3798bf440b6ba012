"""Issue 18: ``--resume`` with options that differ from the run's is refused, listing them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from brats_sdk.config_checks import config_differences
from brats_sdk.constants import SURVIVAL_CSV
from brats_sdk.errors import ConfigError
from brats_sdk.training.resume_options import options_file, record_or_compare_options
from brats_sdk.training.segmenter_pipeline import SegmenterTrainConfig, train_segmenter
from brats_sdk.training.survival_pipeline import SurvivalTrainConfig, train_survival
from cli.main import cli


def _seg(data: Path, out: Path, **overrides: object) -> SegmenterTrainConfig:
    return SegmenterTrainConfig(data_dir=data, out_dir=out, device="cpu", amp=False, **overrides)  # type: ignore[arg-type]  # test options


def test_differences_list_name_run_value_and_given_value(tmp_path: Path) -> None:
    run = _seg(tmp_path, tmp_path)
    given = _seg(tmp_path, tmp_path, lrs=(1e-3, 1e-3, 1e-5), seed=3, input_size=256, ce_weight=0.5, epochs=4, resume=True)
    stored = json.loads(json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in _plain(run).items()}))
    diffs = config_differences(stored, given, may_differ={"epochs", "resume"})
    # In the config's field order (the shared run fields first); only the changed ones.
    assert sorted(diffs) == sorted([
        "lrs: (0.0001, 0.001, 1e-05) → (0.001, 0.001, 1e-05)",
        "seed: 0 → 3",
        "input_size: none → 256",
        "ce_weight: 0 → 0.5",
    ])


def _plain(config: object) -> dict[str, object]:
    from brats_sdk.options import config_to_dict

    return config_to_dict(config, lists=True)


def test_resume_refuses_changed_options_and_allows_how_far_to_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    record_or_compare_options(tmp_path, "segmenter", _seg(data, tmp_path), resume=False)
    assert json.loads(options_file(tmp_path, "segmenter").read_text())["data_dir"] == str(data.resolve())
    # How far and where to go on may change; a relative path to the same folder is the same.
    monkeypatch.chdir(tmp_path)
    record_or_compare_options(tmp_path, "segmenter", _seg(Path("data"), tmp_path, epochs=9, num_workers=2, resume=True), resume=True)
    with pytest.raises(ConfigError) as info:
        record_or_compare_options(tmp_path, "segmenter", _seg(data, tmp_path, lrs=(1.0, 1e-3, 1e-5), batch_dice=True, resume=True), resume=True)
    message = str(info.value)
    assert "--resume with options that differ from the run's" in message and "\n" not in message
    assert "lrs: (0.0001, 0.001, 1e-05) → (1, 0.001, 1e-05)" in message and "batch_dice: False → True" in message
    # A fresh run (no --resume) records its own options instead.
    record_or_compare_options(tmp_path, "segmenter", _seg(data, tmp_path, seed=5), resume=False)
    assert json.loads(options_file(tmp_path, "segmenter").read_text())["seed"] == 5


def test_pipelines_refuse_before_training(tiny_cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    record_or_compare_options(out, "segmenter", _seg(tiny_cohort, out), resume=False)
    with pytest.raises(ConfigError, match=r"patience: 3 → 7"):
        train_segmenter(_seg(tiny_cohort, out, patience=7, resume=True))
    surv = SurvivalTrainConfig(data_dir=tiny_cohort, survival_csv=tiny_cohort / SURVIVAL_CSV, out_dir=out, device="cpu", amp=False)
    record_or_compare_options(out, "survival", surv, resume=False)
    changed = SurvivalTrainConfig(
        data_dir=tiny_cohort, survival_csv=tiny_cohort / SURVIVAL_CSV, out_dir=out, device="cpu", amp=False,
        input_size=64, resume=True,
    )
    with pytest.raises(ConfigError, match=r"input_size: 224 → 64"):
        train_survival(changed)


def test_cli_resume_with_another_learning_rate_exits_1(tiny_cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    record_or_compare_options(out, "segmenter", _seg(tiny_cohort, out), resume=False)
    result = CliRunner().invoke(
        cli, ["train", "segmenter", str(tiny_cohort), "--out", str(out), "--resume", "--lr", "1e-2,1e-3,1e-5", "--device", "cpu"],
    )
    assert result.exit_code == 1, result.output
    assert "lrs: (0.0001, 0.001, 1e-05) → (0.01, 0.001, 1e-05)" in result.output
