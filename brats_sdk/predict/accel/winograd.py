"""Winograd convolutions: the wide 3x3 layers with fewer multiplications, on a CPU.

oneDNN's direct convolutions already run near a CPU's peak, so what is left to gain is
arithmetic. Winograd's minimal filtering F(m x m, 3 x 3) (Lavin and Gray, 2016) computes an
``m x m`` tile of a 3x3 convolution's output from the ``(m + 2) x (m + 2)`` input tile
around it: transform the tile (``B^T d B``) and the kernel (``G g G^T``, once), multiply
them pointwise, summed over the input channels (one matrix product per tile position,
all tiles and channels at once), and transform back (``A^T M A``). That is ``(m + 2)^2``
multiplications per channel pair and tile instead of ``9 m^2``: 2.25x fewer for
``m = 2``, 4x fewer for ``m = 4``. The transforms are passes over memory; on the layers
with 128 channels or more (the U-Net encoder's and coarse decoder's, ResNet-50's
``layer2`` to ``layer4``) they cost less than the multiplications they save, on
narrower ones they do not (``benchmarks/README.md`` has the timings per shape).

The algebra is exact; in float32 the rounding error is a few times the direct
convolution's (``m = 4``'s transforms have coefficients up to 8), which
``benchmarks/bench_predict.py`` counts in changed labels; ``tests/`` compares in float64.
Only CPU float32 and float64 inputs take this path: elsewhere (CUDA, bf16, whose 8-bit
mantissa the transforms would spend) the layer runs as the plain convolution it is.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brats_sdk.predict.accel.shared_conv import SharedConv2d

__all__ = ["WinogradConv2d", "supports_winograd", "tile_size", "transform_kernel", "winograd_conv"]

# Narrower layers lose: their transforms cost more than the products they save.
MIN_CHANNELS = 128

_TILES = (2, 4)
_DTYPES = (torch.float32, torch.float64)


@functools.cache
def _matrices(m: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor, Tensor]:
    """``(B^T, G, A^T)`` of F(m x m, 3 x 3) in ``dtype``, interpolation points 0, +-1, (+-2,)
    infinity; cached, as every forward pass needs them."""
    if m == 2:
        bt = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
        g = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        at = [[1, 1, 1, 0], [0, 1, -1, -1]]
    elif m == 4:
        bt = [
            [4, 0, -5, 0, 1, 0],
            [0, -4, -4, 1, 1, 0],
            [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0],
            [0, 2, -1, -2, 1, 0],
            [0, 4, 0, -5, 0, 1],
        ]
        g = [
            [1 / 4, 0, 0],
            [-1 / 6, -1 / 6, -1 / 6],
            [-1 / 6, 1 / 6, -1 / 6],
            [1 / 24, 1 / 12, 1 / 6],
            [1 / 24, -1 / 12, 1 / 6],
            [0, 0, 1],
        ]
        at = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
    else:
        raise ValueError(f"no Winograd transform for {m} x {m} tiles")
    return tuple(torch.tensor(t, dtype=torch.float64).to(dtype) for t in (bt, g, at))  # type: ignore[return-value]  # three


def tile_size(height: int, width: int) -> int:
    """The output tile side (2 or 4) that needs the fewest products for a ``height x width``
    map, counting the padding of its last tiles; 2 on a tie (its transforms are cheaper)."""
    return min(_TILES, key=lambda m: -(-height // m) * -(-width // m) * (m + 2) ** 2)


def supports_winograd(conv: nn.Module) -> bool:
    """Whether ``conv`` is a plain 3x3 'same' convolution wide enough to gain."""
    return (
        type(conv) is nn.Conv2d
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.padding == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and min(conv.in_channels, conv.out_channels) >= MIN_CHANNELS
    )


class WinogradConv2d(SharedConv2d):
    """A 3x3 'same' convolution that runs as F(m x m, 3 x 3) on CPU float32/float64 inputs.

    It shares the parameters of the convolution it is made from and is one for every
    other purpose (its geometry is read by the window rewrites). Inference only: the
    transformed kernels are computed once per tile size and dtype, without gradients.

    Args:
        conv: A convolution for which :func:`supports_winograd` holds.

    Raises:
        TypeError: It does not.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        if not supports_winograd(conv):
            raise TypeError(f"not a wide 3x3 'same' convolution: {conv}")
        super().__init__(conv)
        # (m, dtype) -> (the weight's storage and version it came from, the kernel).
        self._kernels: dict[tuple[int, torch.dtype], tuple[tuple[int, int], Tensor]] = {}

    def forward(self, input: Tensor) -> Tensor:
        if input.device.type != "cpu" or input.dtype not in _DTYPES or self.weight.dtype != input.dtype or input.dim() != 4:
            return super().forward(input)
        m = tile_size(input.shape[2], input.shape[3])
        return winograd_conv(input, self._kernel(m), self.bias, m)

    def _kernel(self, m: int) -> Tensor:
        """:func:`transform_kernel` of this weight, cached."""
        key, source = (m, self.weight.dtype), (self.weight.data_ptr(), self.weight._version)
        cached = self._kernels.get(key)
        if cached is not None and cached[0] == source:
            return cached[1]
        kernel = transform_kernel(self.weight, m)
        self._kernels[key] = (source, kernel)
        return kernel


def transform_kernel(weight: Tensor, m: int) -> Tensor:
    """``G g G^T`` of every 3x3 kernel of ``weight`` ``(out, in, 3, 3)``, computed in float64:
    ``((m + 2)^2, in, out)`` in the weight's dtype, on the CPU."""
    _, g, _ = _matrices(m)
    a = m + 2
    with torch.no_grad():
        u = torch.einsum("ij,ocjl,kl->ikco", g, weight.detach().double().cpu(), g)
        return u.reshape(a * a, weight.shape[1], weight.shape[0]).to(weight.dtype).contiguous()


def winograd_conv(x: Tensor, kernel: Tensor, bias: Tensor | None, m: int) -> Tensor:
    """F(m x m, 3 x 3) of ``x`` ``(N, C, H, W)`` (CPU) with padding 1 and ``kernel`` from
    :func:`transform_kernel`; returns ``(N, K, H, W)`` stored channels-last."""
    bt, _, at = _matrices(m, x.dtype)
    a = m + 2
    n, c, h, w = x.shape
    th, tw = -(-h // m), -(-w // m)  # tiles per column and row; the last ones padded
    p = n * th * tw
    k = kernel.shape[2]
    padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, tw * m + 1 - w, 1, th * m + 1 - h))
    s = padded.stride()
    # Every tile, overlapping its neighbours by two pixels: (row in tile, column in tile, N, tile row, tile column, C).
    tiles = padded.as_strided((a, a, n, th, tw, c), (s[1], s[2], s[0], s[1] * m, s[2] * m, s[3]), padded.storage_offset())
    rows = torch.mm(bt, tiles.reshape(a, a * p * c))
    v = torch.matmul(bt, rows.view(a, a, p * c))  # B^T d B, tile position first
    products = torch.bmm(v.view(a * a, p, c), kernel)  # summed over C, per tile position
    y = torch.matmul(at, torch.mm(at, products.view(a, a * p * k)).view(m, a, p * k))  # A^T M A: (m, m, P K)
    out = torch.empty((n, th, m, tw, m, k), dtype=x.dtype, device=x.device)
    tiled = y.view(m, m, n, th, tw, k).permute(2, 3, 0, 4, 1, 5)
    if bias is None:
        out.copy_(tiled)
    else:
        torch.add(tiled, bias, out=out)
    nhwc = out.view(n, th * m, tw * m, k)
    if (th * m, tw * m) != (h, w):
        nhwc = nhwc[:, :h, :w].contiguous()
    return nhwc.permute(0, 3, 1, 2)
