"""Brain-box crops padded with background: the crops' network equals its definition
(every padded layer padded with its input's background vector) with and without the
speed rewrites, and a crop of background stays background. In float64, where the
rewrites agree to about 1e-10 on every CPU."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from brats_sdk.models.segmenter import HeadKind, Segmenter
from brats_sdk.predict.accel import AccelOptions, accelerate, window_logits
from brats_sdk.predict.accel.background import background_features
from tests.helpers import randomise_norms

pytestmark = pytest.mark.numerics

CPU = torch.device("cpu")


def _segmenter(head: HeadKind = HeadKind.DEFAULT) -> Segmenter:
    torch.manual_seed(0)
    model = Segmenter(head=head).double().eval()
    randomise_norms(model, seed=1)
    return model


def _padded_by_definition(model: Segmenter) -> nn.Module:
    """A copy of ``model`` whose every padded convolution pads its input explicitly with
    that input's background vector."""
    features = background_features(model, 4)
    net = copy.deepcopy(model)
    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d) and module.padding != (0, 0):
            ph, pw = module.padding  # type: ignore[misc]  # smp's convolutions pad with int pairs
            value = features[name].view(1, -1, 1, 1)
            module.padding = (0, 0)

            def pad(_: nn.Module, args: tuple[Tensor, ...], ph: int = ph, pw: int = pw, value: Tensor = value) -> tuple[Tensor]:
                x = args[0]
                out = value.expand(x.shape[0], -1, x.shape[2] + 2 * ph, x.shape[3] + 2 * pw).clone()
                out[..., ph : ph + x.shape[2], pw : pw + x.shape[3]] = x
                return (out,)

            module.register_forward_pre_hook(pad)
    return net


def _crop(shape: tuple[int, int, int, int]) -> Tensor:
    """A crop: random values in a box, zero (background) around it."""
    x = torch.zeros(shape, dtype=torch.float64)
    h, w = shape[2:]
    x[..., 16 : h - 12, 20 : w - 16] = torch.randn(shape[0], shape[1], h - 28, w - 36, dtype=torch.float64)
    return x


@pytest.mark.parametrize(("fold", "fuse", "fast"), [(False, False, False), (True, False, False), (True, True, False), (True, True, True)])
def test_the_crops_network_pads_every_layer_with_background(fold: bool, fuse: bool, fast: bool) -> None:
    model = _segmenter()
    nets = accelerate(model, None, AccelOptions(device=CPU, dtype=torch.float64, memory_format=torch.contiguous_format,
                                                fold_batchnorm=fold, fuse_upsampling=fuse, fast_convolutions=fast))
    assert nets.crops is not nets.segmenter and nets.window_unet is not None
    definition = _padded_by_definition(model)
    with torch.inference_mode():
        for shape in ((2, 4, 96, 128), (1, 4, 64, 64)):
            x = _crop(shape)
            want = definition(x)
            torch.testing.assert_close(nets.crops(x), want, atol=1e-9, rtol=1e-9)
            got = window_logits(nets.window_unet, x, (10, shape[2] - 5), (0, shape[3] - 30))
            torch.testing.assert_close(got, want[..., 10 : shape[2] - 5, : shape[3] - 30], atol=1e-9, rtol=1e-9)
            # the whole-slice network keeps zero padding
            torch.testing.assert_close(nets.segmenter(x), model(x), atol=1e-9, rtol=1e-9)
            assert not torch.allclose(want, model(x), atol=1e-3)


@pytest.mark.parametrize("head", [HeadKind.DEFAULT, HeadKind.PAPER])
def test_a_crop_of_background_stays_background(head: HeadKind) -> None:
    """Zero input with background padding: every layer's map is its background vector, so
    the logits are one vector everywhere; zero padding makes the edges differ."""
    model = _segmenter(head)
    nets = accelerate(model, None, AccelOptions(device=CPU, dtype=torch.float64, memory_format=torch.contiguous_format))
    x = torch.zeros(2, 4, 64, 96, dtype=torch.float64)
    with torch.inference_mode():
        padded, zeros = nets.crops(x), model(x)
    flat = padded - padded[..., :1, :1]
    assert flat.abs().max() < 1e-9
    assert (zeros - zeros[..., :1, :1]).abs().max() > 1e-3


def test_a_network_whose_background_is_zero_keeps_one_copy() -> None:
    """A fresh segmenter's BatchNorms are the identity and its convolutions have no bias
    before the head: its background features are zero and zeros pad as background does."""
    model = Segmenter().eval()
    features = background_features(model, 4)
    assert features and not any(f.any() for f in features.values())
    nets = accelerate(model, None, AccelOptions(device=CPU))
    assert nets.crops is nets.segmenter
    off = accelerate(_segmenter().float(), None, AccelOptions(device=CPU, crop_background=False))
    assert off.crops is off.segmenter
