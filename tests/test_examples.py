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


@pytest.mark.slow
def test_segmenter_in_3_minutes_script_runs_tiny(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "brats").exists():
        pytest.skip("the brats console script is not installed beside this Python")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "SLICES": "16", "SIZE": "64", "EPOCHS": "1"}
    out = tmp_path / "seg3"
    res = subprocess.run(
        ["bash", str(ROOT / "examples" / "segmenter_in_3_minutes.sh"), str(out)],
        capture_output=True, text=True, env=env, timeout=600, cwd=ROOT,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "held-out Dice WT / TC / ET:" in res.stdout and "training took" in res.stdout
    assert (out / "run" / "segmenter.pt").is_file() and (out / "report" / "metrics.json").is_file()
