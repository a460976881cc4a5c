"""torchvision detectors by name, never pretrained, from a plain record: the detection
counterpart of ``torchvision_arch`` (building and ViP layers only; training and the bank's
detection task are elsewhere).

A record like ``{"arch": "fasterrcnn_resnet50_fpn", "num_classes": 10, "image_size": [240,
320]}`` rebuilds the module with ``weights=None`` and ``weights_backbone=None`` (nothing is
downloaded). ``num_classes`` counts object classes; the models get one more (torchvision's
label 0 is background, so label k + 1 is class k, as for the project's Faster R-CNN). R-CNN,
RetinaNet and FCOS get min/max size equal to the image size, so frames are not resized inside;
SSD and SSDlite resize to their fixed 300 / 320 square. ViP goes on backbone convolutions
(``backbone_vip_layers``), named inside the detector (``backbone.body.layer1.0.conv2``).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

__all__ = ["DETECTOR_ARCHS", "TorchvisionDetectorSpec", "backbone_vip_layers", "build_torchvision_detector"]

# arch -> the square side its transform resizes to (None: min/max size = the image size)
DETECTOR_ARCHS = {
    "fasterrcnn_mobilenet_v3_large_320_fpn": None,
    "fasterrcnn_mobilenet_v3_large_fpn": None,
    "fasterrcnn_resnet50_fpn": None,
    "retinanet_resnet50_fpn": None,
    "fcos_resnet50_fpn": None,
    "ssd300_vgg16": 300,
    "ssdlite320_mobilenet_v3_large": 320,
}


@dataclass
class TorchvisionDetectorSpec:
    """One torchvision detector: the manifest record that rebuilds it."""

    arch: str  # a key of DETECTOR_ARCHS
    num_classes: int = 10  # object classes (background added inside)
    image_size: tuple[int, int] = (240, 320)  # (height, width) of the frames fed, RGB

    def __post_init__(self) -> None:
        self.image_size = tuple(int(v) for v in self.image_size)
        if self.arch not in DETECTOR_ARCHS:
            raise ValueError(f"unknown torchvision detector {self.arch!r}; known: {', '.join(DETECTOR_ARCHS)}")
        if self.num_classes < 1 or min(self.image_size) < 32:
            raise ValueError(f"TorchvisionDetectorSpec: need num_classes >= 1 and image sides >= 32, got "
                             f"{self.num_classes}, {self.image_size}")

    def to_dict(self) -> dict:
        return {"arch": self.arch, "num_classes": self.num_classes, "image_size": list(self.image_size)}

    @classmethod
    def from_dict(cls, d: dict) -> "TorchvisionDetectorSpec":
        unknown = sorted(set(d) - {"arch", "num_classes", "image_size"})
        if unknown:
            raise ValueError(f"TorchvisionDetectorSpec: unknown keys {unknown}")
        return cls(**d)

    @property
    def transform_size(self) -> tuple[int, int]:
        """(height, width) the model's own transform hands to the backbone."""
        side = DETECTOR_ARCHS[self.arch]
        return (side, side) if side else self.image_size


def build_torchvision_detector(spec: TorchvisionDetectorSpec) -> nn.Module:
    """A freshly initialised torchvision detector (train mode), no pretrained weights of any part."""
    from torchvision.models import detection

    kwargs = {}
    if DETECTOR_ARCHS[spec.arch] is None:
        h, w = spec.image_size
        kwargs = {"min_size": min(h, w), "max_size": max(h, w)}
    return getattr(detection, spec.arch)(weights=None, weights_backbone=None, num_classes=spec.num_classes + 1,
                                         **kwargs)


def backbone_vip_layers(model: nn.Module, spec: TorchvisionDetectorSpec) -> list[str]:
    """ViP-able backbone convolutions (module names inside the detector), forward order; those
    on maps under 2x2 at the transform's size are left out."""
    from ..vip import vip_layer_names

    h, w = spec.transform_size
    return [f"backbone.{n}" for n in vip_layer_names(model.backbone.eval(), (1, 3, h, w))]
