"""fuse_vip: rewrite a ViP model into an exactly equivalent one that stays on small maps.

Inside every purely sequential run of modules (nested ``nn.Sequential`` included) a ViP
convolution starts a *stage*: its small map is kept, each directly following foldable ViP
convolution runs as a stride-1 convolution on the small map with folded weights, and the
stage ends in whichever is next:
- a 2x2/stride-2 max-pooling -> pooled directly from the small map (pool_fusion);
- a plain stride-1 3x3/1x1 convolution [+ ReLU] -> four phase convolutions on the small map (fold);
- a plain stride-2 3x3/1x1 convolution [+ ReLU] -> one folded stride-1 convolution (fold);
- anything else -> the ViP upsampling (native channels-last kernel when available).
The stage replaces the first module and the ones it absorbed become ``nn.Identity``, so
module names stay meaningful. Convolutions inside stages (and, with ``pack=True``, the
model's other plain convolutions) are PackedConv2d with ReLU fused where it directly follows.
Weights are snapshots taken at fusion time: the result is for inference; fuse again after
training.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from vip_perception.vip import ViPConv2d

from .fold import PhaseConv, extend_small, fold_stride2_weight, foldable_reason
from .native import max_pool, upsample
from .packed import PackedConv2d, pack_convs
from .pool_fusion import is_fusable_pool

__all__ = ["FoldedViPConv", "FusedViPStage", "fuse_vip", "fused_stages"]

TAILS = ("pool", "conv", "strided_conv", "upsample")


def _post(vip: ViPConv2d) -> tuple[bool, nn.Module | None]:
    """(fuse a ReLU into the conv, modules still to apply after it) for a ViP layer's norm/act."""
    if isinstance(vip.norm, nn.Identity) and type(vip.act) is nn.ReLU:
        return True, None
    return False, nn.Sequential(vip.norm, vip.act)


class FoldedViPConv(nn.Module):
    """A convolution reading a ViP layer's small map at stride 2 (a ViP conv after a ViP layer, or a
    plain stride-2 conv): a stride-1 conv on the (extended) small map with folded weights."""

    def __init__(self, conv: nn.Conv2d, relu: bool = False, post: nn.Module | None = None):
        super().__init__()
        w = conv.weight.detach()
        self.one_by_one = conv.kernel_size == (1, 1)
        folded = w if self.one_by_one else fold_stride2_weight(w)  # (Co, Ci/g, 3, 3) or 1x1
        self.post = post
        self.conv = PackedConv2d(folded, conv.bias, 1, 0, conv.groups, relu)

    @classmethod
    def from_vip(cls, vip: ViPConv2d) -> "FoldedViPConv":
        relu, post = _post(vip)
        return cls(vip.conv, relu, post)

    def forward(self, small: torch.Tensor, full_size: tuple[int, int]) -> torch.Tensor:
        e = small if self.one_by_one else extend_small(small, full_size)  # (N, C, h+2, w+2)
        y = self.conv(e)  # (N, Co, h, w)
        return y if self.post is None else self.post(y)


class FusedViPStage(nn.Module):
    """head ViP conv -> folded ViP convs on the small map -> tail (pool | conv | upsample)."""

    def __init__(self, head: ViPConv2d, chain: list[ViPConv2d], tail: str,
                 tail_module: nn.Module | None = None, tail_relu: bool = False):
        super().__init__()
        if tail not in TAILS:
            raise ValueError(f"tail must be one of {TAILS}, got {tail!r}")
        conv = head.conv
        if conv.padding_mode != "zeros" or tuple(conv.dilation) != (1, 1):
            raise ValueError(f"fused ViP head needs zero padding and no dilation, got {conv}")
        # the stride-1 output size is H + 2p - (k - 1): the full size of this layer's ViP map
        self.shrink = tuple(k - 1 - 2 * p for k, p in zip(conv.kernel_size, head._padding))
        relu, self.head_post = _post(head)
        self.head = PackedConv2d(conv.weight, conv.bias, 2, head._padding, conv.groups, relu)
        self.chain = nn.ModuleList(FoldedViPConv.from_vip(v) for v in chain)
        self.tail = tail
        self.phase = (PhaseConv(tail_module.weight, tail_module.bias, tail_module.groups, tail_relu)
                      if tail == "conv" else None)
        self.strided = FoldedViPConv(tail_module, tail_relu) if tail == "strided_conv" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, C, H_in, W_in)
        size = (x.shape[-2] - self.shrink[0], x.shape[-1] - self.shrink[1])  # the stride-1 (full) size
        if size[0] < 1 or size[1] < 1:
            raise ValueError(f"input {tuple(x.shape)} is too small for the fused ViP layer {self.head.extra_repr()}")
        small = self.head(x)  # (N, Co, ceil(H/2), ceil(W/2))
        if self.head_post is not None:
            small = self.head_post(small)
        for folded in self.chain:  # 3x3/p1 and 1x1 keep the full size
            small = folded(small, size)  # (N, Co', h, w)
        if self.tail == "pool":
            return max_pool(small, size)  # (N, Co, H//2, W//2)
        if self.tail == "conv":
            return self.phase(small, size)  # (N, Co, H, W)
        if self.tail == "strided_conv":
            return self.strided(small, size)  # (N, Co, ceil(H/2), ceil(W/2)): the plain conv's own output
        return upsample(small, size)  # (N, Co, H, W)

    def extra_repr(self) -> str:
        return f"folded={len(self.chain)}, tail={self.tail}"


def _leaves(seq: nn.Sequential):
    """(parent, key, module) of the leaves of a tree of Sequentials, in forward order."""
    for key, m in seq._modules.items():
        if isinstance(m, nn.Sequential):
            yield from _leaves(m)
        else:
            yield seq, key, m


def _sequential_roots(model: nn.Module):
    """Sequentials not inside another Sequential: each is one linear flow of modules."""
    if isinstance(model, nn.Sequential):
        yield model
        return
    for child in model.children():
        yield from _sequential_roots(child)


def _headable(m: nn.Module) -> bool:
    return isinstance(m, ViPConv2d) and m.conv.padding_mode == "zeros" and tuple(m.conv.dilation) == (1, 1)


def _is_plain_conv(m: nn.Module, stride: int) -> bool:
    return type(m) is nn.Conv2d and tuple(m.stride) == (stride, stride) and foldable_reason(m) is None


def _fuse_flow(root: nn.Sequential) -> None:
    leaves = [(p, k, m) for p, k, m in _leaves(root) if not isinstance(m, nn.Identity)]
    i = 0
    while i < len(leaves):
        parent, key, m = leaves[i]
        if not _headable(m):
            i += 1
            continue
        j, chain = i + 1, []
        while j < len(leaves) and isinstance(leaves[j][2], ViPConv2d) and foldable_reason(leaves[j][2].conv) is None:
            chain.append(leaves[j][2])
            j += 1
        tail, tail_module, tail_relu = "upsample", None, False
        if j < len(leaves) and is_fusable_pool(leaves[j][2]):
            tail, j = "pool", j + 1
        elif j < len(leaves) and (_is_plain_conv(leaves[j][2], 1) or _is_plain_conv(leaves[j][2], 2)):
            tail = "conv" if leaves[j][2].stride[0] == 1 else "strided_conv"
            tail_module, j = leaves[j][2], j + 1
            if j < len(leaves) and type(leaves[j][2]) is nn.ReLU:
                tail_relu, j = True, j + 1
        parent._modules[key] = FusedViPStage(m, chain, tail, tail_module, tail_relu)
        for p, k, _ in leaves[i + 1 : j]:
            p._modules[k] = nn.Identity()
        i = j


def _wrap_lone(model: nn.Module) -> None:
    """ViP convs outside any Sequential (e.g. a custom block's attribute) get an upsample-tail stage."""
    for m in list(model.modules()):
        if isinstance(m, FusedViPStage):
            continue
        for key, child in list(m._modules.items()):
            if _headable(child):
                m._modules[key] = FusedViPStage(child, [], "upsample")


def fuse_vip(model: nn.Module, pack: bool = True) -> nn.Module:
    """A new model computing the same function (up to float rounding) with fused ViP stages;
    `model` is untouched. pack=True also packs the remaining plain convolutions (pack_convs)."""
    new = copy.deepcopy(model)
    for root in list(_sequential_roots(new)):
        _fuse_flow(root)
    _wrap_lone(new)
    return pack_convs(new) if pack else new


def fused_stages(model: nn.Module) -> dict[str, str]:
    """name -> 'tail+N folded' for every fused stage: what fuse_vip did, for reports."""
    return {name: f"{m.tail}+{len(m.chain)} folded"
            for name, m in model.named_modules() if isinstance(m, FusedViPStage)}
