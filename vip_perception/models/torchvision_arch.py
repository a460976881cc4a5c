"""torchvision classifiers as bank parents: built by name with ``weights=None``, adapted to the
data's channel and class counts, rebuilt from a plain record, and loaded from local weight files.

A member's manifest ``spec`` is a ``TorchvisionSpec`` record, e.g. ``{"arch": "resnet18",
"num_classes": 10, "in_channels": 3, "input_size": [64, 64]}``; ``build_torchvision`` turns it
into the module (first convolution rebuilt for 1-channel input, classifier head sized to the
classes). Nothing is downloaded: ``read_weights`` takes a local torchvision state_dict ``.pth``
(``torch.load(weights_only=True)``, never unpickling code) or ``.safetensors``, and a hub weight
name is refused with what to do instead.

ViP on these architectures (``vip.apply_vip`` by module name):
- ResNet: stride-1 convolutions of BasicBlock/Bottleneck, with the block's BN (and inner ReLU)
  folded in; stride-2 convolutions (stem, first block of a stage) are not ViP-able.
- VGG-BN: every ``features.N`` convolution, BN and ReLU folded (the paper's case). Its 7x7
  adaptive pool becomes ``AdaptiveAvgPoolMatmul`` (same function) where the ONNX exporter
  cannot take it.
- MobileNetV3: depthwise (grouped) convolutions are supported exactly: a stride-2 grouped
  convolution computes the even positions of the stride-1 one channel group by channel group, so
  ViP's interpolation rebuilds the map as for a dense convolution (tested against a per-channel
  dense reference, and the fused inference path against the plain one). The squeeze-excitation
  1x1 convolutions act on a 1x1 pooled map, where ViP saves nothing; ``vip_layer_names(model,
  input_shape)`` leaves out every convolution whose input is under 2x2.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ARCHS", "TorchvisionSpec", "WeightsError", "build_torchvision", "fit_weights", "head_keys",
           "read_weights"]

# arch -> (first convolution's module name, classifier head's module name)
ARCHS = {
    "resnet18": ("conv1", "fc"),
    "resnet34": ("conv1", "fc"),
    "resnet50": ("conv1", "fc"),
    "vgg11_bn": ("features.0", "classifier.6"),
    "vgg16_bn": ("features.0", "classifier.6"),
    "mobilenet_v3_small": ("features.0.0", "classifier.3"),
    "mobilenet_v3_large": ("features.0.0", "classifier.3"),
}
_HUB_NAME = re.compile(r"^([A-Za-z0-9_]+_Weights\.)?(IMAGENET1K|COCO|DEFAULT)[A-Za-z0-9_]*$")
_SHOWN = 4  # keys listed by name in a mismatch message (then counts)


class WeightsError(ValueError):
    """A weight file that cannot be used: missing, unreadable, a hub name, or not fitting the
    architecture. The message names the file and what to do."""


@dataclass
class TorchvisionSpec:
    """One torchvision classifier: the manifest record that rebuilds it."""

    arch: str  # a key of ARCHS
    num_classes: int = 1000  # classifier head outputs
    in_channels: int = 3  # 1 (grey: first convolution rebuilt) or 3
    input_size: tuple[int, int] = (224, 224)  # (height, width) the bank feeds; the models pool adaptively

    def __post_init__(self) -> None:
        self.input_size = tuple(int(v) for v in self.input_size)  # JSON gives lists
        if self.arch not in ARCHS:
            raise ValueError(f"unknown torchvision architecture {self.arch!r}; known: {', '.join(ARCHS)}")
        if self.in_channels not in (1, 3):
            raise ValueError(f"TorchvisionSpec.in_channels must be 1 or 3, got {self.in_channels}")
        if self.num_classes < 1:
            raise ValueError(f"TorchvisionSpec.num_classes must be positive, got {self.num_classes}")
        if min(self.input_size) < 32:
            raise ValueError(f"TorchvisionSpec.input_size {self.input_size}: torchvision classifiers need >= 32 px")

    def to_dict(self) -> dict:
        return {"arch": self.arch, "num_classes": self.num_classes, "in_channels": self.in_channels,
                "input_size": list(self.input_size)}

    @classmethod
    def from_dict(cls, d: dict) -> "TorchvisionSpec":
        known = {"arch", "num_classes", "in_channels", "input_size"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"TorchvisionSpec: unknown keys {unknown} (known: {sorted(known)})")
        return cls(**d)

    def short_name(self) -> str:
        return self.arch


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, key = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, key, module)


class AdaptiveAvgPoolMatmul(nn.Module):
    """``nn.AdaptiveAvgPool2d(out)`` for a known input size, as two matrix products with the
    exact averaging weights: the same function, but exportable to ONNX when the input side is
    not a multiple of the output side (VGG's 7x7 pool after a 1x1 or 2x2 map at 32-64 px
    inputs, which the ONNX exporter refuses). Other input sizes take ``adaptive_avg_pool2d``.
    No parameters or persistent buffers: state_dict keys are torchvision's."""

    def __init__(self, in_hw: tuple[int, int], out_hw: tuple[int, int]):
        super().__init__()
        self.in_hw, self.out_hw = tuple(in_hw), tuple(out_hw)
        self.register_buffer("rows", self._weights(in_hw[0], out_hw[0]), persistent=False)  # (oh, ih)
        self.register_buffer("cols", self._weights(in_hw[1], out_hw[1]).t().contiguous(), persistent=False)

    @staticmethod
    def _weights(n_in: int, n_out: int) -> torch.Tensor:
        w = torch.zeros(n_out, n_in)
        for i in range(n_out):  # PyTorch's adaptive bins: [floor(i n / o), ceil((i + 1) n / o))
            lo, hi = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
            w[i, lo:hi] = 1.0 / (hi - lo)
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, ih, iw) -> (N, C, oh, ow)
        if tuple(x.shape[-2:]) != self.in_hw:
            return nn.functional.adaptive_avg_pool2d(x, self.out_hw)
        return self.rows @ x @ self.cols


def _vgg_feature_hw(spec: TorchvisionSpec) -> tuple[int, int]:
    """(H, W) after VGG's five 2x2 max-pools (floor)."""
    return tuple(v // 32 for v in spec.input_size)


def build_torchvision(spec: TorchvisionSpec) -> nn.Module:
    """A freshly initialised torchvision ``spec.arch`` (train mode, float32, CPU), never
    pretrained; its first convolution takes ``spec.in_channels`` and its head has
    ``spec.num_classes`` outputs."""
    import torchvision

    model = getattr(torchvision.models, spec.arch)(weights=None, num_classes=spec.num_classes)
    first, _ = ARCHS[spec.arch]
    conv = model.get_submodule(first)
    if conv.in_channels != spec.in_channels:
        _set_module(model, first, nn.Conv2d(spec.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                            conv.padding, bias=conv.bias is not None))
    if spec.arch.startswith("vgg"):
        hw = _vgg_feature_hw(spec)
        if hw[0] % 7 or hw[1] % 7:  # the ONNX exporter handles whole-multiple pooling itself
            model.avgpool = AdaptiveAvgPoolMatmul(hw, (7, 7))
    return model


def head_keys(spec: TorchvisionSpec) -> tuple[str, str]:
    """state_dict keys of the classifier head (weight, bias)."""
    head = ARCHS[spec.arch][1]
    return f"{head}.weight", f"{head}.bias"


def read_weights(path: str) -> dict[str, torch.Tensor]:
    """A local weight file -> state_dict: ``.safetensors``, or a ``.pth``/``.pt`` state_dict as
    torchvision publishes it, loaded with ``weights_only=True``. WeightsError naming ``path``
    for a hub weight name, a missing or unreadable file, or a file that is not a state_dict."""
    if not os.path.exists(path) and _HUB_NAME.match(os.path.basename(path)):
        raise WeightsError(f"--weights {path}: a torchvision hub weight name; nothing is downloaded here: download "
                           "the checkpoint file (the URL is in torchvision's docs for that weight) and pass its path")
    if not os.path.isfile(path):
        raise WeightsError(f"--weights {path}: no such file (pass a local .pth state_dict or .safetensors file)")
    if path.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path}: cannot read safetensors weights ({exc})") from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle and zip errors of every kind: the file is not a plain state_dict
        raise WeightsError(f"{path}: not a readable state_dict (torch.load weights_only=True: "
                           f"{str(exc).splitlines()[0][:160]}); save it with torch.save(model.state_dict())") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: not a state_dict (a mapping of parameter names to tensors); "
                           "save it with torch.save(model.state_dict())")
    return state


def listed_keys(keys: list[str]) -> str:
    """The first few ``keys`` by name and their count, for one-line mismatch messages."""
    shown = ", ".join(keys[:_SHOWN])
    return f"{len(keys)} [{shown}{', ...' if len(keys) > _SHOWN else ''}]"


def fit_weights(model: nn.Module, spec: TorchvisionSpec, state: dict[str, torch.Tensor], path: str) -> list[str]:
    """Load ``state`` into ``model`` (built from ``spec``) and return what was adapted, as log lines.

    - a head for another number of classes is not loaded: the model keeps its fresh head for
      ``spec.num_classes`` classes (to be trained), and the returned note says so;
    - RGB weights for a grey model: the first convolution's kernels are summed over the colour
      channels (the grey image is what the RGB one would give with equal channels).
    Anything else that does not fit raises WeightsError: one line listing the missing,
    unexpected and wrongly shaped keys (the first few, and counts).
    """
    state = dict(state)
    own = model.state_dict()
    notes, head = [], set()
    w_key, b_key = head_keys(spec)
    if w_key in state and w_key in own and state[w_key].shape[0] != own[w_key].shape[0]:
        head = {w_key, b_key}
        notes.append(f"{path}: weights have {state[w_key].shape[0]} classes, the data {spec.num_classes}: "
                     f"head {w_key.rsplit('.', 1)[0]} replaced and trained from scratch")
        state.pop(w_key)
        state.pop(b_key, None)
    first = f"{ARCHS[spec.arch][0]}.weight"
    if first in state and first in own and state[first].shape[1] == 3 and own[first].shape[1] == 1:
        state[first] = state[first].sum(1, keepdim=True)
        notes.append(f"{path}: RGB first convolution summed over colour for grey input")
    load_fitting(model, state, path, spec.arch, may_miss=lambda k: k in head)
    return notes


def load_fitting(model: nn.Module, state: dict[str, torch.Tensor], path: str, arch: str, may_miss=lambda k: False
                 ) -> None:
    """Load ``state`` into ``model`` (non-strict) when every key fits: same names and shapes,
    except model keys ``may_miss`` allows to be absent. WeightsError otherwise, one line listing
    the first missing, unexpected and wrongly shaped keys and their counts."""
    own = model.state_dict()
    missing = [k for k in own if k not in state and not may_miss(k)]
    unexpected = [k for k in state if k not in own]
    shape = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in state
             if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or shape:
        parts = [f"missing {listed_keys(missing)}" if missing else "",
                 f"unexpected {listed_keys(unexpected)}" if unexpected else "",
                 f"wrong shape {listed_keys(shape)}" if shape else ""]
        raise WeightsError(f"{path}: weights do not fit {arch}: " + "; ".join(p for p in parts if p))
    model.load_state_dict(state, strict=False)
