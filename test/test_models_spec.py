"""ModelSpec serialisation rebuilds the same architecture; the structure suits apply_vip."""
import json

import pytest
import torch

from vip_perception.models import ModelSpec, build_model

torch.set_num_threads(1)

SPECS = [
    ModelSpec(stages=[[8, 8], [16]], head="flatten", hidden=32, dropout=0.1),
    ModelSpec(stages=[[4], [8], [8]], batch_norm=False, pool="avg", kernel_size=5),
    ModelSpec(family="resnet", stages=[[8], [16, 16]], stem=4),
    ModelSpec(stages=[[8], [8]], in_channels=3, input_size=(20, 24), num_classes=3),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.short_name())
def test_spec_round_trip_rebuilds_architecture(spec):
    d = json.loads(json.dumps(spec.to_dict()))
    again = ModelSpec.from_dict(d)
    assert again == spec and again.short_name() == spec.short_name()
    a, b = build_model(spec), build_model(again)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(sa[k].shape == sb[k].shape for k in sa)
    x = torch.zeros(2, spec.in_channels, *spec.input_size)
    assert a.eval()(x).shape == (2, spec.num_classes)


def test_spec_errors_name_the_field():
    with pytest.raises(ValueError, match="family"):
        ModelSpec(family="mlp")
    with pytest.raises(ValueError, match="kernel_size"):
        ModelSpec(kernel_size=4)
    with pytest.raises(ValueError, match="unknown keys"):
        ModelSpec.from_dict({"stages": [[4]], "widths": 3})
    with pytest.raises(ValueError, match="stages"):
        ModelSpec(stages=[[]])


def test_vip_layer_names_and_folding():
    from vip_perception.vip import apply_vip, vip_layer_names, vip_layers_of

    plain = build_model(SPECS[0]).eval()
    assert vip_layer_names(plain) == ["features.s1.conv1", "features.s1.conv2", "features.s2.conv1"]
    vip = apply_vip(plain, ["features.s1.conv2"])
    assert vip_layers_of(vip) == ["features.s1.conv2"]
    assert isinstance(vip.features.s1.bn2, torch.nn.Identity)  # BN+ReLU folded into the ViP conv
    res = build_model(SPECS[2]).eval()
    names = vip_layer_names(res)
    assert "features.s2.b1.body.conv1" not in names  # stride 2: not ViP-able
    assert "features.s2.b1.body.conv2" in names and "features.stem.conv" in names
    x = torch.randn(1, 1, 28, 28)
    assert apply_vip(res, names)(x).shape == (1, 10)
