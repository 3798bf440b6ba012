"""Training windows and the brain box: geometry, randomness, and what the datasets serve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from brats_sdk.data.crops import (
    STRIDE,
    RandomCrops,
    Window,
    box_of,
    random_window,
    union_box,
    window_around,
)
from brats_sdk.data.datasets import SegmentationDataset
from brats_sdk.data.normalise import brain_mask
from brats_sdk.data.scan import SourceScan, scan_source
from brats_sdk.data.sources import open_source
from brats_sdk.errors import ConfigError


def test_box_of_and_union_box() -> None:
    mask = np.zeros((10, 12), dtype=bool)
    assert box_of(mask) is None
    mask[2:5, 3:9] = True
    assert box_of(mask) == (2, 5, 3, 9)
    assert union_box([(2, 5, 3, 9), None, (0, 3, 4, 11)]) == (0, 5, 3, 11)
    assert union_box([None, None]) is None


@pytest.mark.parametrize(("box", "expected"), [
    ((100, 140, 60, 180), Window(72, 168, 40, 200)),   # 40 + 32 -> 96 rows, 120 + 32 -> 160 cols, centred
    ((0, 30, 200, 240), Window(0, 64, 144, 240)),        # pushed back inside the slice
    ((5, 235, 5, 235), Window(0, 240, 0, 240)),          # wider than any multiple of 32 that fits
    (None, Window(0, 240, 0, 240)),                      # no brain: the whole slice
])
def test_window_around_holds_the_box_on_the_grid(box: tuple[int, int, int, int] | None, expected: Window) -> None:
    win = window_around(box, height=240, width=240, margin=16)
    assert win == expected
    if box is not None:
        assert win.y0 <= box[0] and win.y1 >= box[1] and win.x0 <= box[2] and win.x1 >= box[3]
    for side in (win.y1 - win.y0, win.x1 - win.x0):
        assert side % STRIDE == 0 or side == 240


def test_random_window_holds_its_pixel_at_varying_places() -> None:
    centres = np.zeros((240, 240), dtype=bool)
    centres[120, 130] = True
    torch.manual_seed(0)
    wins = [random_window(height=240, width=240, size=96, centres=centres) for _ in range(200)]
    assert all(w.y1 - w.y0 == 96 and w.x1 - w.x0 == 96 for w in wins)
    assert all(w.y0 <= 120 < w.y1 and w.x0 <= 130 < w.x1 for w in wins)
    # The pixel is not always in the middle of the window (no positional shortcut to learn).
    offsets = {(120 - w.y0, 130 - w.x0) for w in wins}
    assert len(offsets) > 150
    rows = [120 - w.y0 for w in wins]
    assert min(rows) < 20 and max(rows) > 76


def test_random_window_is_clipped_and_seeded() -> None:
    small = random_window(height=40, width=50, size=96, centres=None)
    assert small == Window(0, 40, 0, 50)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = [random_window(height=240, width=240, size=64, centres=None, generator=g1) for _ in range(5)]
    b = [random_window(height=240, width=240, size=64, centres=None, generator=g2) for _ in range(5)]
    assert a == b and len(set(a)) > 1
    with pytest.raises(ConfigError, match="at least 32"):
        RandomCrops(16)
    with pytest.raises(ConfigError, match="tumour_prob"):
        RandomCrops(64, tumour_prob=1.5)


def test_random_crops_favour_tumour() -> None:
    brain = np.zeros((200, 200), dtype=bool)
    brain[20:180, 20:180] = True
    tumour = np.zeros_like(brain)
    tumour[150:160, 150:160] = True
    torch.manual_seed(1)
    crops = RandomCrops(64, tumour_prob=0.8)
    hits = [crops.window(brain=brain, tumour=tumour).cut(tumour).any() for _ in range(300)]
    # 80 % are placed on tumour; a few of the brain-placed ones catch it by chance.
    assert 0.75 < np.mean(hits) < 0.95
    # Without tumour the window is placed on brain.
    assert all(crops.window(brain=brain, tumour=np.zeros_like(brain)).cut(brain).any() for _ in range(50))


def test_scan_records_brain_boxes(small_cohort: Path) -> None:
    source = open_source(small_cohort)
    scan = scan_source(source)
    for i in (0, len(source) // 2, len(source) - 1):
        rec = source.read_slice(i)
        assert scan.slices[i].brain_box == box_of(brain_mask(rec.image))
    assert any(f.brain_box is None for f in scan.slices) and any(f.brain_box is not None for f in scan.slices)


def test_old_scan_file_is_rescanned(small_cohort: Path, tmp_path: Path) -> None:
    from brats_sdk.run_files import SCAN_FILE
    from brats_sdk.training.run import load_or_scan

    source = open_source(small_cohort)
    (tmp_path / SCAN_FILE).write_text('{"stats": {}, "slices": []}')
    scan = load_or_scan(source, tmp_path)
    assert len(scan.slices) == len(source)
    assert SourceScan.from_json(tmp_path / SCAN_FILE).slices == scan.slices


def test_datasets_serve_windows_of_the_normalised_slice(small_cohort: Path) -> None:
    source = open_source(small_cohort)
    scan = scan_source(source)
    tumour_slices = [i for i, f in enumerate(scan.slices) if f.has_tumour]
    whole = SegmentationDataset(source, tumour_slices, scan.stats)
    fixed = Window(8, 40, 16, 48)
    windowed = SegmentationDataset(source, tumour_slices, scan.stats, crop=fixed)
    for k in (0, len(tumour_slices) - 1):
        a, b = whole[k], windowed[k]
        assert torch.equal(b["image"], a["image"][:, 8:40, 16:48])
        assert torch.equal(b["target"], a["target"][8:40, 16:48])
    torch.manual_seed(0)
    random = SegmentationDataset(source, tumour_slices, scan.stats, crop=RandomCrops(32, tumour_prob=1.0))
    for k in range(len(tumour_slices)):
        sample = random[k]
        assert sample["image"].shape == (4, 32, 32) and sample["target"].shape == (32, 32)
        assert bool((sample["target"] > 0).any())  # placed on tumour every time
