"""torchvision detectors by name, never pretrained, from a plain record: the detection
counterpart of ``torchvision_arch`` (building, ViP layers and local weights; training and the
bank's detection task are elsewhere).

A record like ``{"arch": "fasterrcnn_resnet18_fpn", "num_classes": 10, "image_size": [240,
320]}`` rebuilds the module with ``weights=None`` and ``weights_backbone=None`` (nothing is
downloaded). ``num_classes`` counts object classes; the models get one more (torchvision's
label 0 is background, so label k + 1 is class k, as for the project's Faster R-CNN). R-CNN,
RetinaNet and FCOS get min/max size equal to the image size, so frames are not resized inside;
SSD and SSDlite resize to their fixed 300 / 320 square. ViP goes on backbone convolutions
(``backbone_vip_layers``), named inside the detector (``backbone.body.layer1.0.conv2``).

Architectures:
- torchvision's own builders: ``fasterrcnn_mobilenet_v3_large_320_fpn``,
  ``fasterrcnn_mobilenet_v3_large_fpn``, ``fasterrcnn_resnet50_fpn``, ``retinanet_resnet50_fpn``,
  ``fcos_resnet50_fpn``, ``ssd300_vgg16``, ``ssdlite320_mobilenet_v3_large``;
- ``fasterrcnn_resnet18_fpn`` / ``fasterrcnn_resnet34_fpn``: torchvision's FasterRCNN on
  torchvision's ResNet-FPN backbone (``resnet_fpn_backbone``, the recipe of
  ``fasterrcnn_resnet50_fpn``) with the smaller ResNets, FPN levels at strides 16, 32 (and 64
  pooled): the size that trains from scratch within a small machine's build budget. Anchors
  32-192 px, three aspect ratios.

Where ViP pays: on dense 3x3 convolutions (ResNet, VGG backbones). The MobileNetV3 backbones'
depthwise and 1x1 convolutions are supported exactly, but measured at batch 1 they are
memory-bound and ViP saves nothing there (see docs/design.md); such variants are built only on
request and, unpaid, never served (``select.vip_min_speedup``).

``proposals`` (R-CNN only) caps the region proposals kept at inference (0: the architecture's
default, 1000, or 150 for the 320 model) and ``box_representation`` the width of the box
head's two fully connected layers (0: torchvision's 1024): a frame with a handful of objects
needs neither, and they decide most of an R-CNN's time beyond the backbone.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

__all__ = ["COCO_LABELS", "DETECTOR_ARCHS", "TorchvisionDetectorSpec", "backbone_vip_layers",
           "build_torchvision_detector", "coco_class_names", "fit_detector_weights"]

# arch -> the square side its transform resizes to (None: min/max size = the image size)
DETECTOR_ARCHS = {
    "fasterrcnn_resnet18_fpn": None,
    "fasterrcnn_resnet34_fpn": None,
    "fasterrcnn_mobilenet_v3_large_320_fpn": None,
    "fasterrcnn_mobilenet_v3_large_fpn": None,
    "fasterrcnn_resnet50_fpn": None,
    "retinanet_resnet50_fpn": None,
    "fcos_resnet50_fpn": None,
    "ssd300_vgg16": 300,
    "ssdlite320_mobilenet_v3_large": 320,
}
_SMALL_RESNETS = {"fasterrcnn_resnet18_fpn": "resnet18", "fasterrcnn_resnet34_fpn": "resnet34"}
_SMALL_RESNET_ANCHORS = ((32, 48), (64, 96), (128, 192))  # one tuple per FPN level (strides 16, 32, 64)

# torchvision's COCO label map: index = the label its COCO-trained detectors output (91 entries,
# 0 is background, "N/A" marks ids COCO left unused). The same list as torchvision's weight
# metadata, kept here so a COCO checkpoint loads and serves with names without any download.
COCO_LABELS = (
    "__background__", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "N/A", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "N/A", "backpack", "umbrella", "N/A", "N/A",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
    "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "N/A", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza",
    "donut", "cake", "chair", "couch", "potted plant", "bed", "N/A", "dining table", "N/A", "N/A", "toilet",
    "N/A", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "N/A", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)


def coco_class_names() -> list[str]:
    """Class names of a COCO-trained torchvision detector served as it is: class k is label k + 1
    (so ``num_classes`` 90; unused ids keep the name "N/A")."""
    return list(COCO_LABELS[1:])


@dataclass
class TorchvisionDetectorSpec:
    """One torchvision detector: the manifest record that rebuilds it."""

    arch: str  # a key of DETECTOR_ARCHS
    num_classes: int = 10  # object classes (background added inside)
    image_size: tuple[int, int] = (240, 320)  # (height, width) of the frames fed, RGB
    proposals: int = 0  # R-CNN: region proposals kept at inference (0: the architecture's default)
    box_representation: int = 0  # R-CNN: box head width (0: torchvision's 1024)

    def __post_init__(self) -> None:
        self.image_size = tuple(int(v) for v in self.image_size)
        if self.arch not in DETECTOR_ARCHS:
            raise ValueError(f"unknown torchvision detector {self.arch!r}; known: {', '.join(DETECTOR_ARCHS)}")
        if self.num_classes < 1 or min(self.image_size) < 32:
            raise ValueError(f"TorchvisionDetectorSpec: need num_classes >= 1 and image sides >= 32, got "
                             f"{self.num_classes}, {self.image_size}")
        if self.proposals < 0 or self.box_representation < 0:
            raise ValueError(f"TorchvisionDetectorSpec: proposals and box_representation must be >= 0 (0: the "
                             f"default), got {self.proposals}, {self.box_representation}")
        if (self.proposals or self.box_representation) and not self.is_rcnn:
            raise ValueError(f"TorchvisionDetectorSpec: proposals / box_representation apply to Faster R-CNN "
                             f"only, not {self.arch}")

    @property
    def is_rcnn(self) -> bool:
        return self.arch.startswith("fasterrcnn_")

    def to_dict(self) -> dict:
        d = {"arch": self.arch, "num_classes": self.num_classes, "image_size": list(self.image_size)}
        if self.proposals:
            d["proposals"] = self.proposals
        if self.box_representation:
            d["box_representation"] = self.box_representation
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TorchvisionDetectorSpec":
        unknown = sorted(set(d) - {"arch", "num_classes", "image_size", "proposals", "box_representation"})
        if unknown:
            raise ValueError(f"TorchvisionDetectorSpec: unknown keys {unknown}")
        return cls(**d)

    @property
    def transform_size(self) -> tuple[int, int]:
        """(height, width) the model's own transform hands to the backbone."""
        side = DETECTOR_ARCHS[self.arch]
        return (side, side) if side else self.image_size


def _small_resnet_rcnn(spec: TorchvisionDetectorSpec, **kwargs) -> nn.Module:
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    backbone = resnet_fpn_backbone(backbone_name=_SMALL_RESNETS[spec.arch], weights=None, norm_layer=nn.BatchNorm2d,
                                   trainable_layers=5, returned_layers=[3, 4])
    anchors = AnchorGenerator(_SMALL_RESNET_ANCHORS, ((0.5, 1.0, 2.0),) * len(_SMALL_RESNET_ANCHORS))
    return FasterRCNN(backbone, num_classes=spec.num_classes + 1, rpn_anchor_generator=anchors, **kwargs)


def build_torchvision_detector(spec: TorchvisionDetectorSpec) -> nn.Module:
    """A freshly initialised torchvision detector (train mode), no pretrained weights of any part."""
    from torchvision.models import detection

    kwargs = {}
    if DETECTOR_ARCHS[spec.arch] is None:
        h, w = spec.image_size
        kwargs = {"min_size": min(h, w), "max_size": max(h, w)}
    if spec.proposals:
        kwargs.update(rpn_post_nms_top_n_test=spec.proposals, rpn_pre_nms_top_n_test=4 * spec.proposals)
    if spec.arch in _SMALL_RESNETS:
        model = _small_resnet_rcnn(spec, **kwargs)
    else:
        model = getattr(detection, spec.arch)(weights=None, weights_backbone=None,
                                              num_classes=spec.num_classes + 1, **kwargs)
    if spec.box_representation:
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead

        heads = model.roi_heads
        in_features = heads.box_head.fc6.in_features
        heads.box_head = TwoMLPHead(in_features, spec.box_representation)
        heads.box_predictor = FastRCNNPredictor(spec.box_representation, spec.num_classes + 1)
    return model


def backbone_vip_layers(model: nn.Module, spec: TorchvisionDetectorSpec) -> list[str]:
    """ViP-able backbone convolutions (module names inside the detector), forward order; those
    on maps under 2x2 at the transform's size are left out."""
    from ..vip import vip_layer_names

    h, w = spec.transform_size
    return [f"backbone.{n}" for n in vip_layer_names(model.backbone.eval(), (1, 3, h, w))]


_HEAD_PREFIXES = ("roi_heads.box_predictor.", "head.classification_head.cls_logits.",
                  "head.classification_head.module_list.")


def fit_detector_weights(model: nn.Module, spec: TorchvisionDetectorSpec, state: dict, path: str) -> list[str]:
    """Load a torchvision detector checkpoint ``state`` (e.g. COCO-trained, 91 labels) into
    ``model`` built from ``spec``; return what was adapted, as log lines.

    Class-count dependent tensors (the R-CNN box predictor, RetinaNet/FCOS/SSD class logits) of
    another size are left at their fresh initialisation and the note says the head is trained
    for ``spec.num_classes`` classes. BatchNorm's ``num_batches_tracked`` (absent from frozen-BN
    checkpoints) may be missing. Anything else that does not fit raises ``WeightsError`` listing
    the missing, unexpected and wrongly shaped keys.
    """
    from .torchvision_arch import load_fitting

    own = model.state_dict()
    state = dict(state)
    replaced = sorted(k for k in state if k in own and k.startswith(_HEAD_PREFIXES) and state[k].shape != own[k].shape)
    for k in replaced:
        state.pop(k)
    load_fitting(model, state, path, spec.arch,
                 may_miss=lambda k: k in replaced or k.endswith("num_batches_tracked"))
    if replaced:
        return [f"{path}: the checkpoint's class head ({len(replaced)} tensors, e.g. {replaced[0]}) is for another "
                f"class count; replaced and trained for the data's {spec.num_classes} classes"]
    return []
