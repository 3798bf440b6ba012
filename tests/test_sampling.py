"""The order of training samples: uniform, weighted toward tumour, split across ranks."""

from __future__ import annotations

import pytest

from brats_sdk.distributed import DistContext
from brats_sdk.errors import ConfigError
from brats_sdk.training.sampling import WeightedEpochSampler, epoch_sampler, tumour_weights


def test_tumour_weights_draw_the_asked_fraction() -> None:
    has_tumour = [True] * 10 + [False] * 90
    w = tumour_weights(has_tumour, 0.5)
    assert sum(w[:10]) == pytest.approx(0.5) and sum(w[10:]) == pytest.approx(0.5)
    sampler = WeightedEpochSampler(w, seed=0, epoch=1, dist=DistContext())
    draws = list(sampler)
    assert len(draws) == 100
    share = sum(d < 10 for d in draws) / len(draws)
    big = list(WeightedEpochSampler(w * 50, seed=0, epoch=1, dist=DistContext()))
    assert 0.45 < sum(d % 100 < 10 for d in big) / len(big) < 0.55
    assert 0.3 < share < 0.7
    assert tumour_weights([True, True], 0.3) == [1.0, 1.0]  # one group empty: uniform
    with pytest.raises(ConfigError, match="tumour fraction"):
        tumour_weights(has_tumour, 1.0)


def test_weighted_order_depends_on_seed_and_epoch_only() -> None:
    w = [1.0, 2.0, 3.0, 4.0] * 5
    one = DistContext()
    assert list(WeightedEpochSampler(w, seed=1, epoch=2, dist=one)) == list(WeightedEpochSampler(w, seed=1, epoch=2, dist=one))
    assert list(WeightedEpochSampler(w, seed=1, epoch=2, dist=one)) != list(WeightedEpochSampler(w, seed=1, epoch=3, dist=one))


def test_ranks_share_one_draw() -> None:
    w = [1.0] * 11
    whole = list(WeightedEpochSampler(w, seed=0, epoch=1, dist=DistContext()))
    parts = [list(WeightedEpochSampler(w, seed=0, epoch=1, dist=DistContext(rank=r, world_size=3))) for r in range(3)]
    # Every rank gets as many draws (12 = 11 rounded up to a multiple of 3).
    assert [len(p) for p in parts] == [4, 4, 4]
    assert [len(list(WeightedEpochSampler(w, seed=0, epoch=1, dist=DistContext(rank=r, world_size=3)))) for r in range(3)] == [4, 4, 4]
    assert len(whole) == 11
    assert all(0 <= d < 11 for p in parts for d in p)


def test_epoch_sampler_kinds_and_errors() -> None:
    uniform = list(epoch_sampler(20, seed=0, epoch=1, dist=DistContext()))
    assert sorted(uniform) == list(range(20))
    with pytest.raises(ConfigError, match="3 sample weights for 4 samples"):
        epoch_sampler(4, seed=0, epoch=1, dist=DistContext(), weights=[1.0, 1.0, 1.0])
    with pytest.raises(ConfigError, match="not all zero"):
        WeightedEpochSampler([0.0, 0.0], seed=0, epoch=1, dist=DistContext())
    ranked = [list(epoch_sampler(10, seed=0, epoch=1, dist=DistContext(rank=r, world_size=2))) for r in range(2)]
    assert sorted(ranked[0] + ranked[1]) == list(range(10))
