# nibabel ships py.typed but leaves image and header methods unannotated.
# mypy: disable-error-code="no-untyped-call"
"""The 14 real labelled BraTS 2018 cases of ``../shared``, read as they are.

Every expected figure is computed here straight from the ``_seg.nii.gz`` files with
nibabel and numpy, never through the SDK's readers, and compared with what the SDK
reads, converts, packs and writes. The tests skip when ``../shared`` is absent.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from brats_sdk.constants import MASK_CHANNELS, MASK_LABELS
from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.inspect_records import Inspection
from brats_sdk.data.inspection import inspect_folder
from brats_sdk.data.sources import DataFormat, detect_format, open_source
from brats_sdk.predict.outputs import mask_file_name, read_prediction_masks
from cli.main import cli

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class SegTruth:
    """What one ``_seg.nii.gz`` holds, computed with nibabel and numpy alone."""

    case: str
    dtype: str
    voxels: dict[str, int]  # per mask channel: labels 1, 2, 4
    tumour_slices: int  # axial slices (file axis 2) with a label
    wt_ml: float  # voxels of labels {1, 2, 4} x voxel volume


def _load(path: Path) -> nib.Nifti1Image:
    img = nib.load(path)
    assert isinstance(img, nib.Nifti1Image)
    return img


def _seg_truth(case_dir: Path) -> SegTruth:
    img = _load(case_dir / f"{case_dir.name}_seg.nii.gz")
    data = np.asarray(img.dataobj)
    voxel_ml = float(np.prod(img.header.get_zooms()[:3])) / 1000.0
    return SegTruth(
        case=case_dir.name,
        dtype=str(img.get_data_dtype()),
        voxels={c: int((data == lab).sum()) for c, lab in zip(MASK_CHANNELS, MASK_LABELS, strict=True)},
        tumour_slices=int((data != 0).any(axis=(0, 1)).sum()),
        wt_ml=float(np.isin(data, MASK_LABELS).sum()) * voxel_ml,
    )


@pytest.fixture(scope="module")
def truth(real_labelled: Path) -> dict[str, SegTruth]:
    """Case name -> what its segmentation holds, for every case folder."""
    cases = sorted(d for d in real_labelled.iterdir() if d.is_dir())
    return {d.name: _seg_truth(d) for d in cases}


@pytest.fixture(scope="module")
def inspected(real_labelled: Path) -> Inspection:
    return inspect_folder(real_labelled)


def _mask_counts(mask: np.ndarray | None) -> dict[str, int]:
    assert mask is not None
    return {c: int(mask[:, k].sum()) for k, c in enumerate(MASK_CHANNELS)}


def test_real_folder_is_detected_as_nifti(real_labelled: Path, truth: dict[str, SegTruth]) -> None:
    assert detect_format(real_labelled) is DataFormat.NIFTI
    assert len(truth) == 14


def test_inspect_reports_what_the_files_hold(inspected: Inspection, truth: dict[str, SegTruth]) -> None:
    assert inspected.ok, inspected.problems
    assert inspected.layout == "nifti" and inspected.n_volumes == len(truth)
    assert inspected.slices_per_volume == {155: len(truth)} and inspected.n_slices == 155 * len(truth)
    assert inspected.image_shapes == {"(240, 240, 155)": len(truth)}
    assert inspected.image_dtypes == {"int16": 4 * len(truth)}
    assert inspected.mask_dtypes == dict(Counter(t.dtype for t in truth.values()))
    assert set(inspected.mask_dtypes) == {"int16", "uint8"}  # both kinds of the release are read
    assert inspected.volumes_with_mask == len(truth)
    assert sorted(v.name for v in inspected.volumes) == sorted(truth)
    for v in inspected.volumes:
        t = truth[v.name]
        assert v.n_slices == 155 and v.has_mask
        assert v.voxels_per_channel == t.voxels, v.name
        assert v.slices_with_tumour == t.tumour_slices, v.name
    assert inspected.voxels_per_channel == {
        c: sum(t.voxels[c] for t in truth.values()) for c in MASK_CHANNELS
    }
    assert inspected.slices_with_tumour == sum(t.tumour_slices for t in truth.values())


def test_cli_inspect_on_real_cases(real_labelled: Path, truth: dict[str, SegTruth], tmp_path: Path) -> None:
    # Two cases (an int16 and a uint8 segmentation) keep the CLI run short; the library
    # test above reads all of them.
    cases = ["Brats18_2013_3_1", "Brats18_TCIA10_639_1"]
    for name in cases:
        (tmp_path / name).symlink_to(real_labelled / name, target_is_directory=True)
    res = CliRunner().invoke(cli, ["inspect", str(tmp_path), "--quiet", "--per-volume"])
    assert res.exit_code == 0, res.output
    assert "nifti (one folder per case)" in res.output
    dtypes = Counter(truth[n].dtype for n in cases)
    assert ", ".join(f"{k} x{n}" for k, n in sorted(dtypes.items())) in res.output
    rows = [line.split() for line in res.output.splitlines() if any(n in line for n in cases)]
    assert [r[1] for r in rows] == cases
    for row, name in zip(rows, cases, strict=True):
        t = truth[name]
        expected = ["155", *(f"{t.voxels[c]:,}" for c in MASK_CHANNELS), str(t.tumour_slices)]
        assert row[2:] == expected, row


def test_convert_and_pack_keep_every_label_voxel(
    real_labelled: Path, truth: dict[str, SegTruth], tmp_path: Path
) -> None:
    runner = CliRunner()
    converted = tmp_path / "h5"
    res = runner.invoke(cli, ["convert", str(real_labelled), str(converted), "--quiet"])
    assert res.exit_code == 0, res.output
    h5 = H5SliceFolder(converted)
    names = {int(r["volume"]): r["patient_id"] for r in csv.DictReader(next(converted.rglob("volume_map.csv")).open())}
    assert sorted(names.values()) == sorted(truth)
    for info in h5.volumes():
        assert info.n_slices == 155
        assert _mask_counts(h5.load_volume(info.volume).mask) == truth[names[info.volume]].voxels

    packed = tmp_path / "packed"
    res = runner.invoke(cli, ["pack", str(converted), str(packed), "--quiet"])
    assert res.exit_code == 0, res.output
    source = open_source(packed)
    assert [i.volume for i in source.volumes()] == sorted(names)
    for v, name in names.items():
        assert _mask_counts(source.load_volume(v).mask) == truth[name].voxels


def test_pack_reads_the_nifti_folder_directly(
    real_labelled: Path, truth: dict[str, SegTruth], tmp_path: Path
) -> None:
    packed = tmp_path / "packed"
    res = CliRunner().invoke(cli, ["pack", str(real_labelled), str(packed), "--quiet"])
    assert res.exit_code == 0, res.output
    source = open_source(packed)
    names = {i.volume: i.name for i in open_source(real_labelled).volumes()}
    assert {i.volume: i.name for i in source.volumes()} == names  # case names kept
    for v, name in names.items():
        assert _mask_counts(source.load_volume(v).mask) == truth[name].voxels


def test_predicted_nifti_keeps_the_input_geometry_and_report_matches_cases_by_name(
    real_labelled: Path, truth: dict[str, SegTruth], tmp_path: Path
) -> None:
    from brats_sdk.models.segmenter import Segmenter

    # One case (its flair's qform code differs from its seg's) in a folder of its own, so
    # that it is volume 1 there and another number in the full folder. One case keeps
    # the CPU prediction short.
    cases = ["Brats18_2013_11_1"]
    subset = tmp_path / "cases"
    subset.mkdir()
    for name in cases:
        (subset / name).symlink_to(real_labelled / name, target_is_directory=True)
    segmenter = tmp_path / "segmenter.pt"
    Segmenter().save(segmenter)
    pred = tmp_path / "pred"
    runner = CliRunner()
    res = runner.invoke(cli, ["predict", str(subset), "--segmenter", str(segmenter), "--out", str(pred),
                              "--save-nifti", "--save-masks", "--device", "cpu", "--quiet"])
    assert res.exit_code == 0, res.output

    for volume, name in enumerate(cases, start=1):
        written = _load(pred / "nifti" / f"{name}_pred.nii.gz")
        source = _load(real_labelled / name / f"{name}_flair.nii.gz")  # the reference modality
        assert written.shape == source.shape == (240, 240, 155)
        np.testing.assert_allclose(written.affine, source.affine)
        assert nib.aff2axcodes(written.affine) == nib.aff2axcodes(source.affine)
        for code in ("qform_code", "sform_code"):
            assert int(written.header[code]) == int(source.header[code]), code
        np.testing.assert_allclose(written.header.get_qform(), source.header.get_qform())
        np.testing.assert_allclose(written.header.get_sform(), source.header.get_sform())
        assert written.header.get_zooms() == source.header.get_zooms()
        labels = np.asarray(written.dataobj)
        assert labels.dtype == np.uint8 and set(np.unique(labels).tolist()) <= {0, *MASK_LABELS}
        # the file holds what the predictor produced, slice k of the SDK at file axis 2
        sdk_labels, _ = read_prediction_masks(pred / "masks" / mask_file_name(volume))
        np.testing.assert_array_equal(np.moveaxis(labels, 2, 0), sdk_labels)

    # Scored against the full real folder, where the two cases have other numbers.
    full = {i.name: i.volume for i in open_source(real_labelled).volumes()}
    assert [full[n] for n in cases] != list(range(1, len(cases) + 1))
    report = tmp_path / "report"
    res = runner.invoke(cli, ["report", str(pred), "--out", str(report), "--ground-truth", str(real_labelled),
                              "--max-figure-volumes", "0", "--device", "cpu", "--quiet"])
    assert res.exit_code == 0, res.output
    with (report / "per_volume.csv").open() as f:
        rows = {r["patient_id"]: r for r in csv.DictReader(f)}
    assert sorted(rows) == sorted(cases)
    for name in cases:
        assert float(rows[name]["WT_truth_ml"]) == pytest.approx(truth[name].wt_ml, abs=1e-3)
