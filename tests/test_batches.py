"""The shared-memory batch loader: same batches as torch's collate, never stuck."""

from __future__ import annotations

import gc
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from brats_sdk.data.crops import RandomCrops, Window
from brats_sdk.data.datasets import SegmentationDataset, SurvivalDataset
from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.scan import scan_source
from brats_sdk.training.batches import make_loader

Batch = Mapping[str, torch.Tensor]


def _seg_data(cohort: Path, crop: Window | None = None) -> SegmentationDataset:
    source = H5SliceFolder(cohort)
    order = np.random.default_rng(3).permutation(len(source)).tolist()
    return SegmentationDataset(source, order, scan_source(source).stats, crop=crop)


def _equal(a: list[Batch], b: list[Batch]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k].dtype == y[k].dtype and torch.equal(x[k], y[k]), k


def _batches(data: Dataset[Batch], *, workers: int, ring: bool, batch_size: int = 5) -> list[Batch]:
    # Cloned as they come: the consumer keeps nothing of the loader's.
    return [{k: v.clone() for k, v in b.items()} for b in make_loader(data, batch_size=batch_size, num_workers=workers, shared_ring=ring)]


@pytest.mark.parametrize("workers", [0, 2])
def test_ring_batches_equal_torch_collate(tiny_cohort: Path, workers: int) -> None:
    data = _seg_data(tiny_cohort)
    got = _batches(data, workers=workers, ring=True)
    _equal(got, _batches(data, workers=0, ring=False))
    assert sum(int(b["image"].shape[0]) for b in got) == len(data)  # last batch short: 160 = 32 x 5
    assert got[0]["image"].shape[1:] == (4, 48, 48) and got[0]["target"].dtype == torch.uint8


def test_ring_with_windows_and_a_dataset_without_fill(tiny_cohort: Path) -> None:
    windows = _seg_data(tiny_cohort, crop=Window(8, 40, 0, 32))
    _equal(_batches(windows, workers=1, ring=True), _batches(windows, workers=1, ring=False))
    source = H5SliceFolder(tiny_cohort)
    survival = SurvivalDataset(source, range(40), dict.fromkeys(range(1, 11), 0.5), dict.fromkeys(range(1, 11), 1))
    _equal(_batches(survival, workers=1, ring=True, batch_size=7), _batches(survival, workers=0, ring=False, batch_size=7))


@pytest.mark.parametrize("workers", [0, 1])
def test_consumer_that_keeps_every_batch_gets_them_all_intact(tiny_cohort: Path, workers: int) -> None:
    """More batches held than the ring has slots: the rest come through torch's collate,
    and no held batch is overwritten."""
    data = _seg_data(tiny_cohort)
    loader = make_loader(data, batch_size=4, num_workers=workers)
    held = list(loader)  # 40 batches, the ring has at most 6 slots
    assert loader.ring is not None
    _equal(held, _batches(data, workers=0, ring=False, batch_size=4))
    del held
    gc.collect()
    assert int(loader.ring.taken.sum()) == 0  # every slot came back


def test_slot_is_released_when_its_last_view_dies(tiny_cohort: Path) -> None:
    loader = make_loader(_seg_data(tiny_cohort), batch_size=8)
    assert loader.ring is not None
    it = iter(loader)
    batch = next(it)
    view = batch["image"][2:4]  # a view keeps the slot
    del batch
    gc.collect()
    assert int(loader.ring.taken.sum()) == 1
    del view
    gc.collect()
    assert int(loader.ring.taken.sum()) == 0
    del it


class _Ragged(Dataset[Batch]):
    """Items whose shape changes at index 6, with a ``fill`` like SegmentationDataset's."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, i: int) -> Batch:
        n = 3 if i < 6 else 4
        return {"x": torch.full((n,), float(i))}

    def fill(self, i: int, out: Mapping[str, torch.Tensor]) -> bool:
        item = self[i]
        if out["x"].shape != item["x"].shape:
            return False
        out["x"].copy_(item["x"])
        return True


def test_items_of_another_shape_fall_back_to_collate() -> None:
    got = [{k: v.clone() for k, v in b.items()} for b in make_loader(_Ragged(), batch_size=3)]
    assert [b["x"].shape for b in got] == [(3, 3), (3, 3), (3, 4), (3, 4)]
    assert [float(b["x"][0, 0]) for b in got] == [0.0, 3.0, 6.0, 9.0]


def test_fill_writes_what_getitem_returns(tiny_cohort: Path) -> None:
    data = _seg_data(tiny_cohort, crop=Window(0, 32, 16, 48))
    item = data[5]
    out = {k: torch.full_like(v, 7) for k, v in item.items()}
    assert data.fill(5, out)
    for k in item:
        assert torch.equal(out[k], item[k]), k
    wrong = {**out, "image": torch.empty(4, 16, 16)}
    assert not data.fill(5, wrong)


def test_building_the_ring_leaves_the_global_generator_alone(tiny_cohort: Path) -> None:
    data = _seg_data(tiny_cohort, crop=RandomCrops(32))
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    make_loader(data, batch_size=4)  # reads item 0, which draws a random window
    assert torch.equal(torch.rand(3), expected)


class _Bf16(Dataset[Batch]):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> Batch:
        return {"x": torch.full((3,), float(i), dtype=torch.bfloat16)}


def test_dtypes_without_a_numpy_view_keep_torchs_path() -> None:
    loader = make_loader(_Bf16(), batch_size=4)
    assert loader.ring is None
    assert [b["x"][:, 0].tolist() for b in loader] == [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0], [8.0, 9.0]]
