"""`examples/audit_synthetic.sh` as a user runs it, shrunk to a tiny cohort and budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_audit_example_script_runs_tiny(tmp_path: Path) -> None:
    env = {
        **os.environ, "PYTHONPATH": str(ROOT), "BRATS": f"{sys.executable} -m cli", "VOLUMES": "12", "SLICES": "16", "EPOCHS": "1",
        "DEVICE": "cpu", "AUDIT_ARGS": "--input-size 32 --max-steps-per-epoch 2 --quiet",
    }
    proc = subprocess.run(["bash", "examples/audit_synthetic.sh", str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=600, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert [r["name"] for r in doc["rows"]] == ["slice split", "patient split", "majority", "age only", "age + volumes"]
    assert isinstance(doc["inflation"], float)
    assert doc["settings"]["input_size"] == 32
