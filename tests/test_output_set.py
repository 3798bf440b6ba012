"""Outputs are never stale, mixed or orphaned; unwritable outputs are one line (issue 18.3).

A rerun of ``brats predict`` replaces the earlier run's output set; ``brats report``
reads only what the current ``predictions.json`` lists; a lock keeps a second run out;
orphan temporary files go; an interrupted run says so; an unwritable ``--out`` is one
line and exit 1; ``brats synth`` refuses a folder that is not empty.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from brats_sdk.atomic import is_orphan_temp
from brats_sdk.data.sources import DataFormat, open_source
from brats_sdk.data.synth import SynthConfig, make_cohort
from brats_sdk.errors import DataError
from brats_sdk.models.segmenter import Segmenter
from brats_sdk.out_dir import LOCK_FILE, RunLock
from brats_sdk.predict.batch import BatchOptions, run_batch
from brats_sdk.predict.predictor import CombinedPredictor
from brats_sdk.report.folder import read_prediction_folder
from brats_sdk.training.run import start_run
from cli.exit_codes import ExitCode
from cli.main import cli


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cohort(tmp_path_factory.mktemp("cohort"), SynthConfig(volumes=3, slices=8, size=32, seed=2))


@pytest.fixture(scope="module")
def predictor() -> CombinedPredictor:
    return CombinedPredictor(segmenter=Segmenter(), device="cpu")


@pytest.fixture(scope="module")
def segmenter_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "segmenter.pt"
    Segmenter().save(path)
    return path


def _json(out: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((out / "predictions.json").read_text())
    return loaded


def test_the_temporary_names_of_atomic_writes_are_recognised() -> None:
    assert is_orphan_temp(Path(".volume_1_pred.h5.abcd_123.tmp")) and is_orphan_temp(Path(".last.pt.x1y2z3w4.tmp"))
    assert is_orphan_temp(Path(".case_pred.nii.gz.k2j4h5g6.nii.gz"))
    assert not is_orphan_temp(Path(".brats.lock")) and not is_orphan_temp(Path("volume_1_pred.h5"))
    assert not is_orphan_temp(Path(".notes.abcdefgh.txt"))  # not the suffix of its name


def test_a_rerun_replaces_the_earlier_output_set(data: Path, predictor: CombinedPredictor, tmp_path: Path) -> None:
    out = tmp_path / "pred"
    source = open_source(data, require_mask=False)
    run_batch(predictor, source, out, options=BatchOptions(save_masks=True))
    assert sorted(p.name for p in (out / "masks").iterdir()) == [f"volume_{v}_pred.h5" for v in (1, 2, 3)]
    assert read_prediction_folder(out).read_masks(2)[0].shape[0] == 8
    orphan = out / "masks" / ".volume_1_pred.h5.abcd1234.tmp"
    orphan.write_bytes(b"half a file")
    (out / "notes.txt").write_text("mine")
    (out / "report.html").write_text("<html>an old report</html>")
    run_batch(predictor, source, out, options=BatchOptions(volumes=(1,)))
    assert list((out / "masks").iterdir()) == []  # the earlier run's masks, the orphan among them
    assert not (out / "report.html").exists() and (out / "notes.txt").read_text() == "mine"
    meta = _json(out)
    assert meta["complete"] is True and meta["outputs"] == {"masks": False, "nifti": False}
    folder = read_prediction_folder(out)
    assert [v.volume for v in folder.volumes] == [1]
    with pytest.raises(DataError, match="no mask file of this run"):
        folder.read_masks(1)
    assert not (out / LOCK_FILE).exists()


def test_the_report_refuses_tables_of_two_runs(data: Path, predictor: CombinedPredictor, tmp_path: Path) -> None:
    out = tmp_path / "pred"
    run_batch(predictor, open_source(data, require_mask=False), out, options=BatchOptions(volumes=(1, 2)))
    lines = (out / "predictions.csv").read_text().splitlines()
    (out / "predictions.csv").write_text("\n".join(lines[:2]) + "\n")  # volume 2's row lost
    with pytest.raises(DataError, match=r"lists other volumes than predictions\.json \(2 differ\)"):
        read_prediction_folder(out)


def test_an_interrupted_run_says_so_and_releases_the_folder(data: Path, predictor: CombinedPredictor, tmp_path: Path) -> None:
    out = tmp_path / "pred"

    def stop(_result: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(predictor, open_source(data, require_mask=False), out, on_volume=stop)
    meta = _json(out)
    rows = meta["volumes"]
    assert meta["complete"] is False and isinstance(rows, list) and [r["volume"] for r in rows] == [1]
    assert not read_prediction_folder(out).complete and not (out / LOCK_FILE).exists()


def test_a_second_run_into_a_held_folder_exits_1_naming_the_holder(data: Path, segmenter_pt: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred"
    out.mkdir()
    # flock conflicts between two opens of the file in one process as between processes.
    with RunLock(out, command="brats predict (the first run)"):
        res = CliRunner().invoke(cli, ["predict", str(data), "--segmenter", str(segmenter_pt), "--out", str(out),
                                       "--device", "cpu", "--quiet"])
    assert res.exit_code == ExitCode.ERROR, res.output
    message = " ".join(res.output.split())
    assert f"in use by another brats run (pid {os.getpid()} on" in message and "(the first run)" in message
    assert not (out / "predictions.json").exists()


def test_the_lock_of_a_run_that_is_gone_is_taken_over(data: Path, predictor: CombinedPredictor, tmp_path: Path) -> None:
    out = tmp_path / "pred"
    out.mkdir()
    (out / LOCK_FILE).write_text(json.dumps({"pid": 2**22 + 1, "host": "here", "started": "yesterday", "command": "x"}))
    summary = run_batch(predictor, open_source(data, require_mask=False), out, options=BatchOptions(volumes=(3,)))
    assert summary.predictions == 1 and not (out / LOCK_FILE).exists()


def test_training_removes_orphans_of_killed_checkpoint_writes(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "stage1").mkdir(parents=True)
    orphan = run / "stage1" / ".last.pt.q1w2e3r4.tmp"
    orphan.write_bytes(b"x" * 100)
    (run / "stage1" / "last.pt").write_bytes(b"kept")
    start_run(device="cpu", seed=0, out_dir=run, data_dir=data, data_format=DataFormat.AUTO, volumes=None,
              max_volumes=None)
    assert not orphan.exists() and (run / "stage1" / "last.pt").exists()


def test_an_unwritable_out_is_one_line_and_exit_1(data: Path, segmenter_pt: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    long_name = tmp_path / ("n" * 300)
    pred = tmp_path / "pred"
    unwritable = [a_file / "sub", long_name]
    if os.geteuid() != 0:  # root writes into a read-only folder
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        unwritable.append(locked / "out")
    elif Path("/sys/kernel").is_dir():  # sysfs refuses new folders, to root too
        unwritable.append(Path("/sys/brats_sdk_test_out"))
    for out in unwritable:
        res = runner.invoke(cli, ["predict", str(data), "--segmenter", str(segmenter_pt), "--out", str(out),
                                  "--device", "cpu", "--quiet"])
        errors = [line for line in res.output.splitlines() if line.startswith("Error")]
        assert res.exit_code == ExitCode.ERROR and len(errors) == 1 and "Traceback" not in res.output, res.output
        assert "cannot write the --out folder" in res.output
        assert out != a_file / "sub" or "a part of the path is a file" in res.output
    assert runner.invoke(cli, ["predict", str(data), "--segmenter", str(segmenter_pt), "--out", str(pred),
                               "--device", "cpu", "--quiet"]).exit_code == ExitCode.OK
    res = runner.invoke(cli, ["report", str(pred), "--out", str(a_file / "report")])
    assert res.exit_code == ExitCode.ERROR and "cannot write the --out folder" in res.output, res.output
    res = runner.invoke(cli, ["train", "segmenter", str(data), "--out", str(a_file / "run"), "--epochs", "1",
                              "--device", "cpu", "--quiet"])
    assert res.exit_code == ExitCode.ERROR and "cannot write the --out folder" in res.output, res.output


def test_synth_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["synth", str(tmp_path), "--volumes", "1", "--slices", "8", "--size", "32", "--quiet"]
    (tmp_path / "notes.txt").write_text("mine")
    res = runner.invoke(cli, args)
    assert res.exit_code == ExitCode.ERROR and "not empty" in res.output and not list(tmp_path.rglob("*.h5"))
    assert runner.invoke(cli, [*args, "--overwrite"]).exit_code == ExitCode.OK
    assert len(list(tmp_path.rglob("*.h5"))) == 8
