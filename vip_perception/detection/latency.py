"""Batch-1 callables for latency profiling: the whole detector, and its backbone alone.

Why wrappers: ``bank.profile.profile_models`` times ``model(x)`` on a (1, C, H, W) tensor;
torchvision's detector takes a list of images, and the backbone share of the time (what ViP
can speed up) is only visible when the backbone is timed by itself on the same input.
"""
from __future__ import annotations

import torch
from torch import nn


class DetectorCall(nn.Module):
    """(1, C, H, W) -> the detector's output for that one image (transform, RPN, heads, NMS)."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector.eval()

    def forward(self, x: torch.Tensor):
        return self.detector([x[0]])  # list of one (C, H, W) image


class BackboneCall(nn.Module):
    """(1, C, H, W) -> backbone feature map (N, C', H/s, W/s): the part ViP accelerates."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.backbone = detector.backbone.eval()

    def forward(self, x: torch.Tensor):
        return self.backbone(x)
