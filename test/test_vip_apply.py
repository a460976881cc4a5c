"""ViPConv2d and apply_vip: exact relation to the stride-1 layer, shapes, names, errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision

from vip_perception.vip import (
    PAPER_VGG16,
    ViPConv2d,
    apply_vip,
    resolve_layers,
    vgg_aliases,
    vip_from_full,
    vip_layer_names,
    vip_layers_of,
)

torch.set_num_threads(1)


def _small_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )


def _randomise_bn(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)


# ---- ViPConv2d -------------------------------------------------------------------------------

CONVS = [
    dict(in_channels=3, out_channels=4, kernel_size=3, padding=1),
    dict(in_channels=3, out_channels=4, kernel_size=3, padding=0),
    dict(in_channels=4, out_channels=4, kernel_size=3, padding=2, dilation=2, groups=2),
    dict(in_channels=3, out_channels=5, kernel_size=1),
    dict(in_channels=3, out_channels=4, kernel_size=(3, 5), padding="same", bias=False),
    dict(in_channels=3, out_channels=4, kernel_size=3, padding=1, padding_mode="reflect"),
]


@pytest.mark.parametrize("kw", CONVS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items() if k != "in_channels"))
@pytest.mark.parametrize("hw", [(9, 9), (10, 7), (8, 12)])
def test_vipconv_is_vip_of_the_full_map(kw, hw):
    """Output = ViP interpolation of the even positions of act(norm(conv(x))) at stride 1."""
    torch.manual_seed(0)
    conv = nn.Conv2d(**kw).double()
    norm = nn.BatchNorm2d(conv.out_channels).double().eval()
    _randomise_bn(norm)
    vip = ViPConv2d(conv, norm, nn.ReLU())
    x = torch.randn(2, conv.in_channels, *hw, dtype=torch.float64)
    full = torch.relu(norm(conv(x)))  # (N, C, H, W) stride-1 reference
    out = vip(x)
    assert out.shape == full.shape
    torch.testing.assert_close(out[..., ::2, ::2], full[..., ::2, ::2])  # computed exactly
    torch.testing.assert_close(out, vip_from_full(full))


def test_vipconv_shares_weights_and_trains_them():
    conv = nn.Conv2d(2, 3, 3, padding=1)
    vip = ViPConv2d(conv)
    assert vip.conv.weight is conv.weight and vip.conv.weight.data_ptr() == conv.weight.data_ptr()
    vip(torch.randn(1, 2, 6, 6)).sum().backward()
    assert conv.weight.grad is not None


def test_vipconv_channels_last():
    conv = nn.Conv2d(3, 8, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 12, 12).contiguous(memory_format=torch.channels_last)
    out = ViPConv2d(conv)(x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ViPConv2d(conv)(x.contiguous()))


def test_vipconv_rejects_strided_conv():
    with pytest.raises(ValueError, match="stride"):
        ViPConv2d(nn.Conv2d(3, 3, 3, stride=2))


# ---- apply_vip -------------------------------------------------------------------------------

def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _check_apply(model, layers, x):
    model.eval()
    before = _state(model)
    types_before = [type(m) for m in model.modules()]
    vip = apply_vip(model, layers).eval()
    with torch.no_grad():
        assert vip(x).shape == model(x).shape
    # original untouched: same module types, same tensors
    assert [type(m) for m in model.modules()] == types_before
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert vip_layers_of(model) == []
    return vip


def _conv_shapes(model, x):
    shapes = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, o.shape))
             for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, ViPConv2d))]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return {n: s for n, s in shapes.items() if not n.endswith(".conv")}


def _torchvision(arch: str) -> nn.Module:
    """A torchvision model with a small classifier head (VGG's 100M-parameter head is slow to build)."""
    with torch.device("meta"):
        model = getattr(torchvision.models, arch)(weights=None, num_classes=10)
        if hasattr(model, "classifier"):
            model.classifier = nn.Linear(512 * 7 * 7, 10)
    model = model.to_empty(device="cpu")
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return model


@pytest.mark.parametrize("arch", ["vgg11", "vgg11_bn", "resnet18"])
def test_apply_vip_torchvision_shapes(arch):
    torch.manual_seed(0)
    model = _torchvision(arch)
    x = torch.randn(2, 3, 32, 32)
    vip = _check_apply(model, "all", x)
    assert vip_layers_of(vip) == vip_layer_names(model)
    assert _conv_shapes(vip, x) == _conv_shapes(model.eval(), x)  # every layer keeps its size


def test_apply_vip_odd_sizes_resnet():
    model = _torchvision("resnet18")
    x = torch.randn(1, 3, 56, 56)  # stages 14, 7, 4, 2: odd maps in the middle
    vip = _check_apply(model, "all", x)
    assert _conv_shapes(vip, x) == _conv_shapes(model.eval(), x)


def test_resnet_block_folding():
    model = torchvision.models.resnet18(weights=None)
    vip = apply_vip(model, ["layer1.0.conv1", "layer1.0.conv2"])
    block = vip.layer1[0]
    assert isinstance(block.bn1, nn.Identity) and isinstance(block.bn2, nn.Identity)
    assert isinstance(block.conv1.norm, nn.BatchNorm2d) and isinstance(block.conv1.act, nn.ReLU)
    assert isinstance(block.conv2.act, nn.Identity)  # last conv: ViP before the residual add
    assert isinstance(block.relu, nn.ReLU)


def test_sequential_folding_and_equivalence():
    torch.manual_seed(0)
    model = _small_cnn().eval()
    _randomise_bn(model)
    assert vip_layer_names(model) == ["0", "3", "7"]  # "9" has stride 2
    vip = _check_apply(model, ["0", "7"], torch.randn(2, 1, 15, 15))
    assert isinstance(vip[0], ViPConv2d) and isinstance(vip[0].norm, nn.BatchNorm2d) and isinstance(vip[0].act, nn.ReLU)
    assert isinstance(vip[1], nn.Identity) and isinstance(vip[2], nn.Identity)
    assert isinstance(vip[7], ViPConv2d) and isinstance(vip[7].act, nn.ReLU) and isinstance(vip[8], nn.Identity)
    assert isinstance(vip[4], nn.BatchNorm2d)  # layer 3 untouched
    x = torch.randn(2, 1, 15, 15)
    with torch.no_grad():
        full = model[:3](x)
        torch.testing.assert_close(vip[:3](x), vip_from_full(full))


def test_vip_model_trains():
    model = _small_cnn()
    vip = apply_vip(model, "all").train()
    loss = vip(torch.randn(4, 1, 16, 16)).logsumexp(1).mean()
    loss.backward()
    assert all(p.grad is not None for p in vip.parameters())


def test_rounds_grow_the_set():
    model = _small_cnn()
    first = apply_vip(model, ["0"])
    second = apply_vip(first, ["0", "3"])
    assert vip_layers_of(first) == ["0"] and vip_layers_of(second) == ["0", "3"]
    assert vip_layer_names(second) == ["7"]


def test_vgg16_aliases_and_paper_set():
    with torch.device("meta"):
        model = torchvision.models.vgg16()
    aliases = vgg_aliases(model)
    assert aliases["conv1_1"] == "features.0" and aliases["conv5_3"] == "features.28" and len(aliases) == 13
    paper = resolve_layers(model, "paper")
    assert paper == [aliases[a] for a in PAPER_VGG16]
    assert resolve_layers(model, "conv1_2,conv5_3") == ["features.2", "features.28"]
    assert resolve_layers(model, ["all"]) == vip_layer_names(model)
    assert resolve_layers(model, "none") == []
    vip = apply_vip(model, "paper")
    assert vip_layers_of(vip) == paper


@pytest.mark.parametrize("bad,why", [("nope", "no such module"), ("conv1", "stride"),
                                     ("bn1", "not nn.Conv2d"), ("paper", "VGG16 only")])
def test_errors_list_valid_names(bad, why):
    model = torchvision.models.resnet18(weights=None)
    with pytest.raises(ValueError, match=why) as exc:
        apply_vip(model, [bad])
    assert "layer1.0.conv1" in str(exc.value) and "valid layer names" in str(exc.value)


@pytest.mark.filterwarnings("ignore")  # tracer warnings: sizes are fixed at export, as intended
def test_vip_model_exports_to_onnx():
    """The runtime may run members with onnxruntime: export uses the Resize + Pad path."""
    import io

    import numpy as np
    ort = pytest.importorskip("onnxruntime")
    model = _small_cnn().eval()
    _randomise_bn(model)
    vip = apply_vip(model, "all").eval()
    x = torch.randn(1, 1, 15, 15)
    buf = io.BytesIO()
    torch.onnx.export(vip, (x,), buf, dynamo=False)
    sess = ort.InferenceSession(buf.getvalue())
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, vip(x).numpy(), rtol=1e-4, atol=1e-5)

