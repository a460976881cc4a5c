"""Faster R-CNN (torchvision) on a small VGG-style backbone of our own, from a JSON-able spec.

Why our own backbone: no pretrained weights can be downloaded here, and a light backbone trains
from scratch on 2 CPU cores. Every backbone conv sits in ``backbone.features`` directly followed
by BN and ReLU, so ``apply_vip(detector, ["backbone.features.N", ...])`` works by module name
exactly as for the classifiers. Anchors come from the training boxes' size and aspect-ratio
quantiles (``fit_anchors``), and the transform's min/max size equal the scene size, so images
are never resized. Heads are kept small (few proposals, a narrow box MLP) so that the backbone,
which ViP accelerates, takes most of the time, as in the paper's VGG16 Faster R-CNN.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
from torch import nn


@dataclass
class DetectorSpec:
    """One detector architecture; ``build_detector`` turns it into a torchvision FasterRCNN."""

    # conv widths; 2x2 max-pool between stages
    stages: list[list[int]] = field(default_factory=lambda: [[16], [32, 32], [64, 64], [128, 64]])
    in_channels: int = 1                      # grey scenes
    num_classes: int = 10                     # object classes (background is added inside)
    image_size: tuple[int, int] = (240, 320)  # (height, width): transform min/max size, no resize
    image_mean: tuple = (0.12,)               # per channel, [0, 1] pixel units
    image_std: tuple = (0.16,)
    anchor_sizes: tuple = (24.0, 36.0, 52.0)  # pixels (sqrt of area); fitted with fit_anchors
    aspect_ratios: tuple = (0.7, 1.0, 1.4)    # h / w
    representation: int = 256                 # box head MLP width
    roi_output: int = 7                       # RoIAlign output side
    rpn_pre_nms_train: int = 600
    rpn_post_nms_train: int = 300
    rpn_pre_nms_test: int = 200
    rpn_post_nms_test: int = 50               # at most 8 garments per scene
    box_batch_per_image: int = 128
    # low, as COCO evaluation expects; consumers filter (to_detections min_score)
    box_score_thresh: float = 0.001
    box_detections_per_img: int = 50

    def __post_init__(self):
        self.stages = [[int(w) for w in s] for s in self.stages]
        self.image_size = tuple(int(v) for v in self.image_size)
        self.image_mean, self.image_std = tuple(self.image_mean), tuple(self.image_std)
        self.anchor_sizes, self.aspect_ratios = tuple(self.anchor_sizes), tuple(self.aspect_ratios)
        if not self.stages or any(not s or min(s) <= 0 for s in self.stages):
            raise ValueError(f"DetectorSpec.stages must be non-empty lists of positive widths, got {self.stages}")
        if (self.in_channels not in (1, 3) or len(self.image_mean) != self.in_channels
                or len(self.image_std) != self.in_channels):
            raise ValueError(f"DetectorSpec: in_channels {self.in_channels} needs that many "
                             "image_mean/image_std values")
        if not self.anchor_sizes or not self.aspect_ratios:
            raise ValueError("DetectorSpec: anchor_sizes and aspect_ratios must be non-empty")

    @property
    def stride(self) -> int:
        return 2 ** (len(self.stages) - 1)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("image_size", "image_mean", "image_std", "anchor_sizes", "aspect_ratios"):
            d[k] = list(d[k])
        d["family"] = "faster_rcnn_vgg"
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DetectorSpec":
        d = {k: v for k, v in d.items() if k != "family"}
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"DetectorSpec: unknown keys {unknown}")
        return cls(**d)


class MaxPool2x2(nn.Module):
    """2x2 max-pooling, stride 2 (floor mode): nn.MaxPool2d(2, 2) exactly, computed as the maximum
    of four strided views.

    Why: on CPU with channels-first tensors ``max_pool2d`` takes the generic with-indices kernel,
    about 10x slower here than four strided maxima (6.7 vs 0.7 ms at 16x240x320, 1 thread) and a
    quarter of the parent backbone's time. Pooling is not what ViP accelerates, so leaving it slow
    would hide ViP's effect behind a fixed cost. No parameters: state_dict keys are unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, C, H//2, W//2)
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        x = x[..., :h, :w]
        return torch.maximum(torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2]),
                             torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2]))


class VGGBackbone(nn.Module):
    """Conv-BN-ReLU stages with max-pooling between them; one feature map at stride 2**(stages-1)."""

    def __init__(self, stages: list[list[int]], in_channels: int):
        super().__init__()
        layers, cin = [], in_channels
        for si, stage in enumerate(stages):
            if si > 0:
                layers.append(MaxPool2x2())
            for w in stage:
                layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                cin = w
        self.features = nn.Sequential(*layers)
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        return OrderedDict([("0", self.features(x))])  # (N, C, H/stride, W/stride)


def build_detector(spec: DetectorSpec) -> nn.Module:
    """torchvision FasterRCNN with a VGGBackbone, the spec's anchors and small heads."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    backbone = VGGBackbone(spec.stages, spec.in_channels)
    anchors = AnchorGenerator(sizes=(tuple(float(s) for s in spec.anchor_sizes),),
                              aspect_ratios=(tuple(float(r) for r in spec.aspect_ratios),))
    roi = MultiScaleRoIAlign(featmap_names=["0"], output_size=spec.roi_output, sampling_ratio=2)
    c = backbone.out_channels
    h, w = spec.image_size
    return FasterRCNN(
        backbone, num_classes=None, min_size=min(h, w), max_size=max(h, w),
        image_mean=list(spec.image_mean), image_std=list(spec.image_std),
        rpn_anchor_generator=anchors, box_roi_pool=roi,
        box_head=TwoMLPHead(c * spec.roi_output ** 2, spec.representation),
        box_predictor=FastRCNNPredictor(spec.representation, spec.num_classes + 1),
        rpn_pre_nms_top_n_train=spec.rpn_pre_nms_train, rpn_post_nms_top_n_train=spec.rpn_post_nms_train,
        rpn_pre_nms_top_n_test=spec.rpn_pre_nms_test, rpn_post_nms_top_n_test=spec.rpn_post_nms_test,
        box_batch_size_per_image=spec.box_batch_per_image, box_score_thresh=spec.box_score_thresh,
        box_detections_per_img=spec.box_detections_per_img,
    )


class DetectorCall(nn.Module):
    """(1, C, H, W) -> the detector's output for that one image (transform, RPN, heads, NMS):
    the batch-1 tensor call that latency profiles time (torchvision takes a list of images)."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector.eval()

    def forward(self, x: torch.Tensor):
        return self.detector([x[0]])  # list of one (C, H, W) image


class BackboneCall(nn.Module):
    """(1, C, H, W) -> backbone feature map (1, C', H/s, W/s): the part ViP accelerates, timed
    by itself on the same input."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.backbone = detector.backbone.eval()

    def forward(self, x: torch.Tensor):
        return self.backbone(x)


def backbone_layer_names(model: nn.Module) -> list[str]:
    """ViP-able backbone convolutions (module names inside the detector), forward order."""
    from ..vip import vip_layer_names

    return [n for n in vip_layer_names(model) if n.startswith("backbone.features.")]


def fit_anchors(sizes: np.ndarray, ratios: np.ndarray, n_sizes: int = 3, n_ratios: int = 3) -> tuple[tuple, tuple]:
    """Anchor sizes and h/w ratios at evenly spaced quantiles of the boxes (10th..90th percentile).

    Quantiles rather than k-means: a handful of numbers that cover the spread, are deterministic
    and are easy to read back from the manifest.
    """
    qs = np.linspace(10, 90, n_sizes) if n_sizes > 1 else [50]
    qr = np.linspace(10, 90, n_ratios) if n_ratios > 1 else [50]
    s = tuple(round(float(v), 1) for v in np.percentile(sizes, qs))
    r = tuple(round(float(v), 2) for v in np.percentile(ratios, qr))
    return s, r
