"""count_macs / compare_macs: PyTorch's flop counter, per layer, and ViP's reductions."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision

from vip_perception.vip import apply_vip, compare_macs, count_macs

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def vgg16_meta():
    with torch.device("meta"):  # counted without computing: fast
        return torchvision.models.vgg16()


def test_vgg16_paper_and_all_ratios(vgg16_meta):
    paper = compare_macs(vgg16_meta, apply_vip(vgg16_meta, "paper"), (3, 224, 224))
    every = compare_macs(vgg16_meta, apply_vip(vgg16_meta, "all"), (3, 224, 224))
    assert paper.original.total == pytest.approx(15.47e9, rel=0.01)  # the usual VGG16 figure
    assert paper.ratio == pytest.approx(1.68, abs=0.02)
    assert every.ratio == pytest.approx(3.9, abs=0.05)
    assert len(paper.per_layer) == 6 and len(every.per_layer) == 13
    assert all(r.ratio == pytest.approx(4.0) for r in every.per_layer.values())  # even sizes: exactly 4x
    print(f"\nVGG16 224 mac_ratio: paper {paper.ratio:.3f}, all {every.ratio:.3f}")


def test_none_changes_nothing(vgg16_meta):
    r = compare_macs(vgg16_meta, apply_vip(vgg16_meta, "none"), (1, 3, 64, 64))
    assert r.ratio == 1.0 and r.per_layer == {}


def test_small_cnn_matches_hand_count():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.Flatten(),
                          nn.Linear(6 * 7 * 7, 5))
    rep = count_macs(model, (1, 9, 9))
    hand = {"0": 4 * 1 * 9 * 81, "2": 6 * 4 * 9 * 49, "4": 6 * 49 * 5}
    assert rep.per_layer == hand and rep.total == sum(hand.values())
    vip = compare_macs(model, apply_vip(model, ["0", "2"]), (2, 1, 9, 9))
    assert vip.per_layer["0"].vip == 2 * 4 * 9 * 25  # 5x5 small map for a 9x9 output
    assert vip.per_layer["2"].vip == 2 * 6 * 4 * 9 * 16  # 4x4 small map for a 7x7 output
    assert vip.vip.per_layer["4"] == vip.original.per_layer["4"]


def test_resnet_per_layer_names_are_module_names():
    model = torchvision.models.resnet18(weights=None)
    rep = count_macs(model, (3, 64, 64))
    assert "layer1.0.conv1" in rep.per_layer and "fc" in rep.per_layer and "conv1" in rep.per_layer
    assert rep.total == sum(rep.per_layer.values())
    assert model.training  # mode restored


def test_bad_input_shape():
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(nn.Conv2d(1, 1, 1), (8, 8))
