"""DistributedDataParallel on the CPU: two gloo processes under torchrun."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from brats_sdk.data.synth import SynthConfig, make_cohort
from brats_sdk.models.segmenter import Segmenter

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp_cohort")
    make_cohort(root, SynthConfig(volumes=5, slices=8, size=32, seed=2))
    return root


@pytest.mark.slow
def test_two_gloo_ranks_end_with_rank0_checkpoint(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = _torchrun(str(ROOT / "tests" / "ddp_worker.py"), str(cohort), str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    saved = Segmenter.from_checkpoint(out / "segmenter.pt").state_dict()
    for rank in (0, 1):
        held = torch.load(out / f"rank{rank}_state.pt", weights_only=True)
        assert held.keys() == saved.keys()
        for k in saved:
            assert torch.equal(held[k], saved[k]), f"rank {rank} differs from rank 0's checkpoint at {k}"
    # history written once (rank 0), one row per epoch of each stage
    rows = (out / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3


@pytest.mark.slow
def test_torchrun_cli_train_ends_cleanly(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli_run"
    res = _torchrun("-m", "cli", "train", "segmenter", str(cohort), "--out", str(out), "--stage-epochs", "1,0,0",
                    "--batch-size", "4", "--max-steps", "2", "--device", "cpu", "--quiet")
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "segmenter.pt").exists() and (out / "stage1" / "last.pt").exists()
    assert res.stdout.count("Segmenter ->") == 1  # only rank 0 prints the result table


@pytest.mark.slow
def test_torchrun_weighted_crop_training_ends_cleanly(tmp_path: Path) -> None:
    # Weighted sampling must give every rank as many batches (batch 1: any odd sample count
    # would otherwise leave one rank a step ahead, waiting forever in all-reduce).
    data = make_cohort(tmp_path / "data", SynthConfig(volumes=5, slices=9, size=64, seed=3))
    out = tmp_path / "crop_run"
    res = _torchrun("-m", "cli", "train", "segmenter", str(data), "--out", str(out), "--stage-epochs", "1,0,0",
                    "--batch-size", "1", "--crop-size", "64", "--tumour-fraction", "0.5", "--device", "cpu", "--quiet")
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "segmenter.pt").exists()
