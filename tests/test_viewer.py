"""The slice viewer's payload, page, report embedding and ``brats view`` (no browser).

Expected values are computed here from the arrays the files were written from (see
tests/viewer_case.py); tests/test_viewer_browser.py drives the same page in Chromium.
"""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from brats_sdk.errors import ConfigError, DataError
from brats_sdk.report import ReportOptions, ViewerOptions, build_viewer, write_report
from brats_sdk.report.viewer_data import ViewerInput, decode_runs, encode_runs, volume_payload
from cli.main import cli
from tests.viewer_case import FP_SLICE, ViewerCase, make_viewer_case


@pytest.fixture(scope="module")
def case(module_tmp: Path) -> ViewerCase:
    return make_viewer_case(module_tmp)


def _volumes(html: str) -> dict[int, dict[str, object]]:
    found = re.findall(r'<script type="application/json" class="bv-vol" data-volume="(\d+)"[^>]*>(.*?)</script>', html)
    return {int(v): json.loads(text) for v, text in found}


def test_runs_round_trip_including_long_runs() -> None:
    rng = np.random.default_rng(0)
    classes = np.zeros((3, 200, 300), dtype=np.uint8)  # a 160 000-voxel run of background
    classes[2] = rng.integers(0, 4, size=(200, 300))
    classes[1, 50:60, 10:250] = 3
    text = encode_runs(classes)
    assert np.array_equal(decode_runs(text, classes.shape), classes)
    assert encode_runs(np.zeros((0,), dtype=np.uint8)) == ""
    assert base64.b64decode(encode_runs(np.zeros(5, dtype=np.uint8))) == bytes([5 * 4])
    with pytest.raises(DataError, match="class indices"):
        encode_runs(np.array([0, 4], dtype=np.uint8))
    with pytest.raises(DataError, match="cover"):
        decode_runs(text, (3, 200, 299))


def test_payload_box_slices_volumes_and_sprites() -> None:
    depth, size = 12, 64
    image = np.zeros((depth, 4, size, size), dtype=np.float32)
    image[2:9, :, 10:40, 20:50] = np.linspace(1, 100, 30 * 30, dtype=np.float32).reshape(30, 30)
    pred = np.zeros((depth, size, size), dtype=np.uint8)
    truth = np.zeros_like(pred)
    pred[4, 15:20, 25:35] = 3  # 50 ET voxels
    pred[5, 15:20, 25:30] = 1
    truth[5, 15:20, 25:37] = 2  # 60 voxels: slice 5 has 60 wrong voxels, slice 4 has 50
    p = volume_payload(ViewerInput(7, "case", pred, truth, image, spacing=(1.0, 2.0, 1.0)), ViewerOptions(margin=3))
    assert (p["z0"], p["n"], p["depth"]) == (2, 7, depth)
    assert p["box"] == [7, 43, 17, 53] and (p["h"], p["w"], p["th"], p["tw"]) == (36, 36, 48, 48)
    n, h, w = 7, 36, 36
    assert np.array_equal(decode_runs(str(p["pred"]), (n, h, w)), pred[2:9, 7:43, 17:53])
    assert np.array_equal(decode_runs(str(p["truth"]), (n, h, w)), truth[2:9, 7:43, 17:53])
    ml = p["ml"]
    assert isinstance(ml, dict)
    assert ml["pred"][2] == [0.1, 0.1, 0.1] and ml["pred"][3] == [0.05, 0.05, 0.0]  # 2 mm^3 voxels
    assert ml["truth"][3] == [0.12, 0.0, 0.0]
    assert p["jump"] == {"tumour": [3], "error": [3, 2]}
    mods = p["modalities"]
    assert isinstance(mods, list) and [m["name"] for m in mods] == ["FLAIR", "T1", "T1ce", "T2"]
    src = str(mods[0]["src"])
    assert src.startswith("data:image/webp;base64,")
    sprite = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("L"), dtype=np.int16)
    cols = int(str(p["cols"]))
    assert sprite.shape == (-(-n // cols) * 48, cols * 48)
    tile = sprite[:h, 48 : 48 + w]  # slice 3: the second tile
    inside = tile[3:33, 3:33]
    assert inside[0, 0] < 20 and inside[-1, -1] > 235 and np.abs(np.diff(inside.astype(float), axis=1)).mean() < 8
    assert np.abs(tile[:3]).max() < 12  # the margin is background: black


def test_payload_without_image_shows_the_whole_volume_and_checks_shapes() -> None:
    pred = np.zeros((4, 16, 20), dtype=np.uint8)
    p = volume_payload(ViewerInput(1, "", pred))
    assert (p["z0"], p["n"], p["box"], p["modalities"], p["truth"]) == (0, 4, [0, 16, 0, 20], [], None)
    assert p["jump"] == {"tumour": [], "error": []}
    with pytest.raises(DataError, match="does not match"):
        volume_payload(ViewerInput(1, "", pred, truth=np.zeros((4, 16, 21), dtype=np.uint8)))
    with pytest.raises(DataError, match="uncertainty"):
        volume_payload(ViewerInput(1, "", pred, uncertainty={"whole": np.zeros((3, 16, 20), dtype=np.float32)}))
    for bad in ({"quality": 0}, {"max_bytes": 0}, {"margin": -1}, {"image_format": "gif"}):
        with pytest.raises(ConfigError):
            ViewerOptions(**bad)  # type: ignore[arg-type]  # invalid on purpose


def test_over_budget_lowers_the_quality(case: ViewerCase) -> None:
    loose = build_viewer(case.pred_dir, ground_truth=case.data_dir, volumes=[1])
    tight = build_viewer(case.pred_dir, ground_truth=case.data_dir, volumes=[1], options=ViewerOptions(max_bytes=1000))
    assert loose.volumes[0].quality == 70 and tight.volumes[0].quality == 30
    assert tight.volumes[0].bytes < loose.volumes[0].bytes


def test_build_viewer_reads_truth_uncertainty_and_ranks_volumes(case: ViewerCase) -> None:
    build = build_viewer(case.pred_dir, ground_truth=case.data_dir, max_volumes=1)
    wt = {v: int((p > 0).sum()) for v, p in case.pred.items()}
    assert [v.volume for v in build.volumes] == [max(wt, key=wt.__getitem__)]
    both = build_viewer(case.pred_dir, ground_truth=case.data_dir, volumes=[2, 1])
    assert [v.volume for v in both.volumes] == [2, 1]
    one = both.payloads[1]
    assert [u["name"] for u in one["unc"]] == ["whole"]  # type: ignore[attr-defined, index]
    assert one["unc"][0]["max"] == pytest.approx(0.8)  # type: ignore[index]
    assert both.volumes[1].has_truth and both.volumes[1].has_images and both.volumes[0].uncertainty == ()
    z = FP_SLICE - int(str(one["z0"]))
    assert z in one["jump"]["error"]  # type: ignore[index]
    bare = build_viewer(case.pred_dir, volumes=[1])  # no truth, no input folder: labels on black
    assert not bare.volumes[0].has_truth and not bare.volumes[0].has_images
    with pytest.raises(DataError, match="no mask file for volume"):
        build_viewer(case.pred_dir, volumes=[9])


def test_brats_view_command(case: ViewerCase, tmp_path: Path) -> None:
    out = tmp_path / "viewer.html"
    result = CliRunner().invoke(cli, ["view", str(case.pred_dir), "--ground-truth", str(case.data_dir), "--out", str(out),
                                      "--volumes", "1,2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "Wrote" in result.output and "whole" in result.output
    html = out.read_text()
    assert sorted(_volumes(html)) == [1, 2]
    assert "<script src" not in html and not re.search(r"https?://", html.split("<body>")[1])
    bad = CliRunner().invoke(cli, ["view", str(case.pred_dir), "--out", str(out), "--volumes", "5"])
    assert bad.exit_code == 1 and "no mask file for volume(s) 5" in bad.output


def test_brats_view_as_a_subprocess(case: ViewerCase, tmp_path: Path) -> None:
    out = tmp_path / "v.html"
    run = subprocess.run([sys.executable, "-m", "cli", "view", str(case.pred_dir), "--out", str(out), "--max-volumes", "1",
                          "--quiet"], capture_output=True, text=True, check=False, timeout=300)
    assert run.returncode == 0, run.stderr
    assert len(_volumes(out.read_text())) == 1


def test_report_embeds_the_viewer_and_keeps_the_figures(case: ViewerCase, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(case.pred_dir), "--out", str(tmp_path / "r"), "--ground-truth",
                                      str(case.data_dir), "--viewer-volumes", "1", "--max-figure-volumes", "1",
                                      "--quiet", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "r" / "report.html").read_text()
    assert list(_volumes(html)) == [1] and 'class="bv"' in html
    assert html.index('class="bv"') < html.index('id="fig-overlay_volume_1"')  # the still figures stay
    files = write_report(case.pred_dir, tmp_path / "r0", options=ReportOptions(viewer_volumes=0, max_figure_volumes=0))
    assert files.viewer is None and "<script" not in files.html.read_text()
    with pytest.raises(ConfigError):
        ReportOptions(viewer_volumes=-1)


@pytest.mark.slow
def test_real_case_fits_the_budget_at_full_quality(real_labelled: Path) -> None:
    from brats_sdk.data.sources import open_source
    from brats_sdk.labels import one_hot_to_classes

    source = open_source(real_labelled)
    info = source.volumes()[0]
    rec = source.load_volume(info.volume)
    assert rec.mask is not None
    truth = one_hot_to_classes(rec.mask, channel_axis=1)
    pred = np.roll(truth, 2, axis=2)
    p = volume_payload(ViewerInput(info.volume, info.name, pred, truth, rec.image, spacing=info.spacing))
    size = len(json.dumps(p, separators=(",", ":")))
    assert p["quality"] == 70 and size < 2_000_000, size
    assert int(str(p["n"])) < rec.image.shape[0] and p["jump"]["error"]  # type: ignore[index]
