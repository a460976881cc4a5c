"""torchvision detectors by name: each builds without any pretrained weights and runs one
320x240 frame, plain and with ViP on two backbone convolutions."""
import pytest
import torch

from vip_perception.models.torchvision_detector import (
    DETECTOR_ARCHS,
    TorchvisionDetectorSpec,
    backbone_vip_layers,
    build_torchvision_detector,
)
from vip_perception.vip import ViPConv2d, apply_vip

torch.set_num_threads(1)


def _run(model, frame):
    with torch.no_grad():
        out = model([frame])[0]
    assert set(out) >= {"boxes", "labels", "scores"} and out["boxes"].shape[1:] == (4,)
    assert out["labels"].numel() == 0 or int(out["labels"].max()) <= 4  # background + 4 classes


@pytest.mark.parametrize("arch", list(DETECTOR_ARCHS))
def test_each_detector_builds_and_runs_a_320x240_frame(arch):
    spec = TorchvisionDetectorSpec.from_dict({"arch": arch, "num_classes": 4, "image_size": [240, 320]})
    assert spec.to_dict() == {"arch": arch, "num_classes": 4, "image_size": [240, 320]}
    torch.manual_seed(0)
    model = build_torchvision_detector(spec).eval()
    layers = backbone_vip_layers(model, spec)
    assert len(layers) >= 2 and all(n.startswith("backbone.") for n in layers)
    _run(model, torch.rand(3, 240, 320))


@pytest.mark.parametrize("arch", ["fasterrcnn_mobilenet_v3_large_320_fpn", "ssdlite320_mobilenet_v3_large"])
def test_vip_on_backbone_convolutions_runs(arch):
    spec = TorchvisionDetectorSpec(arch, 4)
    torch.manual_seed(0)
    model = build_torchvision_detector(spec).eval()
    vip = apply_vip(model, backbone_vip_layers(model, spec)[-2:]).eval()
    assert sum(isinstance(m, ViPConv2d) for m in vip.modules()) == 2
    _run(vip, torch.rand(3, 240, 320))


def test_unknown_detector_and_keys():
    with pytest.raises(ValueError, match="unknown torchvision detector 'yolo'; known: fasterrcnn_resnet18_fpn"):
        TorchvisionDetectorSpec("yolo")
    with pytest.raises(ValueError, match=r"unknown keys \['anchors'\]"):
        TorchvisionDetectorSpec.from_dict({"arch": "ssd300_vgg16", "anchors": 3})
