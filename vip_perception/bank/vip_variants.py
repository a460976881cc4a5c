"""ViP variants of a trained parent: measure each layer's accuracy loss alone (sensitivity, no
fine-tuning), then apply ViP to groups of low-sensitivity layers and fine-tune each group
briefly from the parent (the procedure of the ViP authors)."""
from __future__ import annotations

import itertools
from collections.abc import Callable

from torch import nn


def layer_sensitivity(model: nn.Module, layers: list[str], accuracy: Callable[[nn.Module], float]) -> dict[str, float]:
    """Accuracy drop (fraction, >0 = worse) of ViP on each layer alone, without fine-tuning."""
    from ..vip import apply_vip

    base = accuracy(model)
    return {name: base - accuracy(apply_vip(model, [name])) for name in layers}


def choose_groups(sensitivity: dict[str, float], layer_macs: dict[str, int], count: int,
                  max_layers: int = 14) -> list[list[str]]:
    """Up to ``count`` ViP layer groups spread over MAC savings, each the least sensitive way there.

    For evenly spaced targets of saved MACs (ViP saves about 3/4 of a layer's MACs), pick the
    subset of layers with the smallest summed sensitivity that saves at least the target. This
    generalises the authors' growing rounds (which add low-sensitivity layers step by step) to a
    spread of speed-ups. Groups are returned in forward-order of their layers, distinct.
    """
    order = sorted(sensitivity, key=lambda n: (sensitivity[n], n))[:max_layers]
    if not order or count < 1:
        return []
    subsets = []
    for k in range(1, len(order) + 1):
        for combo in itertools.combinations(order, k):
            saving = sum(layer_macs.get(n, 0) for n in combo)
            cost = sum(max(sensitivity[n], 0.0) for n in combo) + 1e-6 * k  # ties: fewer layers
            subsets.append((saving, cost, combo))
    total = max(s for s, _, _ in subsets) or 1
    chosen: list[tuple] = []
    for i in range(1, count + 1):
        target = total * i / count
        options = [s for s in subsets if s[0] >= target * 0.999 and s[2] not in {c[2] for c in chosen}]
        if options:
            chosen.append(min(options, key=lambda s: (s[1], -s[0])))
    if len(chosen) < count:  # small parents: fill with the next least sensitive unused subsets
        rest = sorted((s for s in subsets if s[2] not in {c[2] for c in chosen}), key=lambda s: (s[1], -s[0]))
        chosen += rest[: count - len(chosen)]
    forward = {n: i for i, n in enumerate(layer_macs)}
    chosen.sort(key=lambda s: s[0])
    return [sorted(c[2], key=lambda n: forward.get(n, 0)) for c in chosen]
