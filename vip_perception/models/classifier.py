"""Classifier CNNs built from a ModelSpec.

Every conv sits in an ``nn.Sequential`` directly followed by its BN and ReLU, so ViP can be
applied by module name and fold them in (ViP goes after BN+ReLU); a residual block's last
conv is followed by BN only, so ViP lands before the addition.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .spec import ModelSpec


def _conv_unit(prefix: str, cin: int, cout: int, k: int, stride: int, bn: bool, relu: bool) -> list:
    items = [(f"conv{prefix}", nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=not bn))]
    if bn:
        items.append((f"bn{prefix}", nn.BatchNorm2d(cout)))
    if relu:
        items.append((f"relu{prefix}", nn.ReLU(inplace=True)))
    return items


class BasicBlock(nn.Module):
    """ResNet basic block: body = conv-bn-relu-conv-bn, then add the shortcut and ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, k: int):
        super().__init__()
        self.body = nn.Sequential(OrderedDict(
            _conv_unit("1", cin, cout, k, stride, True, True) + _conv_unit("2", cout, cout, k, 1, True, False)
        ))
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(OrderedDict([
                ("conv", nn.Conv2d(cin, cout, 1, stride=stride, bias=False)),
                ("bn", nn.BatchNorm2d(cout)),
            ]))
        else:
            self.shortcut = nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))  # (N, cout, H/stride, W/stride)


class Classifier(nn.Module):
    """features (conv stages) -> head (pool/flatten + linear) -> logits (N, num_classes)."""

    def __init__(self, features: nn.Sequential, head: nn.Sequential):
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (N, C, H, W) -> (N, num_classes)


def _plain_features(spec: ModelSpec) -> tuple[nn.Sequential, int, tuple[int, int]]:
    stages, cin = OrderedDict(), spec.in_channels
    h, w = spec.input_size
    for si, widths in enumerate(spec.stages, start=1):
        items = []
        for li, cout in enumerate(widths, start=1):
            items += _conv_unit(str(li), cin, cout, spec.kernel_size, 1, spec.batch_norm, True)
            cin = cout
        if si < len(spec.stages):
            pool = nn.MaxPool2d(2) if spec.pool == "max" else nn.AvgPool2d(2)
            items.append(("pool", pool))
            h, w = h // 2, w // 2
        stages[f"s{si}"] = nn.Sequential(OrderedDict(items))
    return nn.Sequential(stages), cin, (h, w)


def _resnet_features(spec: ModelSpec) -> tuple[nn.Sequential, int, tuple[int, int]]:
    stem_w = spec.stem or spec.stages[0][0]
    parts = OrderedDict(stem=nn.Sequential(OrderedDict(
        _conv_unit("", spec.in_channels, stem_w, spec.kernel_size, 1, True, True))))
    cin = stem_w
    h, w = spec.input_size
    for si, widths in enumerate(spec.stages, start=1):
        blocks = OrderedDict()
        for bi, cout in enumerate(widths, start=1):
            stride = 2 if (si > 1 and bi == 1) else 1
            if stride == 2:
                h, w = (h + 1) // 2, (w + 1) // 2
            blocks[f"b{bi}"] = BasicBlock(cin, cout, stride, spec.kernel_size)
            cin = cout
        parts[f"s{si}"] = nn.Sequential(blocks)
    return nn.Sequential(parts), cin, (h, w)


def build_model(spec: ModelSpec) -> nn.Module:
    """A freshly initialised classifier for ``spec`` (train mode, float32, CPU)."""
    spec.validate()
    build = _plain_features if spec.family == "plain" else _resnet_features
    features, cout, (h, w) = build(spec)
    head: list = []
    if spec.head == "gap":
        head += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]
        feat = cout
    else:
        head += [("flatten", nn.Flatten())]
        feat = cout * h * w
        if spec.hidden:
            head += [("fc1", nn.Linear(feat, spec.hidden)), ("relu", nn.ReLU(inplace=True))]
            feat = spec.hidden
    if spec.dropout:
        head.append(("dropout", nn.Dropout(spec.dropout)))
    head.append(("fc", nn.Linear(feat, spec.num_classes)))
    return Classifier(features, nn.Sequential(OrderedDict(head)))
