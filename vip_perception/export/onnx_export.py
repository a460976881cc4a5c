"""ONNX export of any model, ViP and fused ViP included, checked against the PyTorch reference.

ViP layers export with their upsampling as ``Resize`` (linear, asymmetric; see resize.py):
ViPConv2d modules are swapped for an export twin that calls ``resize_vip`` (same shared
weights), and the fused stages switch to export-friendly formulations by themselves. We use
the TorchScript exporter (``dynamo=False``): it needs no onnxscript and honours the custom
``symbolic``. Every export can be verified by running it in ONNX Runtime on the example input.
"""
from __future__ import annotations

import copy
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from vip_perception.vip import ViPConv2d, conv_output_size

from .resize import resize_vip

__all__ = ["DEFAULT_OPSET", "ExportCheck", "export_onnx", "prepare_for_export", "verify_onnx"]

DEFAULT_OPSET = 17


class _ExportViPConv2d(ViPConv2d):
    """ViPConv2d whose interpolation traces to Resize(linear, asymmetric)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, C_in, H_in, W_in)
        conv = self.conv
        if conv.padding_mode != "zeros":
            raise ValueError(f"ONNX export of ViP supports zero padding only, got {conv.padding_mode!r}")
        out_size = conv_output_size(conv, x.shape[-2:])
        y = nn.functional.conv2d(x, conv.weight, conv.bias, 2, self._padding, conv.dilation, conv.groups)
        y = self.act(self.norm(y))  # (N, C_out, h, w)
        return resize_vip(y, out_size)  # (N, C_out, H, W)


def prepare_for_export(model: nn.Module) -> nn.Module:
    """Deep copy in eval mode, NCHW, with every ViPConv2d replaced by its export twin."""
    new = copy.deepcopy(model).eval().to(memory_format=torch.contiguous_format)
    for m in list(new.modules()):
        for key, child in list(m._modules.items()):
            if type(child) is ViPConv2d:
                m._modules[key] = _ExportViPConv2d(child.conv, child.norm, child.act)  # same modules
    return new


def export_onnx(model: nn.Module, example_input: torch.Tensor, path: str | Path | None = None,
                opset: int = DEFAULT_OPSET) -> bytes:
    """Export `model` for inputs shaped like `example_input` (fixed shape); returns the ONNX bytes
    and also writes them to `path` when given."""
    if example_input.dim() != 4:
        raise ValueError(f"example_input must be (N, C, H, W), got shape {tuple(example_input.shape)}")
    prepared = prepare_for_export(model)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            prepared, (example_input.contiguous(),), buf, dynamo=False, opset_version=opset,
            input_names=["input"], output_names=["output"], do_constant_folding=True,
        )
    data = buf.getvalue()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return data


@dataclass
class ExportCheck:
    max_abs_error: float  # max |onnxruntime - torch| over the output
    max_rel_error: float  # max_abs_error / max |torch output|
    ok: bool  # max_rel_error <= tolerance


def verify_onnx(model: nn.Module, onnx_bytes: bytes, example_input: torch.Tensor, rtol: float = 1e-4,
                threads: int = 1) -> ExportCheck:
    """Run the export in ONNX Runtime and compare with the eager `model` (in eval mode) on the same input."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
    x = example_input.contiguous()
    got = torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])
    with torch.no_grad():
        ref = model(x).float()
    err = (got - ref).abs().max().item()
    rel = err / max(ref.abs().max().item(), 1e-30)
    return ExportCheck(err, rel, rel <= rtol)
