"""ONNX export (ViP as Resize linear/asymmetric) and the torch / onnxruntime backends."""
import pytest
import torch
import torch.nn as nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from vip_perception.backends import make_backend  # noqa: E402 - after the optional-dependency skip
from vip_perception.export import export_onnx, resize_vip, verify_onnx  # noqa: E402 - after the optional-dependency skip
from vip_perception.fused import fuse_vip  # noqa: E402 - after the optional-dependency skip
from vip_perception.models import ModelSpec, build_model  # noqa: E402 - after the optional-dependency skip
from vip_perception.vip import apply_vip, vip_upsample_reference  # noqa: E402 - after the optional-dependency skip

torch.set_num_threads(1)


def _run_onnx(data: bytes, x: torch.Tensor) -> torch.Tensor:
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])


class _Up(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.size = size

    def forward(self, x):
        return resize_vip(x, self.size)


@pytest.mark.parametrize("h,w,H,W", [(3, 4, 5, 8), (4, 4, 8, 8), (5, 3, 10, 5), (1, 2, 2, 3)])
def test_resize_is_exact_vip(h, w, H, W):
    x = torch.randn(2, 3, h, w)
    data = export_onnx(_Up((H, W)), x)
    node = next(n for n in onnx.load_from_string(data).graph.node if n.op_type == "Resize")
    attrs = {a.name: a.s.decode() for a in node.attribute if a.type == onnx.AttributeProto.STRING}
    assert attrs["mode"] == "linear" and attrs["coordinate_transformation_mode"] == "asymmetric"
    torch.testing.assert_close(_run_onnx(data, x), vip_upsample_reference(x, (H, W)), rtol=1e-6, atol=1e-6)


def _small_models():
    torch.manual_seed(0)
    plain = build_model(ModelSpec(family="plain", stages=[[8, 8], [16, 16]], input_size=(28, 28))).eval()
    resnet = build_model(ModelSpec(family="resnet", stages=[[8], [16]], input_size=(28, 28))).eval()
    return {"plain": plain, "resnet": resnet}


@pytest.mark.parametrize("name", ["plain", "resnet"])
@pytest.mark.parametrize("impl", ["original", "reference", "fused"])
def test_export_matches_reference(name, impl):
    model = _small_models()[name]
    vip = apply_vip(model, "all").eval()
    target = {"original": model, "reference": vip, "fused": fuse_vip(vip).eval()}[impl]
    x = torch.randn(2, 1, 28, 28)
    data = export_onnx(target, x)
    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    if impl == "reference":
        assert "Resize" in ops
    reference = model if impl == "original" else vip
    check = verify_onnx(reference, data, x)
    assert check.ok, check


def test_backends_share_one_interface(tmp_path):
    model = apply_vip(_small_models()["plain"], "all").eval()
    x = torch.randn(1, 1, 28, 28)
    with torch.no_grad():
        want = model(x)
    for kind, opts in [("torch", {}), ("torch", {"channels_last": True}), ("onnxruntime", {}),
                       ("onnxruntime", {"allow_spinning": False, "optimization": "basic"})]:
        run = make_backend(kind, model, x, threads=1, **opts)
        got = run(x)
        assert isinstance(got, torch.Tensor) and got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert next(model.parameters()).is_contiguous()  # channels_last worked on a copy


def test_backend_errors_are_clear():
    model = _small_models()["plain"]
    x = torch.randn(1, 1, 28, 28)
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        make_backend("tensorrt", model, x)
    with pytest.raises(ValueError, match="threads"):
        make_backend("torch", model, x, threads=0)
    run = make_backend("onnxruntime", model, x, threads=1)
    with pytest.raises(ValueError, match="exported for input"):
        run(torch.randn(2, 1, 28, 28))
