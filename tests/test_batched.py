"""The batched-inference loop both models' predict methods share."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
import torch
from torch import nn

from brats_sdk.errors import ConfigError
from brats_sdk.models.batched import in_batches
from brats_sdk.models.segmenter import Segmenter


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))


@pytest.mark.parametrize("batch_size", [1, 3, 7, 100])
def test_any_batch_size_gives_the_eval_mode_result_and_restores_the_mode(batch_size: int) -> None:
    net = _net().train()
    x = torch.randn(7, 3)
    seen: list[tuple[bool, bool]] = []

    def step(items: slice, device: torch.device) -> npt.NDArray[np.float32]:
        seen.append((net.training, torch.is_inference_mode_enabled()))
        out: npt.NDArray[np.float32] = net(x[items].to(device)).numpy()
        return out

    got = in_batches(net, 7, step, batch_size=batch_size, device="cpu", empty=np.zeros((0, 4), np.float32))
    with torch.no_grad():
        want = net.eval()(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert len(seen) == -(-7 // batch_size) and all(s == (False, True) for s in seen)
    net.train()
    in_batches(net, 7, step, batch_size=batch_size, device=None, empty=np.zeros((0, 4), np.float32))
    assert net.training  # the mode it had before


def test_no_items_and_bad_batch_sizes() -> None:
    net = _net()
    empty = np.zeros((0, 4), np.float32)

    def step(items: slice, device: torch.device) -> npt.NDArray[np.float32]:
        raise AssertionError("no step without items")

    assert in_batches(net, 0, step, batch_size=4, device=None, empty=empty) is empty
    for bad in (0, -1, 2.0):
        with pytest.raises(ConfigError, match="batch_size must be a positive int"):
            in_batches(net, 3, step, batch_size=bad, device=None, empty=empty)  # type: ignore[arg-type]  # a bad value on purpose


def test_a_frozen_backbone_keeps_its_batchnorm_statistics_through_predict() -> None:
    model = Segmenter(head="paper")
    model.freeze_backbone()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    labels = model.predict(torch.randn(3, 4, 32, 32), batch_size=2)
    assert labels.shape == (3, 32, 32) and labels.dtype == np.uint8
    assert model.training and model.backbone_frozen
    bn = next(m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) and "segmentation_head" not in n)
    assert not bn.training  # restored through Segmenter.train: the frozen backbone's BatchNorm stays in eval
    after = {k: v for k, v in model.state_dict().items() if "running" in k}
    assert all(torch.equal(before[k], after[k]) for k in before)
