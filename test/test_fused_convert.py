"""fuse_vip: the fused model equals the reference ViP model (apply_vip) on odd and even sizes."""
import itertools

import pytest
import torch
import torch.nn as nn
import torchvision

from vip_perception.fused import FusedViPStage, fuse_vip, fused_stages
from vip_perception.models import ModelSpec, build_model
from vip_perception.vip import apply_vip, vip_layer_names

torch.set_num_threads(1)


def _tiny_vgg(bn: bool = False) -> nn.Module:
    """VGG-shaped but narrow: 2-2-3 convs with 2x2 max-pooling, like VGG16's first blocks."""
    cfg = [8, 8, "M", 16, 16, "M", 16, 16, 16, "M"]
    layers, cin = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(cin, v, 3, padding=1))
        if bn:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        cin = v
    model = nn.Sequential(*layers, nn.Flatten(), nn.LazyLinear(5))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial eval statistics
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model


def _check(reference: nn.Module, fused: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        want = reference(x)
        for fmt in (torch.contiguous_format, torch.channels_last):
            got = fused.to(memory_format=fmt)(x.contiguous(memory_format=fmt))
            assert got.shape == want.shape
            rel = ((got - want).abs().max() / want.abs().max()).item()
            assert rel < 1e-5, (fmt, rel)


@pytest.mark.parametrize("bn", [False, True])
def test_every_layer_subset_pattern(bn):
    torch.manual_seed(0)
    base = _tiny_vgg(bn).eval()
    names = vip_layer_names(base)
    subsets = [names, names[::2], names[1::2], names[:2], names[2:5], [names[0], names[4], names[6]]]
    for layers, side in itertools.product(subsets, (16, 18, 20, 23)):
        model = nn.Sequential(*list(base.children())[:-1])  # size-independent features
        vip = apply_vip(model, layers).eval()
        fused = fuse_vip(vip).eval()
        assert fused_stages(fused)
        _check(vip, fused, torch.randn(2, 3, side, side + 1))


def test_all_tails_occur_and_original_untouched():
    torch.manual_seed(1)
    model = nn.Sequential(*list(_tiny_vgg().children())[:-3]).eval()  # ends with conv7's ReLU
    names = vip_layer_names(model)
    vip = apply_vip(model, [names[0], names[3], names[5], names[6]]).eval()
    before = {k: v.clone() for k, v in vip.state_dict().items()}
    fused = fuse_vip(vip)
    tails = sorted(fused_stages(fused).values())
    assert tails == ["conv+0 folded", "pool+0 folded", "upsample+1 folded"], tails
    assert all(torch.equal(before[k], v) for k, v in vip.state_dict().items())
    assert not any(isinstance(m, FusedViPStage) for m in vip.modules())
    _check(vip, fused, torch.randn(1, 3, 21, 17))


@pytest.mark.parametrize("family", ["plain", "resnet"])
def test_project_classifiers(family):
    torch.manual_seed(2)
    spec = ModelSpec(family=family, stages=[[8, 8], [16, 16]], input_size=(28, 28), num_classes=10)
    model = build_model(spec).eval()
    vip = apply_vip(model, "all").eval()
    fused = fuse_vip(vip).eval()
    assert fused_stages(fused)
    _check(vip, fused, torch.randn(3, 1, 28, 28))


def test_torchvision_vgg_paper_structure():
    """The paper set on VGG16 never materialises a full-size ViP map: pools and one fold."""
    with torch.device("meta"):
        vgg = torchvision.models.vgg16(weights=None)
    fused = fuse_vip(apply_vip(vgg, "paper"))
    assert sorted(fused_stages(fused).values()) == ["pool+0 folded"] * 4 + ["pool+1 folded"]
    fused_all = fuse_vip(apply_vip(vgg, "all"))
    assert sorted(fused_stages(fused_all).values()) == ["pool+1 folded"] * 2 + ["pool+2 folded"] * 3


def test_pack_convs_same_function_and_copyable():
    import copy

    from vip_perception.fused import PackedConv2d, pack_convs

    torch.manual_seed(3)
    model = nn.Sequential(*list(_tiny_vgg().children())[:-2]).eval()
    packed = pack_convs(model)
    assert any(isinstance(m, PackedConv2d) and m.relu for m in packed.modules())
    assert not any(isinstance(m, PackedConv2d) for m in model.modules())  # original untouched
    x = torch.randn(1, 3, 19, 22)
    with torch.no_grad():
        want = model(x)
        for fmt in (torch.contiguous_format, torch.channels_last):
            xx = x.contiguous(memory_format=fmt)
            torch.testing.assert_close(packed(xx), want, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(copy.deepcopy(packed)(xx), want, rtol=1e-5, atol=1e-5)


def test_too_small_input_is_named():
    vip = apply_vip(nn.Sequential(nn.Conv2d(1, 2, 5), nn.ReLU()), "all")
    with pytest.raises(ValueError, match="too small"):
        fuse_vip(vip)(torch.randn(1, 1, 3, 3))


def test_torchvision_resnet_blocks_use_upsample_stages():
    """ViP convs outside Sequentials (torchvision BasicBlock attributes) become upsample-tail stages."""
    torch.manual_seed(4)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
    vip = apply_vip(model, "all").eval()
    fused = fuse_vip(vip).eval()
    assert set(fused_stages(fused).values()) == {"upsample+0 folded"} and len(fused_stages(fused)) == 13
    _check(vip, fused, torch.randn(2, 3, 70, 64))


def test_plain_strided_conv_after_vip_is_folded():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, stride=2, padding=1),
                          nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 4, 1, stride=2)).eval()
    vip = apply_vip(model, ["0", "4"]).eval()
    fused = fuse_vip(vip)
    assert sorted(fused_stages(fused).values()) == ["strided_conv+0 folded"] * 2
    for side in (9, 10, 13):
        _check(vip, fused, torch.randn(2, 3, side, side + 3))
