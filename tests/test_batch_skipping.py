"""Batch jobs skip what is broken, in every format (issue 18.2).

Each broken volume is a skipped volume (``errors.csv`` for ``brats predict``, a listed
failure for ``pack`` and ``convert``) and exit 3; the others are done. ``brats convert``
is atomic per case and a rerun finishes what is missing.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from brats_sdk.data.convert import convert_folder
from brats_sdk.data.convert_state import PENDING_MARKER
from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.inspection import inspect_folder
from brats_sdk.data.nifti import NiftiFolder
from brats_sdk.data.packed import PackedFolder
from brats_sdk.data.packed_writer import pack_folder
from brats_sdk.data.synth import SynthConfig, make_cohort
from brats_sdk.errors import DataError
from brats_sdk.models.segmenter import Segmenter
from cli.exit_codes import ExitCode
from cli.main import cli
from tests.test_nifti import AFFINE, SHAPE, tumour_labels, write_case

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def segmenter_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "segmenter.pt"
    Segmenter().save(path)
    return path


def _nifti_cohort(root: Path) -> Path:
    """Four cases: a and d sound, b without t1ce, c with a 4-D flair."""
    for name in ("a", "b", "c", "d"):
        write_case(root, name, seg=tumour_labels(), skip=("t1ce",) if name == "b" else ())
    nib.save(nib.Nifti1Image(np.zeros((*SHAPE, 2), dtype=np.float32), AFFINE), root / "c" / "c_flair.nii.gz")
    return root


def _errors(out: Path) -> dict[int, str]:
    with (out / "errors.csv").open() as f:
        return {int(r["volume"]): r["reason"] for r in csv.DictReader(f)}


def test_a_nifti_source_lists_broken_cases_only_when_asked(tmp_path: Path) -> None:
    src = _nifti_cohort(tmp_path)
    with pytest.raises(DataError, match="missing modality t1ce"):
        NiftiFolder(src).volumes()  # training wants the whole cohort or an error
    folder = NiftiFolder(src, skip_broken=True)
    assert [i.volume for i in folder.volumes()] == [1, 4] and len(folder) == 2 * SHAPE[2]
    broken = {b.volume: b for b in folder.broken_volumes()}
    assert set(broken) == {2, 3} and broken[2].name == "b" and "t1ce" in broken[2].reason
    assert "not a 3D volume" in broken[3].reason


def test_predict_skips_broken_nifti_cases_and_exits_3(tmp_path: Path, segmenter_pt: Path) -> None:
    src = _nifti_cohort(tmp_path / "nifti")
    out = tmp_path / "pred"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [sys.executable, "-m", "cli", "predict", str(src), "--segmenter", str(segmenter_pt), "--out", str(out),
         "--device", "cpu", "--save-masks", "--quiet"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert res.returncode == ExitCode.VOLUMES_SKIPPED, res.stderr
    errors = _errors(out)
    assert set(errors) == {2, 3} and "t1ce" in errors[2] and "c_flair" in errors[3]
    with (out / "predictions.csv").open() as f:
        status = {int(r["volume"]): r["status"] for r in csv.DictReader(f)}
    assert set(status) == {1, 2, 3, 4} and not status[1].startswith("failed") and status[3].startswith("failed:")
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["volume_1_pred.h5", "volume_4_pred.h5"]


def test_predict_skips_a_truncated_packed_file_and_inspect_reports_it(tmp_path: Path, segmenter_pt: Path) -> None:
    data = make_cohort(tmp_path / "h5", SynthConfig(volumes=3, slices=8, size=32, seed=3))
    packed = tmp_path / "packed"
    pack_folder(data, packed)
    target = packed / "volume_2.h5"
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    with pytest.raises(DataError, match=r"volume_2\.h5"):
        PackedFolder(packed)
    inspection = inspect_folder(packed)
    assert not inspection.ok and any("volume_2.h5" in p for p in inspection.problems)
    out = tmp_path / "pred"
    res = CliRunner().invoke(cli, ["predict", str(packed), "--segmenter", str(segmenter_pt), "--out", str(out),
                                   "--device", "cpu", "--quiet"])
    assert res.exit_code == ExitCode.VOLUMES_SKIPPED, res.output
    assert list(_errors(out)) == [2] and "volume_2.h5" in _errors(out)[2]


def test_pack_skips_a_broken_nifti_case(tmp_path: Path) -> None:
    src = _nifti_cohort(tmp_path / "nifti")
    res = CliRunner().invoke(cli, ["pack", str(src), str(tmp_path / "packed"), "--quiet"])
    assert res.exit_code == ExitCode.VOLUMES_SKIPPED, res.output
    assert "Packed 2 volumes" in res.output and "2 failed" in res.output
    assert [i.volume for i in PackedFolder(tmp_path / "packed").volumes()] == [1, 4]


def test_convert_is_atomic_per_case_and_a_rerun_finishes(tmp_path: Path) -> None:
    src = tmp_path / "nifti"
    for name in ("a", "b", "c"):
        write_case(src, name, seg=tumour_labels())
    bad_seg = tumour_labels()
    bad_seg[0, 0, SHAPE[2] - 1] = 7  # found only when the case is loaded, after its header
    write_case(src, "b", seg=bad_seg)
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["convert", str(src), str(out), "--quiet"])
    assert res.exit_code == ExitCode.VOLUMES_SKIPPED, res.output
    assert "Converted 2 volumes, 1 failed" in res.output and "b_seg" in res.output
    h5 = H5SliceFolder(out)
    assert [i.volume for i in h5.volumes()] == [1, 3]  # no slice file of case b
    with (h5.data_dirs[0] / "meta_data.csv").open() as f:
        assert {r["volume"] for r in csv.DictReader(f)} == {"1", "3"}
    assert inspect_folder(out).ok
    # Interrupted inside case b: b's slices are removed, the folder says it is unfinished.
    write_case(src, "b", seg=tumour_labels())
    out = tmp_path / "out2"
    calls: list[int] = []

    def interrupt(n: int) -> None:
        calls.append(n)
        if len(calls) == SHAPE[2] + 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert_folder(src, out, progress=interrupt)
    data_dir = H5SliceFolder(out).data_dirs[0]
    assert (data_dir / PENDING_MARKER).exists() and [i.volume for i in H5SliceFolder(out).volumes()] == [1]
    problems = inspect_folder(out).problems
    assert any("did not finish" in p for p in problems), problems
    # The rerun keeps what is done and converts the rest.
    result = convert_folder(src, out)
    assert result.ok and result.kept == (1,) and result.converted == (2, 3)
    assert inspect_folder(out).ok and not (data_dir / PENDING_MARKER).exists()
    assert len(H5SliceFolder(out)) == 3 * SHAPE[2]


def test_inspect_finds_slice_files_that_meta_data_does_not_list(tmp_path: Path) -> None:
    data = make_cohort(tmp_path, SynthConfig(volumes=2, slices=8, size=32, seed=1))
    assert inspect_folder(data).ok
    (data / "volume_2_slice_3.h5").unlink()
    problems = inspect_folder(data).problems
    assert any("listed in meta_data.csv but missing (volume_2_slice_3.h5)" in p for p in problems), problems
