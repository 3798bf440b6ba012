"""The example scripts run as a user would run them, on a tiny synthetic cohort."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from brats_sdk.data.synth import SynthConfig, make_cohort

ROOT = Path(__file__).resolve().parents[1]


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)


@pytest.mark.slow
def test_train_from_python_then_quickstart(tmp_path: Path) -> None:
    data = tmp_path / "cohort"
    make_cohort(data, SynthConfig(volumes=10, slices=12, size=48, seed=5))
    run = tmp_path / "run"
    trained = _python("examples/train_from_python.py", str(data), str(run), "--epochs", "1", "--batch-size", "8",
                      "--max-steps", "2", "--device", "cpu")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (run / "segmenter.pt").exists() and (run / "survival.pt").exists()
    assert "segmenter:" in trained.stdout and "survival:" in trained.stdout
    quick = _python("examples/quickstart.py", str(run), str(data), "--volume", "3", "--age", "58", "--device", "cpu")
    assert quick.returncode == 0, quick.stderr[-3000:]
    assert "volume 3" in quick.stdout and "tumour volumes (mL)" in quick.stdout
