"""Convolutions with oneDNN weights reordered once instead of on every call.

Eager ``F.conv2d`` reorders the weight into oneDNN's blocked layout on every call. That is
noise for a large early layer but, measured here, about half the time of a 512x512 3x3
convolution on a 7x7 map: exactly the layers whose multiply-adds ViP cuts by 4x, so the
reorder caps ViP's realised speedup. ``PackedConv2d`` reorders once per input shape and runs
``torch.ops.mkldnn._convolution_pointwise`` (what torch.compile's freezing emits) with the
following ReLU fused. It is the same arithmetic (equal up to float rounding) and applies to any
model: ``pack_convs(original)`` is a baseline variant in the benchmarks, so this optimisation
is never given to ViP alone. Falls back to ``F.conv2d`` wherever oneDNN is unavailable, the
input is not a channels-last float32 CPU tensor, or while exporting / tracing / compiling.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["PackedConv2d", "pack_convs", "packing_available"]

MAX_SHAPES = 8  # packed weights kept per module (one per input shape seen)


def packing_available() -> bool:
    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


class _PackCache(dict):
    """Shape -> packed weight. Opaque oneDNN tensors are not copied: a copy repacks lazily."""

    def __deepcopy__(self, memo):
        return _PackCache()

    def __reduce__(self):
        return (_PackCache, ())


class PackedConv2d(nn.Module):
    """conv2d(x, weight, bias, stride, padding, groups) [+ ReLU], weights packed once per input shape."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride=(1, 1), padding=(0, 0),
                 groups: int = 1, relu: bool = False):
        super().__init__()
        self.register_buffer("weight", weight.detach().clone())  # (Co, Ci/g, kh, kw)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())  # (Co,)
        self.stride = [int(s) for s in _pair(stride)]
        self.padding = [int(p) for p in _pair(padding)]
        self.groups = int(groups)
        self.relu = bool(relu)
        self._packed = _PackCache()

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, relu: bool = False, stride=None) -> "PackedConv2d":
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str) or tuple(conv.dilation) != (1, 1):
            raise ValueError(f"PackedConv2d needs zero numeric padding and no dilation, got {conv}")
        return cls(conv.weight, conv.bias, stride or conv.stride, conv.padding, conv.groups, relu)

    def _usable(self, x: torch.Tensor) -> bool:
        return (
            x.device.type == "cpu" and x.dtype == torch.float32 and self.weight.dtype == torch.float32
            and x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
            and not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export()
            and not torch.compiler.is_compiling() and not (torch.is_grad_enabled() and x.requires_grad)
            and packing_available()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, Ci, H, W)
        if not self._usable(x):
            y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, self.groups)
            return F.relu(y) if self.relu else y
        key = tuple(x.shape)
        packed = self._packed.get(key)
        if packed is None:
            if len(self._packed) >= MAX_SHAPES:  # varying input sizes: keep memory bounded
                self._packed.clear()
            w = self.weight.contiguous(memory_format=torch.channels_last)
            packed = torch.ops.mkldnn._reorder_convolution_weight(
                w, self.padding, self.stride, [1, 1], self.groups, list(key))
            self._packed[key] = packed
        return torch.ops.mkldnn._convolution_pointwise(
            x, packed, self.bias, self.padding, self.stride, [1, 1], self.groups,
            "relu" if self.relu else "none", [], "")  # (N, Co, H', W') channels-last

    def extra_repr(self) -> str:
        k = tuple(self.weight.shape)
        return f"weight={k}, stride={self.stride}, padding={self.padding}, groups={self.groups}, relu={self.relu}"


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _packable(conv: nn.Module) -> bool:
    return (type(conv) is nn.Conv2d and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
            and tuple(conv.dilation) == (1, 1))


def pack_convs(model: nn.Module) -> nn.Module:
    """A copy of `model` whose plain Conv2d modules (+ a directly following ReLU in a Sequential)
    run as PackedConv2d. For inference: packed weights are snapshots."""
    new = copy.deepcopy(model)
    for parent in list(new.modules()):
        keys = list(parent._modules)
        for i, key in enumerate(keys):
            conv = parent._modules[key]
            if not _packable(conv):
                continue
            relu = (isinstance(parent, nn.Sequential) and i + 1 < len(keys)
                    and type(parent._modules[keys[i + 1]]) is nn.ReLU)
            parent._modules[key] = PackedConv2d.from_conv(conv, relu=relu)
            if relu:
                parent._modules[keys[i + 1]] = nn.Identity()
    return new
