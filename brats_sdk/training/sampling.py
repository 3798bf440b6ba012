"""The order of training samples in an epoch: uniform (the paper's) or weighted.

The order is a function of (seed, epoch) alone, which is what lets a resumed run match
an uninterrupted one; under torchrun every rank draws the same order and takes its share.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DistributedSampler, RandomSampler, Sampler

from brats_sdk.distributed import DistContext
from brats_sdk.errors import ConfigError

__all__ = ["WeightedEpochSampler", "epoch_generator", "epoch_sampler", "tumour_weights"]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of one epoch's sample order."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


class WeightedEpochSampler(Sampler[int]):
    """Draws with replacement, in proportion to ``weights``: ``len(weights)`` of them
    rounded up to a multiple of the world size, so that every rank gets as many (under
    DDP a rank with one batch fewer would wait forever for the others' gradients); rank
    ``r`` of ``world`` takes draws ``r, r + world, ...``.
    """

    def __init__(self, weights: Sequence[float], *, seed: int, epoch: int, dist: DistContext) -> None:
        w = torch.as_tensor(list(weights), dtype=torch.float64)
        if w.numel() == 0 or not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or float(w.sum()) <= 0:
            raise ConfigError("sample weights must be finite, non-negative and not all zero")
        self.weights = w
        self.seed, self.epoch, self.dist = seed, epoch, dist

    def __len__(self) -> int:
        return -(-self.weights.numel() // self.dist.world_size)

    def __iter__(self) -> Iterator[int]:
        total = len(self) * self.dist.world_size
        draws = torch.multinomial(self.weights, total, replacement=True, generator=epoch_generator(self.seed, self.epoch))
        return iter(draws[self.dist.rank :: self.dist.world_size].tolist())


def epoch_sampler(
    n: int,
    *,
    seed: int,
    epoch: int,
    dist: DistContext,
    weights: Sequence[float] | None = None,
    generator: torch.Generator | None = None,
) -> RandomSampler | DistributedSampler[int] | WeightedEpochSampler:
    """The sampler of one epoch over ``n`` samples.

    ``generator`` (default: a fresh :func:`epoch_generator`) drives the uniform shuffle;
    the loop passes the one its DataLoader also draws from, which fixes the order.
    """
    if weights is not None:
        if len(weights) != n:
            raise ConfigError(f"{len(weights)} sample weights for {n} samples")
        return WeightedEpochSampler(weights, seed=seed, epoch=epoch, dist=dist)
    if dist.is_distributed:
        sampler: DistributedSampler[int] = DistributedSampler(
            range(n), num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=seed  # type: ignore[arg-type]  # only len() is used
        )
        sampler.set_epoch(epoch)
        return sampler
    return RandomSampler(range(n), generator=generator or epoch_generator(seed, epoch))


def tumour_weights(has_tumour: Sequence[bool], fraction: float) -> list[float]:
    """Weights that draw slices with tumour ``fraction`` of the time (uniformly within
    each group); uniform when one group is empty.

    Raises:
        ConfigError: ``fraction`` outside (0, 1).
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"tumour fraction must be in (0, 1), got {fraction}")
    n_t = sum(has_tumour)
    n_o = len(has_tumour) - n_t
    if n_t == 0 or n_o == 0:
        return [1.0] * len(has_tumour)
    return [fraction / n_t if t else (1.0 - fraction) / n_o for t in has_tumour]
