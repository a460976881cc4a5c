"""Max-pooling of a ViP-interpolated map, computed from the small map alone.

A 2x2/stride-2 pooling window at (i, j) of the ViP map covers full positions (2i, 2i+1) x
(2j, 2j+1), whose values are s[i,j], avg(s[i,j], s[i,j+1]), avg(s[i,j], s[i+1,j]) and the
average of the four; a missing next neighbour (even full size, last window) is the copied
value, i.e. the average of a value with itself, which is exact in floating point. So the
pooled map needs only the small map and a few elementwise ops: the full-size map (4x the
memory of the small one) is never written nor read back, which is what made ViP+pool
memory-bound. Floor mode, no padding, as in VGG's ``MaxPool2d(2, 2)``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vip_perception.vip import vip_upsample
from vip_perception.vip.upsample import check_vip_size

__all__ = ["is_fusable_pool", "vip_max_pool2d", "vip_max_pool2d_reference"]


def is_fusable_pool(pool: nn.Module) -> bool:
    """True for a plain 2x2, stride-2, unpadded, floor-mode max-pooling (VGG's)."""
    if not isinstance(pool, nn.MaxPool2d):
        return False
    pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)  # noqa: E731
    return (
        pair(pool.kernel_size) == (2, 2)
        and pair(pool.stride or pool.kernel_size) == (2, 2)
        and pair(pool.padding) == (0, 0)
        and pair(pool.dilation) == (1, 1)
        and not pool.ceil_mode
        and not pool.return_indices
    )


def _pair_and_mean(x: torch.Tensor, dim: int, full: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Along `dim`: the even-position values and the odd-position averages of each pooled window.

    Returns two tensors of length full // 2 along `dim`.
    """
    small = x.shape[dim]
    pooled = full // 2
    first = x.narrow(dim, 0, pooled)
    if full == 2 * small:  # last window's odd position copies: avg(v, v) == v exactly
        nxt = torch.cat([x.narrow(dim, 1, small - 1), x.narrow(dim, small - 1, 1)], dim)
    else:  # full == 2 * small - 1: every window has a next neighbour
        nxt = x.narrow(dim, 1, pooled)
    return first, (first + nxt) * 0.5


def vip_max_pool2d(small: torch.Tensor, full_size: tuple[int, int]) -> torch.Tensor:
    """max_pool2d(vip_upsample(small, full_size), 2, 2) without the full-size map.

    small: (N, C, h, w); full_size: (H, W) with H in {2h-1, 2h}; returns (N, C, H//2, W//2).
    """
    if small.dim() != 4:
        raise ValueError(f"vip_max_pool2d expects (N, C, h, w), got shape {tuple(small.shape)}")
    H, W = (int(v) for v in full_size)
    check_vip_size(small.shape[-2], H, "height")
    check_vip_size(small.shape[-1], W, "width")
    if H < 2 or W < 2:
        raise ValueError(f"vip_max_pool2d: full size {(H, W)} is smaller than the 2x2 window")
    top, bottom = _pair_and_mean(small, 2, H)  # each (N, C, H//2, w): rows 2i and 2i+1
    tl, tr = _pair_and_mean(top, 3, W)  # each (N, C, H//2, W//2)
    bl, br = _pair_and_mean(bottom, 3, W)  # each (N, C, H//2, W//2)
    return torch.maximum(torch.maximum(tl, tr), torch.maximum(bl, br))  # (N, C, H//2, W//2)


def vip_max_pool2d_reference(small: torch.Tensor, full_size: tuple[int, int]) -> torch.Tensor:
    """The unfused definition: materialise the ViP map, then pool it."""
    return F.max_pool2d(vip_upsample(small, full_size), 2, 2)

