"""Folding ViP's interpolation into the convolution that reads it (exact: both are linear).

Along one axis the ViP map is F[2o] = s[o], F[2o+1] = (s[o] + s[o+1]) / 2. A 3-tap
convolution w (padding 1) that reads F therefore reads s through fixed 2x3 / 3x3 matrices:

- at stride 2 (a ViP convolution after a ViP layer), output o reads F[2o-1], F[2o], F[2o+1]
  = taps (w0/2, w0/2 + w1 + w2/2, w2/2) on s[o-1], s[o], s[o+1]: one stride-1 3x3
  convolution on the small map (FOLD_STRIDE2);
- at stride 1, even outputs read the same as above and odd outputs 2o+1 read
  (w0 + w1/2, w1/2 + w2) on s[o], s[o+1]; in 2-D that is four phase convolutions
  (3x3, 3x2, 2x3, 2x2: 25 taps instead of 36) whose outputs interleave.

Borders: zero padding of F and the copied last row/column are reproduced by extending s by
one sample each side: F[-1] = 0 = avg(s[-1], s[0]) needs s[-1] = -s[0]; a copied last
value (even full size) needs s[h] = s[h-1]; a zero beyond an odd full size needs
s[h] = -s[h-1]. The one case an extension cannot express is the last odd output at stride 1
for an even size (it must read F[2h-1] = s[h-1] and F[2h] = 0); that row/column is
recomputed directly from a one-sample strip of the small map. 1x1 convolutions commute with
ViP and need no folding at all.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vip_perception.vip import vip_upsample
from vip_perception.vip.upsample import check_vip_size

from .native import upsample
from .packed import PackedConv2d

__all__ = [
    "FOLD_ODD",
    "FOLD_STRIDE2",
    "PhaseConv",
    "conv_after_vip",
    "conv_after_vip_reference",
    "extend_small",
    "fold_stride2_weight",
    "foldable_reason",
    "vip_conv_after_vip",
    "vip_conv_after_vip_reference",
]

# Rows: taps on s[o-1], s[o], s[o+1]; columns: taps w0, w1, w2 of the original kernel.
FOLD_STRIDE2 = ((0.5, 0.0, 0.0), (0.5, 1.0, 0.5), (0.0, 0.0, 0.5))
# Odd outputs at stride 1. Rows: taps on s[o], s[o+1].
FOLD_ODD = ((1.0, 0.5, 0.0), (0.0, 0.5, 1.0))


def foldable_reason(conv: nn.Module) -> str | None:
    """None if `conv` can be folded onto a ViP map, else why not (for error messages)."""
    if not isinstance(conv, nn.Conv2d):
        return f"{type(conv).__name__} is not nn.Conv2d"
    if conv.padding_mode != "zeros":
        return f"padding_mode={conv.padding_mode!r} (only zero padding is folded)"
    if tuple(conv.dilation) != (1, 1):
        return f"dilation {tuple(conv.dilation)}"
    k, p = tuple(conv.kernel_size), conv.padding
    p = (1, 1) if p == "same" and k == (3, 3) else (0, 0) if p in ("same", "valid") and k == (1, 1) else p
    if (k, tuple(p) if not isinstance(p, str) else p) not in (((3, 3), (1, 1)), ((1, 1), (0, 0))):
        return f"kernel {k} with padding {conv.padding} (folded: 3x3 padding 1, 1x1 padding 0)"
    return None


def _matrix(rows, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


def _fold(weight: torch.Tensor, rows_h, rows_w) -> torch.Tensor:
    """weight (Co, Ci, 3, 3) -> (Co, Ci, len(rows_h), len(rows_w)): A_h W A_w^T per channel pair."""
    a, b = _matrix(rows_h, weight), _matrix(rows_w, weight)
    return torch.einsum("at,oitu,bu->oiab", a, weight, b).contiguous()


def fold_stride2_weight(weight: torch.Tensor) -> torch.Tensor:
    """3x3 kernel of a stride-2 conv on a ViP map -> 3x3 kernel of a stride-1 conv on the small map."""
    return _fold(weight, FOLD_STRIDE2, FOLD_STRIDE2)


class PhaseConv(nn.Module):
    """A stride-1 3x3 (or 1x1) convolution [+ ReLU] that reads a ViP map, run on its small map.

    Holds the four phase kernels (3x3, 3x2, 2x3, 2x2) and the two border-strip kernels as
    PackedConv2d (weights packed once on channels-last CPU input, F.conv2d otherwise).
    forward(small (N, C, h, w), full_size (H, W)) -> (N, Co, H, W).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, groups: int = 1, relu: bool = False):
        super().__init__()
        w = weight.detach()
        if w.shape[-2:] not in ((1, 1), (3, 3)):
            raise ValueError(f"PhaseConv folds 3x3 (padding 1) and 1x1 kernels, got {tuple(w.shape[-2:])}")
        self.relu = relu
        conv = lambda k, pad: PackedConv2d(k, bias, 1, pad, groups, relu)  # noqa: E731
        self.full = conv(w, w.shape[-1] // 2)  # the definition: 1x1 kernels and tiny maps
        if w.shape[-2:] == (1, 1):  # 1x1 commutes with ViP: no phases
            return
        self.ee = conv(_fold(w, FOLD_STRIDE2, FOLD_STRIDE2), 0)  # (Co, Ci, 3, 3): rows 2o, cols 2o
        self.eo = conv(_fold(w, FOLD_STRIDE2, FOLD_ODD), 0)  # (Co, Ci, 3, 2): rows 2o, cols 2o+1
        self.oe = conv(_fold(w, FOLD_ODD, FOLD_STRIDE2), 0)  # (Co, Ci, 2, 3)
        self.oo = conv(_fold(w, FOLD_ODD, FOLD_ODD), 0)  # (Co, Ci, 2, 2)
        # Last output row/column of an even size reads F[H-2] = F[H-1] (the copy) and F[H] = 0.
        self.last_row = conv(w[:, :, 0:1, :] + w[:, :, 1:2, :], (0, 1))  # (Co, Ci, 1, 3)
        self.last_col = conv(w[:, :, :, 0:1] + w[:, :, :, 1:2], (1, 0))  # (Co, Ci, 3, 1)

    def forward(self, small: torch.Tensor, full_size: tuple[int, int]) -> torch.Tensor:
        H, W = _check(small, full_size)
        N, _, h, w = small.shape
        if self.full.weight.shape[-1] == 1:  # 1x1 commutes with the interpolation
            return upsample(self.full(small), (H, W))
        if h < 2 or w < 2:  # degenerate maps: nothing to gain, compute the definition
            return self.full(upsample(small, (H, W)))
        e = extend_small(small, (H, W))  # (N, C, h+2, w+2)
        ee = self.ee(e)  # (N, Co, h, w): rows 2o, cols 2o
        eo = self.eo(e)[:, :, :, 1:]  # (N, Co, h, w): rows 2o, cols 2o+1
        oe = self.oe(e)[:, :, 1:, :]  # (N, Co, h, w): rows 2o+1, cols 2o
        oo = self.oo(e)[:, :, 1:, 1:]  # (N, Co, h, w)
        row = self.last_row(upsample(small[:, :, h - 1 : h], (1, W))) if H == 2 * h else None  # (N, Co, 1, W)
        col = self.last_col(upsample(small[:, :, :, w - 1 : w], (H, 1))) if W == 2 * w else None  # (N, Co, H, 1)
        if torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
            return _interleave_traceable((H, W), ee, eo, oe, oo, row, col)
        fmt = torch.channels_last if ee.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        out = torch.empty((N, ee.shape[1], H, W), dtype=ee.dtype, device=ee.device, memory_format=fmt)  # (N, Co, H, W)
        ho, wo = H // 2, W // 2
        out[:, :, 0::2, 0::2] = ee
        out[:, :, 0::2, 1::2] = eo[:, :, :, :wo]
        out[:, :, 1::2, 0::2] = oe[:, :, :ho]
        out[:, :, 1::2, 1::2] = oo[:, :, :ho, :wo]
        if row is not None:
            out[:, :, H - 1 : H] = row
        if col is not None:
            out[:, :, :, W - 1 : W] = col
        return out


def _check(small: torch.Tensor, full_size: tuple[int, int]) -> tuple[int, int]:
    if small.dim() != 4:
        raise ValueError(f"expected a small map (N, C, h, w), got shape {tuple(small.shape)}")
    H, W = (int(v) for v in full_size)
    check_vip_size(small.shape[-2], H, "height")
    check_vip_size(small.shape[-1], W, "width")
    return H, W


def extend_small(small: torch.Tensor, full_size: tuple[int, int]) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, h+2, w+2) whose ViP map, read through the folds, equals the
    zero-padded ViP map of `small` (see the module docstring for the border values)."""
    H, W = _check(small, full_size)
    N, C, h, w = small.shape
    if torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():  # traceable: Neg/Concat, no in-place writes
        sh = 1.0 if H == 2 * h else -1.0
        sw = 1.0 if W == 2 * w else -1.0
        rows = torch.cat([-small[:, :, :1], small, sh * small[:, :, h - 1 :]], 2)  # (N, C, h+2, w)
        return torch.cat([-rows[:, :, :, :1], rows, sw * rows[:, :, :, w - 1 :]], 3)  # (N, C, h+2, w+2)
    cl = small.is_contiguous(memory_format=torch.channels_last) and C > 1
    fmt = torch.channels_last if cl else torch.contiguous_format
    e = torch.empty((N, C, h + 2, w + 2), dtype=small.dtype, device=small.device, memory_format=fmt)  # (N, C, h+2, w+2)
    e[:, :, 1 : h + 1, 1 : w + 1] = small
    e[:, :, 0, 1 : w + 1].copy_(-small[:, :, 0])  # F[-1] = 0
    last = small[:, :, h - 1]  # (N, C, w)
    e[:, :, h + 1, 1 : w + 1].copy_(last if H == 2 * h else -last)
    e[:, :, :, 0].copy_(-e[:, :, :, 1])
    right = e[:, :, :, w]
    e[:, :, :, w + 1].copy_(right if W == 2 * w else -right)
    return e


def vip_conv_after_vip(small: torch.Tensor, full_size: tuple[int, int], folded: torch.Tensor,
                       bias: torch.Tensor | None, groups: int = 1) -> torch.Tensor:
    """conv2d(vip_upsample(small, full_size), W, stride=2, padding=1) from the small map.

    folded = fold_stride2_weight(W) for a 3x3 kernel, or W itself for a 1x1 kernel.
    Returns (N, Co, h, w) = the stride-2 output size ceil(H/2) x ceil(W/2).
    """
    if folded.shape[-1] == 1:  # 1x1, padding 0: stride 2 reads the even positions = small itself
        _check(small, full_size)
        return F.conv2d(small, folded, bias, 1, 0, 1, groups)
    return F.conv2d(extend_small(small, full_size), folded, bias, 1, 0, 1, groups)  # (N, Co, h, w)


def vip_conv_after_vip_reference(small, full_size, weight, bias, groups: int = 1) -> torch.Tensor:
    pad = weight.shape[-1] // 2
    return F.conv2d(vip_upsample(small, full_size), weight, bias, 2, pad, 1, groups)


def conv_after_vip(small: torch.Tensor, full_size: tuple[int, int], weight: torch.Tensor,
                   bias: torch.Tensor | None = None, groups: int = 1) -> torch.Tensor:
    """conv2d(vip_upsample(small, full_size), W, stride=1, padding=1) from the small map.

    Four phase convolutions on the extended small map, interleaved; an even size's last
    row/column comes from a strip. Returns (N, Co, H, W). (Builds a PhaseConv each call:
    keep a PhaseConv module for repeated use.)
    """
    return PhaseConv(weight, bias, groups)(small, full_size)


def _interleave_traceable(size, ee, eo, oe, oo, row, col) -> torch.Tensor:
    """PhaseConv's interleave and border strips as Concat/Reshape/Slice (ONNX export)."""
    H, W = size
    N, Co, h, w = ee.shape
    even = torch.stack([ee, eo], 4).reshape(N, Co, h, 2 * w)  # (N, Co, h, 2w): rows 2o
    odd = torch.stack([oe, oo], 4).reshape(N, Co, h, 2 * w)  # (N, Co, h, 2w): rows 2o+1
    out = torch.stack([even, odd], 3).reshape(N, Co, 2 * h, 2 * w)[:, :, :H, :W]  # (N, Co, H, W)
    if row is not None:
        out = torch.cat([out[:, :, : H - 1], row], 2)
    if col is not None:
        out = torch.cat([out[:, :, :, : W - 1], col], 3)
    return out


def conv_after_vip_reference(small, full_size, weight, bias, groups: int = 1) -> torch.Tensor:
    pad = weight.shape[-1] // 2
    return F.conv2d(vip_upsample(small, full_size), weight, bias, 1, pad, 1, groups)
