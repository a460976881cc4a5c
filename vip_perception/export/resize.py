"""ViP's upsampling as one ONNX ``Resize`` (linear, ``asymmetric`` coordinates) [+ ``Slice``].

With scale 2 and asymmetric coordinates, output index i samples input position i/2: even
indices hit a sample exactly (copy), odd ones fall halfway (average; four on the diagonal),
and the last odd index of an even size samples h-0.5 whose right neighbour is clamped to the
edge, i.e. the copied last row/column. That is ViP exactly; an odd target size is the first
2h-1 rows/columns. In eager mode this is plain ``vip_upsample``.
"""
from __future__ import annotations

import torch

from vip_perception.vip import vip_upsample

__all__ = ["resize_vip"]


class _ResizeViP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, H: int, W: int) -> torch.Tensor:  # noqa: N803 - sizes
        return vip_upsample(x, (H, W))

    @staticmethod
    def symbolic(g, x, H: int, W: int):  # noqa: N803
        roi = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
        scales = g.op("Constant", value_t=torch.tensor([1.0, 1.0, 2.0, 2.0], dtype=torch.float32))
        y = g.op("Resize", x, roi, scales, mode_s="linear", coordinate_transformation_mode_s="asymmetric")
        starts = g.op("Constant", value_t=torch.tensor([0, 0], dtype=torch.int64))
        ends = g.op("Constant", value_t=torch.tensor([H, W], dtype=torch.int64))
        axes = g.op("Constant", value_t=torch.tensor([2, 3], dtype=torch.int64))
        return g.op("Slice", y, starts, ends, axes)  # (N, C, H, W); a no-op slice for even sizes


def resize_vip(x: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """vip_upsample(x, out_size) that exports to ONNX as Resize(linear, asymmetric)."""
    H, W = (int(v) for v in out_size)
    return _ResizeViP.apply(x, H, W)  # (N, C, H, W)
