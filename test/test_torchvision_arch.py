"""torchvision classifiers as bank parents: built by name, rebuilt from the manifest record,
local weights (every error message), ViP on their convolutions (depthwise included)."""
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from vip_perception.bank.bank import build_member_module, inference_module
from vip_perception.models import TORCHVISION_ARCHS, TorchvisionSpec, WeightsError, build_classifier, spec_from_dict
from vip_perception.models.torchvision_arch import fit_weights, read_weights
from vip_perception.vip import ViPConv2d, apply_vip, vip_layer_names

torch.set_num_threads(1)


@pytest.mark.parametrize("arch", list(TORCHVISION_ARCHS))
def test_every_arch_builds_for_grey_input_and_the_data_classes(arch):
    spec = TorchvisionSpec(arch, num_classes=3, in_channels=1, input_size=(32, 32))
    torch.manual_seed(0)
    model = build_classifier(spec).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 32, 32)).shape == (2, 3)
    assert vip_layer_names(model, (1, 1, 32, 32))  # every one has ViP-able convolutions


def test_spec_record_round_trip_and_member_rebuild():
    rec = {"arch": "resnet18", "num_classes": 10, "in_channels": 3, "input_size": [64, 64]}
    spec = spec_from_dict(rec)
    assert isinstance(spec, TorchvisionSpec) and spec.input_size == (64, 64) and spec.to_dict() == rec
    assert type(spec_from_dict({"family": "plain", "stages": [[8]]})).__name__ == "ModelSpec"
    member = build_member_module(rec, ["layer1.0.conv2", "layer2.1.conv1"])
    assert isinstance(member.layer1[0].conv2, ViPConv2d) and isinstance(member.layer2[1].conv1, ViPConv2d)
    assert member.fc.out_features == 10 and not member.training
    with pytest.raises(ValueError, match="unknown torchvision architecture 'resnet19'; known: resnet18"):
        spec_from_dict({"arch": "resnet19"})
    with pytest.raises(ValueError, match=r"unknown keys \['depth'\]"):
        spec_from_dict({"arch": "resnet18", "depth": 3})
    with pytest.raises(ValueError, match=">= 32 px"):
        TorchvisionSpec("resnet18", input_size=(16, 16))


def _saved(tmp_path, arch="resnet18", classes=3, channels=3, fmt="pth"):
    torch.manual_seed(1)
    model = build_classifier(TorchvisionSpec(arch, classes, channels, (32, 32)))
    path = tmp_path / f"{arch}_{classes}_{channels}.{fmt}"
    if fmt == "pth":
        torch.save(model.state_dict(), path)
    else:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return str(path), model.state_dict()


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_fitting_weights_load_exactly(tmp_path, fmt):
    path, state = _saved(tmp_path, fmt=fmt)
    spec = TorchvisionSpec("resnet18", 3, 3, (32, 32))
    model = build_classifier(spec)
    assert fit_weights(model, spec, read_weights(path), path) == []
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_class_count_mismatch_replaces_the_head_and_says_so(tmp_path):
    path, state = _saved(tmp_path, classes=5)
    spec = TorchvisionSpec("resnet18", 3, 3, (32, 32))
    model = build_classifier(spec)
    notes = fit_weights(model, spec, read_weights(path), path)
    assert notes == [f"{path}: weights have 5 classes, the data 3: head fc replaced and trained from scratch"]
    assert model.fc.weight.shape == (3, 512)
    assert torch.equal(model.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])


def test_rgb_weights_into_a_grey_model_sum_the_first_kernels(tmp_path):
    path, state = _saved(tmp_path)
    spec = TorchvisionSpec("resnet18", 3, 1, (32, 32))
    model = build_classifier(spec)
    notes = fit_weights(model, spec, read_weights(path), path)
    assert notes == [f"{path}: RGB first convolution summed over colour for grey input"]
    assert torch.allclose(model.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))


def test_weights_of_another_architecture_list_missing_and_unexpected_keys(tmp_path):
    path, _ = _saved(tmp_path, arch="resnet34")
    spec = TorchvisionSpec("resnet18", 3, 3, (32, 32))
    with pytest.raises(WeightsError) as err:
        fit_weights(build_classifier(spec), spec, read_weights(path), path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: weights do not fit resnet18: unexpected ")
    assert "\n" not in msg and "layer1.2.conv1.weight" in msg and ", ...]" in msg
    path, _ = _saved(tmp_path, arch="mobilenet_v3_small")
    with pytest.raises(WeightsError, match=r"do not fit resnet18: missing 1\d\d \[conv1.weight, bn1.weight, "):
        fit_weights(build_classifier(spec), spec, read_weights(path), path)


def test_wrong_shapes_are_listed(tmp_path):
    torch.manual_seed(0)
    state = build_classifier(TorchvisionSpec("resnet18", 3, 3, (32, 32))).state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 5, 5)
    spec = TorchvisionSpec("resnet18", 3, 3, (32, 32))
    with pytest.raises(WeightsError, match=r"wrong shape 1 \[layer1.0.conv1.weight \(64, 64, 5, 5\) vs "
                                           r"\(64, 64, 3, 3\)\]"):
        fit_weights(build_classifier(spec), spec, state, "w.pth")


@pytest.mark.parametrize("name", ["ResNet18_Weights.IMAGENET1K_V1", "IMAGENET1K_V1", "DEFAULT"])
def test_hub_weight_names_are_refused_with_what_to_do(name):
    with pytest.raises(WeightsError, match=f"--weights {name}: a torchvision hub weight name; nothing is "
                                           "downloaded here: download the checkpoint file"):
        read_weights(name)


def test_unreadable_weight_files(tmp_path):
    with pytest.raises(WeightsError, match="no such file"):
        read_weights(str(tmp_path / "none.pth"))
    pickled = tmp_path / "model.pth"
    torch.save(nn.Linear(2, 2), pickled)  # a whole pickled module: weights_only refuses it
    with pytest.raises(WeightsError, match=r"model.pth: not a readable state_dict \(torch.load weights_only=True"):
        read_weights(str(pickled))
    nested = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": {}}, nested)
    with pytest.raises(WeightsError, match="ckpt.pth: not a state_dict"):
        read_weights(str(nested))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(WeightsError, match="bad.safetensors: cannot read safetensors weights"):
        read_weights(str(bad))


def test_vip_on_a_depthwise_conv_equals_the_per_channel_dense_reference():
    torch.manual_seed(0)
    dw = nn.Conv2d(6, 6, 3, padding=1, groups=6)
    x = torch.randn(2, 6, 9, 10)
    got = ViPConv2d(dw)(x)
    ref = []
    for c in range(6):  # obviously correct: one dense 1-in 1-out convolution per channel
        dense = nn.Conv2d(1, 1, 3, padding=1)
        dense.weight.data.copy_(dw.weight[c:c + 1])
        dense.bias.data.copy_(dw.bias[c:c + 1])
        ref.append(ViPConv2d(dense)(x[:, c:c + 1]))
    assert torch.allclose(got, torch.cat(ref, 1), atol=1e-6)
    assert torch.allclose(got[..., ::2, ::2], dw(x)[..., ::2, ::2], atol=1e-6)  # computed samples are exact


def test_mobilenet_vip_on_depthwise_layers_fuses_to_the_same_function():
    torch.manual_seed(0)
    model = build_classifier(TorchvisionSpec("mobilenet_v3_small", 3, 3, (64, 64)))
    model.train()
    with torch.no_grad():  # non-trivial BN statistics
        model(torch.randn(8, 3, 64, 64))
    model.eval()
    able = vip_layer_names(model, (1, 3, 64, 64))
    depthwise = [n for n in able if model.get_submodule(n).groups > 1]
    assert len(depthwise) >= 5
    vip = apply_vip(model, depthwise[:3] + able[:1]).eval()
    fused = inference_module(vip)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = vip.features[:6](x), fused.features[:6](x)
    assert a.abs().max() > 1e-3 and torch.allclose(a, b, atol=1e-4 * float(a.abs().max()))


def test_squeeze_excitation_convs_on_a_pooled_map_are_left_out():
    model = build_classifier(TorchvisionSpec("mobilenet_v3_small", 3, 3, (64, 64))).eval()
    every, sized = vip_layer_names(model), vip_layer_names(model, (1, 3, 64, 64))
    se = [n for n in every if ".fc1" in n or ".fc2" in n]
    assert se and not [n for n in sized if n in se]
    assert set(sized) < set(every)


@pytest.mark.parametrize("in_hw", [(1, 1), (2, 3), (3, 5), (10, 9), (14, 14)])
def test_matmul_adaptive_pool_equals_torch_and_exports(in_hw, tmp_path):
    import onnxruntime as ort

    from vip_perception.models.torchvision_arch import AdaptiveAvgPoolMatmul

    pool = AdaptiveAvgPoolMatmul(in_hw, (7, 7))
    x = torch.randn(2, 4, *in_hw)
    assert torch.allclose(pool(x), nn.functional.adaptive_avg_pool2d(x, 7), atol=1e-6)
    other = torch.randn(1, 4, 8, 8)  # another size: torch's own op
    assert torch.equal(pool(other), nn.functional.adaptive_avg_pool2d(other, 7))
    torch.onnx.export(pool, (x,), str(tmp_path / "pool.onnx"), input_names=["x"], dynamo=False)
    got = ort.InferenceSession(str(tmp_path / "pool.onnx")).run(None, {"x": x.numpy()})[0]
    assert np.allclose(got, nn.functional.adaptive_avg_pool2d(x, 7).numpy(), atol=1e-6)


def test_small_vgg_gets_the_exportable_pool_with_torchvision_keys():
    import torchvision

    small = build_classifier(TorchvisionSpec("vgg11_bn", 3, 3, (64, 64)))
    assert type(small.avgpool).__name__ == "AdaptiveAvgPoolMatmul" and small.avgpool.in_hw == (2, 2)
    assert list(small.state_dict()) == list(torchvision.models.vgg11_bn(num_classes=3).state_dict())
    assert type(build_classifier(TorchvisionSpec("vgg11_bn", 3, 3, (224, 224))).avgpool) is nn.AdaptiveAvgPool2d
