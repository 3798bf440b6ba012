"""The fast convolutions compute the convolutions they replace: Winograd in float64 to about
1e-12 whatever the CPU's kernels and in float32 within a rounding bound, oneDNN's for
every batch; only wide 3x3 'same' convolutions become Winograd ones, and other inputs
(bf16) run the plain convolution."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from brats_sdk import CombinedPredictor, Precision, PredictorConfig, Segmenter
from brats_sdk.models.survival import prepare_masks
from brats_sdk.predict.accel import AccelOptions, accelerate
from brats_sdk.predict.accel.convolutions import (
    OneDnnConv2d,
    supports_onednn,
    use_fast_convolutions,
)
from brats_sdk.predict.accel.tumour_windows import TumourWindowResNet
from brats_sdk.predict.accel.winograd import (
    MIN_CHANNELS,
    WinogradConv2d,
    supports_winograd,
    tile_size,
)
from tests.helpers import randomise_norms, randomised_classifier, tumour_masks

pytestmark = pytest.mark.numerics

# (N, C, H, W, K): odd sides, a 1 x 1 map, maps smaller than a tile, both tile sizes.
SHAPES = [(2, 128, 5, 7, 128), (1, 128, 1, 1, 256), (3, 256, 13, 9, 128), (1, 128, 6, 6, 128), (2, 128, 24, 28, 160)]


def test_tile_size_counts_the_products_of_padded_tiles() -> None:
    assert tile_size(6, 6) == 2  # 9 tiles of 16 or 4 of 36: a tie goes to the cheaper transforms
    assert tile_size(7, 7) == 4  # 16 x 16 against 4 x 36
    assert tile_size(1, 1) == 2
    assert tile_size(12, 14) == 4
    assert {tile_size(s[2], s[3]) for s in SHAPES} == {2, 4}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_winograd_equals_the_convolution_in_float64(shape: tuple[int, int, int, int, int], bias: bool) -> None:
    n, c, h, w, k = shape
    torch.manual_seed(0)
    conv = nn.Conv2d(c, k, 3, padding=1, bias=bias).double()
    fast = WinogradConv2d(conv)
    assert fast.weight is conv.weight and fast.bias is conv.bias  # shared, not copied
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    with torch.inference_mode():
        want = conv(x)
        for inp in (x, x.contiguous(memory_format=torch.channels_last)):
            got = fast(inp)
            assert got.shape == want.shape
            torch.testing.assert_close(got, want, atol=1e-11, rtol=1e-11)


@pytest.mark.parametrize("shape", SHAPES)
def test_float32_error_stays_within_a_rounding_bound(shape: tuple[int, int, int, int, int]) -> None:
    n, c, h, w, k = shape
    torch.manual_seed(1)
    conv = nn.Conv2d(c, k, 3, padding=1)
    fast = WinogradConv2d(conv)
    x = torch.randn(n, c, h, w).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        got, direct = fast(x).double(), conv(x).double()
        exact = F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1)  # type: ignore[union-attr]  # bias=True
        # The size of what is summed: the same sum over absolute values.
        scale = F.conv2d(x.double().abs(), conv.weight.double().abs(), conv.bias.double().abs(), padding=1)  # type: ignore[union-attr]
    eps = torch.finfo(torch.float32).eps
    assert float(((got - exact).abs() / scale).max()) < 64 * eps
    assert not torch.equal(got, direct)  # the Winograd path ran, not the direct convolution


def test_bf16_inputs_run_the_plain_convolution() -> None:
    torch.manual_seed(2)
    conv = nn.Conv2d(128, 128, 3, padding=1).to(torch.bfloat16)
    fast = WinogradConv2d(conv)
    x = torch.randn(2, 128, 9, 9).to(torch.bfloat16)
    with torch.inference_mode():
        assert torch.equal(fast(x), conv(x))


def test_only_wide_same_convolutions_are_supported() -> None:
    assert supports_winograd(nn.Conv2d(MIN_CHANNELS, MIN_CHANNELS, 3, padding=1))
    assert not supports_winograd(nn.Conv2d(MIN_CHANNELS - 1, 256, 3, padding=1))
    assert not supports_winograd(nn.Conv2d(256, 256, 3, padding=1, stride=2))
    assert not supports_winograd(nn.Conv2d(256, 256, 3, padding=2, dilation=2))
    assert not supports_winograd(nn.Conv2d(256, 256, 3, padding=1, groups=2))
    assert not supports_winograd(nn.Conv2d(256, 256, 1))
    assert not supports_winograd(nn.Conv2d(256, 256, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(TypeError, match="not a wide 3x3"):
        WinogradConv2d(nn.Conv2d(64, 64, 3, padding=1))


def test_rewritten_networks_match_in_float64_and_swap_only_what_gains() -> None:
    """Both networks through :func:`accelerate` in float64, Winograd on and off: the same
    function (the survival network through its tumour windows), the swapped layers the wide
    3x3 'same' ones, every other convolution left as it was."""
    torch.manual_seed(0)
    seg = Segmenter().double()
    randomise_norms(seg)
    seg.eval()
    surv = randomised_classifier(torch.float64)
    cpu = torch.device("cpu")
    fast = accelerate(seg, surv, AccelOptions(device=cpu, dtype=torch.float64))
    plain = accelerate(seg, surv, AccelOptions(device=cpu, dtype=torch.float64, fast_convolutions=False))
    for net, other in ((fast.segmenter, plain.segmenter), (fast.survival, plain.survival)):
        assert net is not None and other is not None
        swapped = [m for m in net.modules() if isinstance(m, WinogradConv2d)]
        assert swapped and not any(isinstance(m, WinogradConv2d) for m in other.modules())
        assert all(min(m.in_channels, m.out_channels) >= MIN_CHANNELS for m in swapped)
        assert not any(supports_winograd(m) or supports_onednn(m) for m in net.modules())  # none left behind
    assert fast.survival is not None and plain.survival is not None
    assert isinstance(getattr(fast.survival, "backbone", None), TumourWindowResNet)
    x = torch.randn(2, 4, 96, 128, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    masks = prepare_masks(tumour_masks(torch.Generator().manual_seed(2))).double()
    age = torch.rand(masks.shape[0], 1, dtype=torch.float64)
    with torch.inference_mode():
        torch.testing.assert_close(fast.segmenter(x), plain.segmenter(x), atol=1e-9, rtol=1e-9)
        torch.testing.assert_close(fast.survival(masks, age), plain.survival(masks, age), atol=1e-9, rtol=1e-9)


def test_predictor_swaps_convolutions_for_fp32_only_and_when_asked() -> None:
    torch.manual_seed(0)
    seg = Segmenter()
    kinds = (WinogradConv2d, OneDnnConv2d)
    counts = {}
    for precision, fast in ((Precision.FP32, True), (Precision.FP32, False), (Precision.BF16, True)):
        predictor = CombinedPredictor(segmenter=seg, device="cpu", config=PredictorConfig(precision=precision, fast_convolutions=fast))
        net = predictor.networks._seg_net  # type: ignore[attr-defined]  # TorchNetworks
        counts[precision, fast] = [sum(type(m) is kind for m in net.modules()) for kind in kinds]
    assert min(counts[Precision.FP32, True]) > 0
    assert counts[Precision.FP32, False] == [0, 0] and counts[Precision.BF16, True] == [0, 0]
    assert not any(isinstance(m, kinds) for m in seg.modules())  # the caller's model is untouched


def test_use_fast_convolutions_counts_its_swaps() -> None:
    model = nn.Sequential(
        nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(),
        nn.Sequential(nn.Conv2d(128, 256, 3, padding=1), nn.Conv2d(256, 4, 1), nn.Conv2d(4, 4, 3, padding="same")),
    )
    assert use_fast_convolutions(model) == (2, 1)  # padding="same" stays as it is
    assert isinstance(model[0], WinogradConv2d) and isinstance(model[2][0], WinogradConv2d)
    assert type(model[2][1]) is OneDnnConv2d and type(model[2][2]) is nn.Conv2d
    assert use_fast_convolutions(model) == (0, 0)  # already swapped


@pytest.mark.parametrize("shape", [(2, 256, 7, 7, 64, 1, 1), (1, 64, 12, 10, 64, 3, 1), (3, 64, 16, 16, 128, 1, 2)])
def test_onednn_convolution_runs_onednn_and_matches(shape: tuple[int, int, int, int, int, int, int]) -> None:
    """The shapes PyTorch would send to its own kernel on one thread (1x1 with a small
    batch, one small map) run through oneDNN and give the convolution's result."""
    n, c, h, w, k, size, stride = shape
    torch.manual_seed(3)
    conv = nn.Conv2d(c, k, size, stride=stride, padding=size // 2).to(memory_format=torch.channels_last)
    fast = OneDnnConv2d(conv)
    assert fast.weight is conv.weight and fast.bias is conv.bias
    x = torch.randn(n, c, h, w).contiguous(memory_format=torch.channels_last)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            got = fast(x)
        with torch.inference_mode():
            want = F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), stride=stride, padding=size // 2)  # type: ignore[union-attr]  # bias=True
    finally:
        torch.set_num_threads(before)
    assert "aten::mkldnn_convolution" in {e.key for e in prof.key_averages()}
    assert got.shape == want.shape and got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got.double(), want, atol=1e-4, rtol=1e-4)
