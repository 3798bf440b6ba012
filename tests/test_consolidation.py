"""One path for each idea: the shared pieces agree with what they replaced."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch

import brats_sdk
from brats_sdk.metrics.channels import channel_dice
from brats_sdk.options import config_to_dict
from brats_sdk.training.presets import SegmenterPreset, preset_config
from brats_sdk.training.tasks import SegmentationMeter


def test_training_meter_scores_with_the_pooled_dice_metric() -> None:
    rng = np.random.default_rng(1)
    pred = rng.integers(0, 4, size=(2, 3, 16, 16))
    truth = rng.integers(0, 4, size=(2, 3, 16, 16))
    truth[1][truth[1] == 3] = 0  # one batch without ET in the truth
    meter = SegmentationMeter()
    for p, t in zip(pred, truth, strict=True):
        meter.update(torch.from_numpy(p), {"target": torch.from_numpy(t)})
    got = meter.summarise(meter.totals())
    want = channel_dice(pred, truth)
    assert got == pytest.approx({f"dice_{k}": v for k, v in want.items()} | {"dice_mean": sum(want.values()) / 3})
    empty = SegmentationMeter()
    empty.update(torch.zeros(1, 4, 4, dtype=torch.int64), {"target": torch.zeros(1, 4, 4, dtype=torch.int64)})
    assert empty.summarise(empty.totals()) == {"dice_NCR": 1.0, "dice_ED": 1.0, "dice_ET": 1.0, "dice_mean": 1.0}


def test_config_to_dict_is_plain_data() -> None:
    config = preset_config(SegmenterPreset.PAPER, data_dir=Path("d"), out_dir=Path("o"))
    plain = config_to_dict(config)
    assert plain["data_dir"] == "d" and plain["stage_epochs"] == (50, 50, 50) and plain["schedule"] == "step"
    assert config_to_dict(config, lists=True)["stage_epochs"] == [50, 50, 50]
    with pytest.raises(TypeError, match="dataclass instance"):
        config_to_dict(SegmenterPreset)


def test_every_public_name_exists_and_the_lazy_table_matches_all() -> None:
    lazy = brats_sdk._LAZY
    assert sorted(lazy) == sorted(n for n in brats_sdk.__all__ if n != "__version__")
    for name in brats_sdk.__all__:
        assert getattr(brats_sdk, name) is not None, name
    for name, module in lazy.items():
        defining = importlib.import_module(module)
        assert name in getattr(defining, "__all__", ()), f"{module} does not list {name} in __all__"
    for sub in ("brats_sdk.metrics", "brats_sdk.models", "brats_sdk.report"):
        mod = importlib.import_module(sub)
        for name in mod.__all__:
            assert hasattr(mod, name), f"{sub}.{name}"


def test_the_smp_internals_the_rewrites_read_are_there(monkeypatch: pytest.MonkeyPatch) -> None:
    from brats_sdk.predict.accel import smp_internals

    smp_internals.check_smp_internals()
    monkeypatch.setattr(smp_internals, "BLOCK_FORWARD_PARAMETERS", ("x", "skip"))
    with pytest.raises(RuntimeError, match=r"segmentation-models-pytorch .* changed the internals"):
        smp_internals.check_smp_internals()


def test_the_cli_imports_only_public_names() -> None:
    import ast

    cli_dir = Path(__file__).resolve().parents[1] / "cli"
    private: list[str] = []
    for path in sorted(cli_dir.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("brats_sdk"):
                continue
            module = importlib.import_module(node.module or "")
            public = set(getattr(module, "__all__", ())) | ({"__version__"} if node.module == "brats_sdk" else set())
            private += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name not in public]
    assert private == []


def test_volume_summaries_hold_what_the_csv_rows_hold() -> None:
    from brats_sdk.bins import SurvivalBins
    from brats_sdk.predict.outputs import failure_row, prediction_row
    from brats_sdk.predict.results import VolumeFailure, VolumePrediction, VolumeSummary

    bins = SurvivalBins.brats()
    p = VolumePrediction(
        volume=3, name="volume_3", patient_id="P3", labels=np.zeros((1, 2, 2), dtype=np.uint8), age=61.5,
        slice_indices=(0,), slice_probs=np.array([[0.2, 0.5, 0.3]]), predicted_bin=1, mean_prob_bin=1,
        mean_probs=(0.2, 0.5, 0.3), votes=(0, 1, 0), bin_label="mid", bin_days="304-456",
        region_ml={"NCR": 0.12345, "ED": 1.0, "ET": 0.0, "WT": 1.12345, "TC": 0.12345}, status="ok", seconds=1.0,
    )
    s, row = VolumeSummary.of(p), prediction_row(p, bins)
    assert (s.patient_id, s.age, s.predicted_bin, s.bin_label, s.bin_days, s.status) == (
        row["patient_id"], row["age"], row["predicted_bin"], row["bin_label"], row["bin_days"], row["status"]
    )
    assert s.votes == tuple(row[f"votes_{label}"] for label in bins.labels)
    assert s.region_ml == {name: row[f"{name}_ml"] for name in ("NCR", "ED", "ET", "WT", "TC")}
    f = VolumeFailure(volume=4, name="volume_4", patient_id="P4", reason="bad file")
    assert VolumeSummary.of(f).status == failure_row(f)["status"] == "failed: bad file"
