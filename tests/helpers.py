"""Small builders of real files and models for tests."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt
import torch
from torch import nn


def write_slice(
    path: Path,
    image: npt.NDArray[np.floating] | None = None,
    mask: npt.NDArray[np.uint8] | None = None,
    *,
    size: int = 16,
    with_mask: bool = True,
    image_dtype: type = np.float64,
) -> Path:
    """Write one ``volume_<V>_slice_<S>.h5`` file as the release stores it: (H, W, C)."""
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    if image is None:
        image = rng.normal(size=(size, size, 4))
    if mask is None and with_mask:
        mask = np.zeros((image.shape[0], image.shape[1], 3), dtype=np.uint8)
        mask[2:5, 2:5, 1] = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=np.asarray(image, dtype=image_dtype))
        if with_mask and mask is not None:
            f.create_dataset("mask", data=mask)
    return path


def randomise_norms(model: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm2d non-trivial statistics and affine parameters (a fresh model's
    are the identity, which would hide folding and windowing mistakes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)  # type: ignore[union-attr]
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)  # type: ignore[union-attr]
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
