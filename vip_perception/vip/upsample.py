"""The exact ViP upsampling ("Interp" in the authors' Caffe code), fast path and reference.

A stride-2 convolution with the original padding computes exactly the even positions of the
stride-1 output, so ViP rebuilds the full map from them: even positions copy the small map,
odd positions average their two computed neighbours (four on the diagonal), and a last
row/column that has no next neighbour (even output size) copies the previous one. This is
*not* ``F.interpolate(scale_factor=2, align_corners=False)``, which shifts by half a pixel.

Two implementations, chosen per call:
- fast path (inference): the output is four interleaved phases (even/odd row x even/odd
  column); each is written once, in place, by one elementwise kernel reading the small map
  (replicate-padded by one row/column so a copied last row/column is just another average).
  No intermediate full-size tensor, any memory format. Not differentiable (``out=``).
- plain path (autograd, tracing, ONNX export): bilinear with ``align_corners=True`` to (2h-1, 2w-1) puts every
  small-map sample on an even position and every odd position halfway between two, i.e.
  exactly the averages above; an even target then replicates the last row/column.
Both equal the reference up to floating-point rounding; even positions are bit-exact copies.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["SUPPORTED_DTYPES", "check_vip_size", "vip_upsample", "vip_upsample_reference"]

# Dtypes the fast path is tested with (CPU bilinear kernels exist for these).
SUPPORTED_DTYPES = (torch.float32, torch.float64, torch.bfloat16)


def check_vip_size(small: int, full: int, axis: str = "size") -> None:
    """Check that a small-map length can be expanded to `full` by ViP (full = 2*small-1 or 2*small)."""
    if small < 1 or full not in (2 * small - 1, 2 * small):
        raise ValueError(
            f"ViP upsampling cannot expand {axis} {small} to {full}: the target must be "
            f"2*{small}-1={2 * small - 1} or 2*{small}={2 * small} (the stride-1 output size)"
        )


def _check(x: torch.Tensor, out_size: tuple[int, int]) -> tuple[int, int]:
    if x.dim() != 4:
        raise ValueError(f"vip_upsample expects a 4-D tensor (N, C, h, w), got shape {tuple(x.shape)}")
    if x.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"vip_upsample supports dtypes {SUPPORTED_DTYPES}, got {x.dtype}")
    H, W = (int(s) for s in out_size)
    check_vip_size(x.shape[-2], H, "height")
    check_vip_size(x.shape[-1], W, "width")
    return H, W


def vip_upsample(x: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """Expand the small map x (N, C, h, w) to (N, C, H, W) with ViP's interpolation.

    Keeps channels-last input channels-last; differentiable; dtypes: SUPPORTED_DTYPES.
    """
    H, W = _check(x, out_size)
    if (x.requires_grad and torch.is_grad_enabled()) or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return _upsample_autograd(x, H, W)  # autograd, and exporters (Resize + Pad in ONNX)
    return _upsample_phases(x, H, W)


def _upsample_phases(x: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """Inference fast path: write the four output phases in place."""
    n, c, h, w = x.shape
    h1, w1 = H - h, W - w  # number of odd rows / columns (h-1 or h)
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty((n, c, H, W), dtype=x.dtype, device=x.device, memory_format=fmt)  # (N, C, H, W)
    out[:, :, 0::2, 0::2] = x  # even rows, even columns: the computed values
    if h1 == 0 and w1 == 0:
        return out
    xp = F.pad(x, (0, 1, 0, 1), mode="replicate") if (h1 == h or w1 == w) else x  # (N, C, h+1, w+1) when even
    half = xp * 0.5  # a/2 + b/2 == (a + b)/2 exactly (powers of two), so one add per phase
    if w1:  # even rows, odd columns: mean of left and right
        torch.add(half[:, :, :h, :w1], half[:, :, :h, 1 : w1 + 1], out=out[:, :, 0::2, 1::2])
    if h1:  # odd rows, even columns: mean of up and down
        torch.add(half[:, :, :h1, :w], half[:, :, 1 : h1 + 1, :w], out=out[:, :, 1::2, 0::2])
    if h1 and w1:  # odd rows, odd columns: mean of the two horizontal means
        quarter = torch.add(half[:, :, : h1 + 1, :w1], half[:, :, : h1 + 1, 1 : w1 + 1]).mul_(0.5)  # (N, C, h1+1, w1)
        torch.add(quarter[:, :, :h1], quarter[:, :, 1 : h1 + 1], out=out[:, :, 1::2, 1::2])
    return out


def _upsample_autograd(x: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """Differentiable path: align-corners bilinear to (2h-1, 2w-1), then replicate the edge."""
    h, w = x.shape[-2:]
    y = F.interpolate(x, size=(2 * h - 1, 2 * w - 1), mode="bilinear", align_corners=True)  # (N, C, 2h-1, 2w-1)
    pad_h, pad_w = H - (2 * h - 1), W - (2 * w - 1)
    if pad_h or pad_w:
        y = F.pad(y, (0, pad_w, 0, pad_h), mode="replicate")  # (N, C, H, W), last row/col copied
    return y


def _sources(i: int, small: int) -> list[int]:
    """Small-map indices whose average gives output index i along one axis."""
    k = i // 2
    if i % 2 == 0:
        return [k]
    return [k, k + 1] if k + 1 < small else [k]  # no next neighbour: copy the previous value


def vip_upsample_reference(x: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """Slow, obviously correct loop over output positions; averages in float64, rounds once."""
    H, W = _check(x, out_size)
    h, w = x.shape[-2:]
    x64 = x.to(torch.float64)
    out = torch.empty(x.shape[0], x.shape[1], H, W, dtype=torch.float64)
    for i in range(H):
        rows = _sources(i, h)
        for j in range(W):
            cols = _sources(j, w)
            vals = [x64[:, :, r, c] for r in rows for c in cols]  # each (N, C)
            out[:, :, i, j] = sum(vals) / len(vals)
    return out.to(x.dtype)
