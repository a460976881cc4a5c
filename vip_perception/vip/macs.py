"""Multiply-accumulate counts from torch.utils.flop_counter, per layer, and ViP's reduction.

We count with PyTorch's own FlopCounterMode instead of a hand-written counter so any model and
input size is covered and the numbers match what others measure. MACs = FLOPs / 2. Ops without
a FLOP formula (interpolation, pooling, BN, activations) count as zero, which is the usual
convention and keeps ViP's cheap interpolation out of the ratio. A model built under
``torch.device("meta")`` is counted without computing anything.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["MacReport", "MacReduction", "LayerReduction", "count_macs", "compare_macs"]


@dataclass
class MacReport:
    total: int  # whole model, one forward pass
    per_layer: dict[str, int]  # leaf compute modules (module names) -> MACs, forward order


@dataclass
class LayerReduction:
    original: int  # MACs of the layer in the original model
    vip: int  # MACs of the same-named layer in the ViP model
    ratio: float  # original / vip (inf when vip is 0)


@dataclass
class MacReduction:
    original: MacReport
    vip: MacReport
    ratio: float  # original.total / vip.total: the "mac_ratio" of benchmarks
    per_layer: dict[str, LayerReduction] = field(default_factory=dict)  # only layers that changed


def _input_for(model: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4:
        raise ValueError(f"input_shape must be (C, H, W) or (N, C, H, W), got {input_shape}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    return torch.zeros(shape, device=device, dtype=dtype)


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> MacReport:
    """MACs of one forward pass of `model` on a zero input of `input_shape` ((C,H,W) means batch 1)."""
    x = _input_for(model, input_shape)
    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()
    try:
        with counter, torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
    counts = counter.get_flop_counts()  # "Root.child.grandchild" -> {op: flops}; also "Global"
    root = type(model).__name__
    flops: dict[str, int] = {}
    for key, ops in counts.items():
        if key == "Global" or not key.startswith(root + "."):
            continue
        flops[key[len(root) + 1 :]] = int(sum(ops.values()))
    # Keep leaves: a module none of whose counted descendants carries FLOPs.
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    leaves = [n for n in flops if not any(o.startswith(n + ".") for o in flops)]
    leaves.sort(key=lambda n: order.get(n, len(order)))
    total = int(sum(counts.get("Global", {}).values())) // 2
    return MacReport(total=total, per_layer={n: flops[n] // 2 for n in leaves})


def compare_macs(original: nn.Module, vip: nn.Module, input_shape: tuple[int, ...]) -> MacReduction:
    """Per-layer and total MAC reduction of a ViP model against its original."""
    a, b = count_macs(original, input_shape), count_macs(vip, input_shape)
    per_layer = {}
    for name, macs in a.per_layer.items():
        new = b.per_layer.get(name, 0)
        if new != macs:
            per_layer[name] = LayerReduction(macs, new, macs / new if new else float("inf"))
    return MacReduction(a, b, a.total / b.total if b.total else float("inf"), per_layer)
