"""U-Net logits on a window equal the whole input's logits there (in float64, where the
two agree to about 1e-10 on every CPU)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from brats_sdk.models.segmenter import HeadKind, Segmenter
from brats_sdk.predict.accel.batchnorm import fold_batchnorm
from brats_sdk.predict.accel.unet_window import head_halo, supports_windows, window_logits
from brats_sdk.predict.accel.upsample import fuse_upsampling
from tests.helpers import randomise_norms

pytestmark = pytest.mark.numerics


def _segmenter(head: HeadKind) -> Segmenter:
    torch.manual_seed(0)
    model = Segmenter(head=head).double().eval()
    randomise_norms(model, seed=1)
    return model


@pytest.mark.parametrize("head", [HeadKind.DEFAULT, HeadKind.PAPER])
@pytest.mark.parametrize("fused", [False, True])
def test_window_logits_equal_the_whole_run(head: HeadKind, fused: bool) -> None:
    model = _segmenter(head)
    net = (fuse_upsampling(fold_batchnorm(model)) if fused else model).unet
    assert supports_windows(net)
    x = torch.randn(2, 4, 96, 128, dtype=torch.float64)
    windows = [((20, 70), (30, 100)), ((0, 96), (0, 128)), ((0, 9), (111, 128)), ((47, 48), (64, 65)), ((90, 96), (0, 3))]
    with torch.inference_mode():
        full = net(x)
        for rows, cols in windows:
            got = window_logits(net, x, rows, cols)
            want = full[:, :, rows[0] : rows[1], cols[0] : cols[1]]
            assert got.shape == want.shape
            torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-9, msg=f"window {rows} x {cols}")


def test_head_halo_and_unsupported_models() -> None:
    assert head_halo(Segmenter().unet.segmentation_head) == 1
    assert head_halo(Segmenter(head=HeadKind.PAPER).unet.segmentation_head) == 2  # 3x3, 3x3, 1x1
    assert head_halo(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Upsample(scale_factor=2))) is None
    assert head_halo(nn.Conv2d(4, 4, 3, stride=2, padding=1)) is None
    assert not supports_windows(nn.Conv2d(4, 4, 3))
