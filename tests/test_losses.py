"""DiceLoss and dice_per_class: hand-computed values, a reference implementation, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brats_sdk.errors import ConfigError
from brats_sdk.models.losses import DiceLoss, dice_per_class

# One sample, two classes, a 1x2 image. Probabilities per class (class 0 row, class 1 row):
#   p0 = [0.8, 0.4], p1 = [0.2, 0.6]; truth: pixel 0 is class 0, pixel 1 is class 1.
# With smooth = 1:
#   D0 = (2*0.8 + 1) / (1.2 + 1 + 1) = 2.6 / 3.2 = 13/16
#   D1 = (2*0.6 + 1) / (0.8 + 1 + 1) = 2.2 / 2.8 = 11/14
PROBS = torch.tensor([[[[0.8, 0.4]], [[0.2, 0.6]]]], dtype=torch.float64)  # (1, 2, 1, 2)
INDEX = torch.tensor([[[0, 1]]])  # (1, 1, 2)
D0, D1 = 13 / 16, 11 / 14


def test_dice_per_class_hand_computed() -> None:
    dice = dice_per_class(PROBS, INDEX, smooth=1.0, from_logits=False)
    assert dice.shape == (1, 2)
    torch.testing.assert_close(dice, torch.tensor([[D0, D1]], dtype=torch.float64))


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ((0.0, 1.0), 1 - D1),  # 3/14: background excluded
        ((1.0, 1.0), 45 / 224),  # 1 - (13/16 + 11/14) / 2 = 1 - 179/224
        ((1.0, 3.0), 93 / 448),  # 1 - (13/16 + 3 * 11/14) / 4 = 1 - 355/448
    ],
)
def test_loss_hand_computed(weights: tuple[float, float], expected: float) -> None:
    loss = DiceLoss(class_weights=weights, smooth=1.0, from_logits=False)(PROBS, INDEX)
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_loss_from_logits_hand_computed() -> None:
    # Zero logits -> softmax 0.5 everywhere. Each class: (2*0.5 + 1) / (1 + 1 + 1) = 2/3.
    logits = torch.zeros(1, 2, 1, 2)
    loss = DiceLoss(class_weights=(0.0, 1.0))(logits, INDEX)
    assert loss.item() == pytest.approx(1 / 3, abs=1e-6)


def test_batch_mean_hand_computed() -> None:
    # Sample 2 is predicted perfectly: D = 1 for its present and its absent class
    # (absent: (0 + 1) / (0 + 0 + 1)). Loss = 1 - (11/14 + 1) / 2 = 3/28.
    perfect = torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]]]], dtype=torch.float64)
    probs = torch.cat([PROBS, perfect])
    target = torch.cat([INDEX, torch.zeros(1, 1, 2, dtype=torch.long)])
    loss = DiceLoss(class_weights=(0.0, 1.0), from_logits=False)(probs, target)
    assert loss.item() == pytest.approx(3 / 28, abs=1e-12)


def _reference_loss(
    logits: np.ndarray, target: np.ndarray, weights: np.ndarray, smooth: float
) -> float:
    """Independent numpy implementation of the paper's Dice loss."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    g = np.eye(logits.shape[1])[target].transpose(0, 3, 1, 2)
    dice = (2 * (p * g).sum(axis=(2, 3)) + smooth) / (
        p.sum(axis=(2, 3)) + g.sum(axis=(2, 3)) + smooth
    )
    return float(1 - ((dice * weights).sum(axis=1) / weights.sum()).mean())


@pytest.mark.parametrize("smooth", [1.0, 1e-5])
def test_matches_reference_implementation(smooth: float) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 9, 7, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 4, (3, 9, 7), generator=gen)
    weights = np.array([0.0, 1.0, 2.0, 0.5])
    loss = DiceLoss(class_weights=tuple(weights), smooth=smooth)(logits, target)
    expected = _reference_loss(logits.numpy(), target.numpy(), weights, smooth)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_one_hot_and_index_targets_agree() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 8, 8, generator=gen)
    index = torch.randint(0, 4, (2, 8, 8), generator=gen)
    one_hot = torch.nn.functional.one_hot(index, 4).permute(0, 3, 1, 2)
    loss_fn = DiceLoss()
    torch.testing.assert_close(loss_fn(logits, index), loss_fn(logits, one_hot))
    torch.testing.assert_close(loss_fn(logits, index), loss_fn(logits, one_hot.float()))
    assert loss_fn.dice_per_class(logits, index).shape == (2, 4)


def test_gradients_flow() -> None:
    logits = torch.randn(2, 4, 6, 6, requires_grad=True)
    target = torch.randint(0, 4, (2, 6, 6))
    DiceLoss()(logits, target).backward()
    assert logits.grad is not None
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


def test_perfect_prediction_gives_zero_loss() -> None:
    target = torch.randint(0, 4, (2, 5, 5))
    probs = torch.nn.functional.one_hot(target, 4).permute(0, 3, 1, 2).float()
    assert DiceLoss(from_logits=False)(probs, target).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"class_weights": (0.0, 1.0, -1.0, 1.0)}, ">= 0"),
        ({"class_weights": (0.0, 0.0, 0.0, 0.0)}, "all be zero"),
        ({"class_weights": ()}, "none"),
        ({"smooth": -1.0}, "smooth"),
    ],
)
def test_constructor_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        DiceLoss(**kwargs)  # type: ignore[arg-type]  # test passes typed values via a dict


def test_forward_errors() -> None:
    logits = torch.randn(2, 4, 6, 6)
    with pytest.raises(ConfigError, match="3 class weights"):
        DiceLoss(class_weights=(0.0, 1.0, 1.0))(logits, torch.zeros(2, 6, 6, dtype=torch.long))
    with pytest.raises(ConfigError, match="matches neither"):
        DiceLoss()(logits, torch.zeros(2, 4, 6, 5))
    with pytest.raises(ConfigError, match="matches neither"):
        DiceLoss()(logits, torch.zeros(2, 6, 5, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"0\.\.3"):
        DiceLoss()(logits, torch.full((2, 6, 6), 4))
    with pytest.raises(ConfigError, match=r"0\.\.3"):
        DiceLoss()(logits, torch.full((2, 6, 6), -1))
    with pytest.raises(ConfigError, match="integer"):
        DiceLoss()(logits, torch.zeros(2, 6, 6))


def test_batch_dice_pools_sums_over_the_batch() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 5, 6)
    target = torch.randint(0, 4, (3, 5, 6))
    target[1] = 0  # a slice without tumour
    p = torch.softmax(logits, dim=1)
    g = torch.nn.functional.one_hot(target, 4).permute(0, 3, 1, 2).float()
    inter = (p * g).sum(dim=(0, 2, 3))
    den = p.sum(dim=(0, 2, 3)) + g.sum(dim=(0, 2, 3))
    d = (2 * inter + 1.0) / (den + 1.0)
    expected = 1.0 - (d[1:].sum() / 3.0)
    got = DiceLoss(batch_dice=True)(logits, target)
    assert torch.allclose(got, expected, atol=1e-6)
    # differs from the per-sample form when a slice is empty
    assert not torch.allclose(got, DiceLoss()(logits, target))
