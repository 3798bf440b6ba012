"""The predictor's brain-box crops, its slice step and its CPU workers: boxes normalised in
place hold the normalised volume's values bit for bit, crops stay on the 32-pixel grid,
the slice step runs the U-Net where it must and labels its second pass near the tumour
only, and the workers keep order and thread state."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import numpy.typing as npt
import pytest
import torch

from brats_sdk import CombinedPredictor, PredictorConfig, Segmenter
from brats_sdk.data.crops import Box, box_of
from brats_sdk.data.normalise import Normalisation, brain_mask, normalise_volume
from brats_sdk.errors import ConfigError
from brats_sdk.options import TTA
from brats_sdk.predict.boxes import (
    TUMOUR_MARGIN,
    copy_fill,
    normalising_fill,
    plan_crops,
    tumour_regions,
)
from brats_sdk.predict.predictor import _chunks
from brats_sdk.predict.tta import UnetRunner, VolumeOutputs
from brats_sdk.predict.workers import CpuWorkers

_CPU = torch.device("cpu")


def _raw_volume(seed: int, d: int = 9, size: int = 48) -> npt.NDArray[np.float32]:
    """Raw intensities with a brain blob of its own place and size on most slices (zero
    background; the first and last slices have no brain)."""
    rng = np.random.default_rng(seed)
    vol = np.zeros((d, 4, size, size), dtype=np.float32)
    for s in range(1, d - 1):
        y0, x0 = rng.integers(0, size // 2, size=2)
        y1, x1 = y0 + rng.integers(3, size // 2), x0 + rng.integers(3, size // 2)
        vol[s, :, y0:y1, x0:x1] = rng.gamma(2.0, 300.0, size=(4, y1 - y0, x1 - x0)).astype(np.float32)
        vol[s, 2, y0, x0] = 0.0  # a brain voxel where one channel sits at the minimum
    return vol


def _bits(a: npt.NDArray[np.float32]) -> npt.NDArray[np.uint32]:
    return np.ascontiguousarray(a).view(np.uint32)


@pytest.mark.parametrize("rule", list(Normalisation))
def test_boxes_normalised_in_place_hold_the_normalised_volume_bit_for_bit(rule: Normalisation) -> None:
    raw = _raw_volume(0)
    brain = brain_mask(raw)
    normed = normalise_volume(raw, rule, brain=brain)
    fill = normalising_fill(raw, brain, rule)
    rng = np.random.default_rng(1)
    for i in range(raw.shape[0]):
        (y0, y1), (x0, x1) = sorted(int(v) for v in rng.integers(0, 49, size=2)), sorted(int(v) for v in rng.integers(0, 49, size=2))
        box = box_of(brain[i])
        boxes = [(0, 48, 0, 48), (5, 17, 30, 31), (y0, y1, x0, x1), *([box] if box is not None else [])]
        for y0, y1, x0, x1 in boxes:
            out = np.full((4, y1 - y0, x1 - x0), np.nan, dtype=np.float32)
            fill(i, (y0, y1, x0, x1), out)
            np.testing.assert_array_equal(_bits(out), _bits(normed[i, :, y0:y1, x0:x1]))
            copied = np.full_like(out, np.nan)
            copy_fill(normed)(i, (y0, y1, x0, x1), copied)
            np.testing.assert_array_equal(_bits(copied), _bits(out))


def test_crops_cover_each_slice_once_on_the_grid_costliest_first() -> None:
    brain = brain_mask(_raw_volume(2, d=30, size=240))
    slices = [int(i) for i in np.flatnonzero(brain.any(axis=(1, 2)))]
    pad = Segmenter.pad_offsets(240, 240)
    batches = plan_crops(brain, slices, pad, margin=16, batch_size=3)
    assert sorted(i for b in batches for i in b.slices) == slices
    assert [b.cost for b in batches] == sorted((b.cost for b in batches), reverse=True)
    for b in batches:
        assert 1 <= len(b.slices) <= 3 and b.rows % 32 == 0 and b.cols % 32 == 0
        for (r0, c0), (y0, y1, x0, x1) in zip(b.origins, b.boxes, strict=True):
            assert r0 % 32 == 0 and c0 % 32 == 0
            assert r0 <= y0 + pad[0] and y1 + pad[0] <= r0 + b.rows and c0 <= x0 + pad[2] and x1 + pad[2] <= c0 + b.cols


def test_crops_with_regions_keep_their_cut_and_label_only_inside_them() -> None:
    brain = brain_mask(_raw_volume(3, d=12, size=240))
    slices = [int(i) for i in np.flatnonzero(brain.any(axis=(1, 2)))]
    pad = Segmenter.pad_offsets(240, 240)
    boxes = {i: box_of(brain[i]) for i in slices}
    assert all(b is not None for b in boxes.values())
    far, near, partly = slices[0], slices[1], slices[2]
    b = boxes[partly]
    assert b is not None
    regions: dict[int, Box] = {
        far: (0, 1, 0, 1) if boxes[far] != (0, 1, 0, 1) else (239, 240, 239, 240),  # misses the brain box
        near: (0, 240, 0, 240),
        partly: (b[0] + 1, b[1] + 40, b[2], b[2] + 2),
    }
    plain = {i: (batch, k) for batch in plan_crops(brain, slices, pad, 16, 4) for k, i in enumerate(batch.slices)}
    cut = {i: (batch, k) for batch in plan_crops(brain, slices, pad, 16, 4, regions) for k, i in enumerate(batch.slices)}
    assert sorted(cut) == [near, partly]  # no region, or none inside the brain box: not run
    for i, (batch, k) in cut.items():
        ref, j = plain[i]
        assert (batch.origins[k], batch.boxes[k], batch.rows, batch.cols) == (ref.origins[j], ref.boxes[j], ref.rows, ref.cols)
        assert ref.windows[j] == ref.boxes[j]
    assert cut[near][0].windows[cut[near][1]] == boxes[near]
    assert cut[partly][0].windows[cut[partly][1]] == (b[0] + 1, b[1], b[2], b[2] + 2)


def test_tumour_regions_are_the_neighbours_tumour_box_widened() -> None:
    classes = np.zeros((8, 40, 50), dtype=np.uint8)
    classes[0, 10:14, 10:20] = 2
    classes[3, 20:25, 5:9] = 1
    classes[3, 30, 45] = 3  # the box holds every tumour class
    regions = tumour_regions(classes, np.array([1, 2, 4, 5, 7]), np.array([0, 3]), 3, margin=4)
    assert regions == {
        1: (6, 35, 1, 50),  # slices 0 and 3: the union of their boxes, widened, clipped to the slice
        2: (6, 35, 1, 50),
        4: (16, 35, 1, 50),
        5: (16, 35, 1, 50),
    }  # slice 7: three slices from any tumour, no region
    assert tumour_regions(classes, np.array([1]), np.array([0]), 2) == {
        1: (max(0, 10 - TUMOUR_MARGIN), min(40, 14 + TUMOUR_MARGIN), max(0, 10 - TUMOUR_MARGIN), min(50, 20 + TUMOUR_MARGIN))
    }


@pytest.mark.numerics
def test_a_second_pass_window_holds_the_whole_box_probabilities() -> None:
    """The real U-Net on a batch whose labels are wanted in regions only: inside them, the
    probabilities of the run over the whole brain boxes (the last layers see what they
    need); outside, background."""
    torch.manual_seed(3)
    raw = _raw_volume(4, d=6, size=96)
    brain = brain_mask(raw)
    slices = np.flatnonzero(brain.any(axis=(1, 2)))
    predictor = CombinedPredictor(segmenter=Segmenter(), device="cpu", config=PredictorConfig(probabilities=True))
    fill = normalising_fill(raw, brain, predictor.networks.normalisation)
    runner = UnetRunner(predictor.networks, tta=TTA.NONE, probabilities=True, spread=False)
    regions: dict[int, Box] = {}
    for i in slices:
        b = box_of(brain[i])
        assert b is not None
        regions[int(i)] = (b[0] + (b[1] - b[0]) // 3, b[1], b[2], b[2] + max(1, (b[3] - b[2]) // 2))
    outs = []
    for given in (None, regions):
        out = VolumeOutputs(brain.shape, probabilities=True, spread=False)
        predictor._segment_brain_boxes(raw.shape, brain, slices, fill, out, runner, given)
        outs.append(out)
    whole, cut = outs
    assert whole.probs is not None and cut.probs is not None
    inside = np.zeros(brain.shape, dtype=bool)
    for i, (y0, y1, x0, x1) in regions.items():
        inside[i, y0:y1, x0:x1] = True
    np.testing.assert_allclose(cut.probs.transpose(0, 2, 3, 1)[inside], whole.probs.transpose(0, 2, 3, 1)[inside], atol=1e-5)
    assert not cut.classes[~inside].any() and (cut.probs[:, 0][~inside] == 1).all()
    assert whole.classes[~inside & brain].any()  # the regions left labels out


def _step_predictor(
    step: int, monkeypatch: pytest.MonkeyPatch, truth: npt.NDArray[np.uint8]
) -> tuple[CombinedPredictor, list[tuple[list[int], dict[int, Box] | None]]]:
    """A predictor whose U-Net 'labels' each slice it is run on with ``truth`` (inside the
    slice's region, when it is given one), recording the calls."""
    predictor = CombinedPredictor(segmenter=Segmenter(), device="cpu", config=PredictorConfig(slice_step=step))
    calls: list[tuple[list[int], dict[int, Box] | None]] = []

    def fake(
        shape: object, brain: object, slices: npt.NDArray[np.intp], fill: object, out: VolumeOutputs, runner: object,
        regions: dict[int, Box] | None = None,
    ) -> None:
        calls.append(([int(i) for i in slices], regions))
        for i in slices:
            y0, y1, x0, x1 = (0, truth.shape[1], 0, truth.shape[2]) if regions is None else regions[int(i)]
            out.classes[i, y0:y1, x0:x1] = truth[i, y0:y1, x0:x1]

    monkeypatch.setattr(predictor, "_segment_brain_boxes", fake)
    return predictor, calls


def test_the_slice_step_runs_the_unet_near_tumour_only(monkeypatch: pytest.MonkeyPatch) -> None:
    d = 20
    truth = np.zeros((d, 32, 32), dtype=np.uint8)
    truth[6:12, 10:20, 10:20] = 2  # a tumour over six slices
    truth[15, 3, 3] = 1  # a one-slice speck between tumour-free slices
    brain = np.zeros((d, 32, 32), dtype=bool)
    brain[2:19, 4:28, 4:28] = True
    brain[15, 3, 3] = True
    normed = np.zeros((d, 4, 32, 32), dtype=np.float32)
    every, calls = _step_predictor(1, monkeypatch, truth)
    np.testing.assert_array_equal(every.segment_normalised(normed, brain), truth)
    assert calls == [(list(range(2, 19)), None)]
    stepped, calls = _step_predictor(2, monkeypatch, truth)
    got = stepped.segment_normalised(normed, brain)
    # The second pass labels its slices near the tumour of their first-pass neighbours.
    region = (max(0, 10 - TUMOUR_MARGIN), min(32, 20 + TUMOUR_MARGIN), max(0, 10 - TUMOUR_MARGIN), min(32, 20 + TUMOUR_MARGIN))
    assert calls == [(list(range(2, 19, 2)), None), ([5, 7, 9, 11], dict.fromkeys([5, 7, 9, 11], region))]
    missed = truth.copy()
    missed[15] = 0
    np.testing.assert_array_equal(got, missed)
    full, calls = _step_predictor(2, monkeypatch, truth)
    full.config = PredictorConfig(slice_step=2, skip_empty_slices=False)
    np.testing.assert_array_equal(full.segment_normalised(normed, brain), truth)
    assert calls == [(list(range(d)), None)]


def test_the_slice_step_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="slice_step"):
        PredictorConfig(slice_step=0)


def test_workers_keep_the_order_the_callers_state_and_its_thread_count() -> None:
    workers = CpuWorkers()
    before = torch.get_num_threads()
    main = threading.get_ident()
    try:
        torch.set_num_threads(2)
        with torch.inference_mode():
            got = workers.map(lambda i: (i, torch.is_inference_mode_enabled(), torch.get_num_threads(), threading.get_ident()),
                              list(range(7)), device=_CPU)
        assert [g[0] for g in got] == list(range(7))
        assert all(g[1] and g[2] == 1 and g[3] != main for g in got)
        assert torch.get_num_threads() == 2
        with pytest.raises(ZeroDivisionError):
            workers.map(lambda i: 1 // i, [1, 0, 2], device=_CPU)
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        assert workers.map(lambda _: threading.get_ident(), [1, 2, 3], device=_CPU) == [main] * 3
    finally:
        workers.close()
        torch.set_num_threads(before)


def test_survival_chunks_balance_the_workers() -> None:
    spans = _chunks(83, 16, 2)
    assert len(spans) == 6 and spans[0][0] == 0 and spans[-1][1] == 83
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert max(b - a for a, b in spans) - min(b - a for a, b in spans) <= 1
    assert _chunks(1, 16, 2) == [(0, 1)]
    assert _chunks(0, 16, 2) == []
    assert len(_chunks(5, 16, 4)) == 4 and len(_chunks(3, 16, 4)) == 3
