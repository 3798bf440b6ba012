"""`brats train` owns its run folder while it runs: the lock `brats predict` takes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from brats_sdk import DataError, SurvivalTrainConfig, train_survival
from brats_sdk.out_dir import LOCK_FILE, RunLock
from brats_sdk.run_files import SCAN_FILE, SPLIT_FILE
from cli.exit_codes import ExitCode
from cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--stage-epochs", "1,0,0", "--max-steps", "1", "--batch-size", "4", "--crop-size", "32", "--device", "cpu", "--quiet"]
HOLDER = "brats train (the first run)"


def _held(out: Path) -> RunLock:
    out.mkdir(parents=True, exist_ok=True)
    # flock conflicts between two opens of the file in one process as between processes.
    return RunLock(out, command=HOLDER)


def _one_line_naming_the_holder(output: str) -> None:
    """One error message (the console may wrap it), no traceback."""
    assert output.count("Error:") == 1 and "Traceback" not in output, output
    message = " ".join(output[output.index("Error:"):].split())
    assert f"in use by another brats run (pid {os.getpid()} on" in message and HOLDER in message, output


def test_a_second_train_exits_1_naming_the_holder_then_trains_after_release(tiny_cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "segmenter", str(tiny_cohort), "--out", str(out), *FAST]
    with _held(out):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == ExitCode.ERROR, res.output
        _one_line_naming_the_holder(res.output)
        assert not (out / SCAN_FILE).exists() and not (out / SPLIT_FILE).exists()  # refused before any work
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert (out / "segmenter.pt").is_file() and not (out / LOCK_FILE).exists()


def test_the_lock_is_released_when_training_fails(tiny_cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    # Two volumes cannot be split into train, val and test: the run fails after taking the folder.
    res = CliRunner().invoke(cli, ["train", "segmenter", str(tiny_cohort), "--out", str(out), "--volumes", "1,2", *FAST])
    assert res.exit_code == ExitCode.ERROR and "need at least 3 volumes" in res.output, res.output
    assert (out / SCAN_FILE).exists() and not (out / LOCK_FILE).exists()
    with RunLock(out):  # free again
        pass


def test_the_survival_pipeline_takes_the_lock_too(tiny_cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with _held(out), pytest.raises(DataError, match="in use by another brats run"):
        train_survival(SurvivalTrainConfig(data_dir=tiny_cohort, out_dir=out, device="cpu", epochs=1))
    assert not (out / SCAN_FILE).exists()


def test_a_second_train_process_exits_1(tiny_cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with _held(out):
        proc = subprocess.run(
            [sys.executable, "-m", "cli", "train", "segmenter", str(tiny_cohort), "--out", str(out), *FAST],
            capture_output=True, text=True, env=env, timeout=120, cwd=ROOT,
        )
    assert proc.returncode == ExitCode.ERROR, proc.stdout + proc.stderr
    _one_line_naming_the_holder(proc.stdout + proc.stderr)
