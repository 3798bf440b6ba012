"""The survival ResNet run on tumour windows equals the plain network (compared in float64,
where the two agree to about 1e-10 on every CPU; float32 differences depend on the kernels)."""

from __future__ import annotations

import pytest
import torch

from brats_sdk import CombinedPredictor, PredictorConfig, Segmenter
from brats_sdk.models.survival import prepare_masks
from brats_sdk.predict.accel.batchnorm import fold_batchnorm
from brats_sdk.predict.accel.tumour_windows import TumourWindowResNet
from tests.helpers import randomised_classifier, tumour_masks

pytestmark = pytest.mark.numerics


@pytest.mark.parametrize("threads", [1, 2])
def test_windowed_backbone_equals_the_plain_one(threads: int) -> None:
    model = fold_batchnorm(randomised_classifier(torch.float64))
    x = prepare_masks(tumour_masks(torch.Generator().manual_seed(2))).double()
    background = prepare_masks(torch.zeros(1, 3, 8, 8))[0, :, 0, 0].double()
    windowed = TumourWindowResNet(model.backbone, background)  # type: ignore[arg-type]  # a torchvision ResNet
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            plain = model.backbone(x)
            got = windowed(x)
            got_cl = windowed(x.contiguous(memory_format=torch.channels_last))
    finally:
        torch.set_num_threads(before)
    assert torch.get_num_threads() == before
    torch.testing.assert_close(got, plain, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(got_cl, plain, atol=1e-9, rtol=1e-9)
    assert torch.equal(got[-1], plain[-1])  # the empty mask: the cached background maps' own result


def test_windows_really_skip_work() -> None:
    """A small tumour runs the first layers on a small window: the stem convolution sees
    fewer pixels than the 224 x 224 input."""
    model = fold_batchnorm(randomised_classifier())
    background = prepare_masks(torch.zeros(1, 3, 8, 8))[0, :, 0, 0]
    windowed = TumourWindowResNet(model.backbone, background)  # type: ignore[arg-type]  # a torchvision ResNet
    seen: list[tuple[int, ...]] = []
    hook = model.backbone.conv1.register_forward_hook(lambda _m, inp, _out: seen.append(tuple(inp[0].shape)))
    masks = torch.zeros(1, 3, 240, 240)
    masks[0, 1, 100:110, 100:120] = 1.0
    with torch.inference_mode():
        windowed(prepare_masks(masks))
    hook.remove()
    assert seen[0] == (1, 3, 224, 224)  # the background maps, once
    assert seen[1][2] < 64 and seen[1][3] < 64


def test_predictor_probabilities_match_with_and_without_windows() -> None:
    survival = randomised_classifier()
    classes = torch.zeros(5, 64, 64, dtype=torch.uint8)
    classes[0, 10:20, 30:40] = 2
    classes[1, 0:64, 0:8] = 1
    classes[2, 50:64, 50:64] = 3
    classes[3, 30, 30] = 1
    classes[4, 5:60, 5:60] = torch.randint(0, 4, (55, 55), generator=torch.Generator().manual_seed(3)).to(torch.uint8)
    probs = {}
    for windows in (True, False):
        predictor = CombinedPredictor(segmenter=Segmenter(), survival=survival, device="cpu", config=PredictorConfig(tumour_windows=windows))
        probs[windows] = predictor.survival_probs(classes.numpy(), 61.0)
        assert isinstance(getattr(predictor.networks._surv_net, "backbone", None), TumourWindowResNet) is windows
    assert probs[True].shape == (5, 3)
    assert abs(probs[True] - probs[False]).max() < 1e-5
    assert not isinstance(survival.backbone, TumourWindowResNet)  # the caller's model is untouched
