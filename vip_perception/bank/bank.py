"""Loading a built bank: ``load_bank(path)`` -> Bank with its members' modules ready in eval mode.

Loading is side-effect free and all-or-nothing: the manifest is schema-checked and every file's
sha256 verified before any weight file is parsed (safetensors: no unpickling), and any problem
raises BankError naming the path.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..data.image_folder import to_model_array
from ..models import ModelSpec, build_model
from .manifest import CANDIDATES, read_manifest
from .records import BankError, CandidateRecord, InputSpec, LatencyProfile

__all__ = ["Bank", "Member", "load_bank", "build_member_module", "inference_module"]


def build_member_module(spec: dict, vip_layers: list[str]) -> nn.Module:
    """Rebuild a member's architecture (ModelSpec, then ViP on the listed convolutions)."""
    model = build_model(ModelSpec.from_dict(spec))
    if vip_layers:
        from ..vip import apply_vip

        model = apply_vip(model, list(vip_layers))
    return model.eval()


def inference_module(model: nn.Module) -> nn.Module:
    """The module a member runs: with its ViP convolutions fused (``vip_perception.fused``).

    The fused form computes the same function up to float rounding (pooling straight from the
    small map, following convolutions folded onto it), and at batch 1 on 28x28 inputs it is
    what makes ViP pay: the plain form's extra full-size upsampling costs about as much as the
    multiply-adds it saves (measured: plain vgg_m.vip00 1.16 ms vs the parent's 1.09 ms at 2
    threads; fused 0.90 ms). Plain convolutions are left as they are (``pack=False``), so
    parents and ViP members are compared on the same convolution code. Falls back to the
    plain ViP model when a layout cannot be fused.
    """
    from ..vip import vip_layers_of

    if not vip_layers_of(model):
        return model.eval()
    try:
        from ..fused import fuse_vip

        return fuse_vip(model, pack=False).eval()
    except (ImportError, ValueError, NotImplementedError, RuntimeError):
        return model.eval()


def load_weights(model: nn.Module, path: str) -> nn.Module:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise BankError(f"{path}: cannot read safetensors weights ({exc})") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BankError(f"{path}: weights do not fit the manifest's architecture ({exc})") from exc
    return model.eval()


@dataclass
class Member:
    """One compact-set model: metadata from the manifest plus its loaded eval-mode module."""

    name: str
    val_accuracy: float
    test_accuracy: float
    vip_layers: list[str]
    parent: str | None
    macs: int
    param_bytes: int
    latency: dict[int, LatencyProfile]
    module: nn.Module
    spec: dict = field(default_factory=dict)
    file: str = ""

    def quantile_ms(self, threads: int, q: str = "p95") -> float:
        """Profiled latency quantile (ms) at ``threads``; KeyError if that count was not profiled."""
        if threads not in self.latency:
            raise KeyError(f"member {self.name}: no latency profile at {threads} threads (have {sorted(self.latency)})")
        return self.latency[threads].quantile(q)


@dataclass
class Bank:
    path: str
    name: str
    task: str
    class_names: list[str]
    input_spec: InputSpec
    members: list[Member]  # compact ε-Pareto set, latency ascending (accuracy ascending too)
    manifest: dict

    @property
    def threads(self) -> list[int]:
        """Thread counts every member was profiled at."""
        sets = [set(m.latency) for m in self.members]
        return sorted(set.intersection(*sets)) if sets else []

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """uint8 image (H, W) or (H, W, C) in RGB order -> float32 (1, C, H, W) normalised.

        Resized with cv2.INTER_AREA, converted to grey for 1-channel banks, optionally inverted.
        """
        s = self.input_spec
        arr = to_model_array(image, s.height, s.width, s.channels)  # (H, W, C) uint8
        x = torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)  # (C, H, W)
        if s.invert:
            x = 1.0 - x
        mean = torch.tensor(s.mean, dtype=torch.float32).view(-1, 1, 1)
        std = torch.tensor(s.std, dtype=torch.float32).view(-1, 1, 1)
        return ((x - mean) / std).unsqueeze(0).contiguous()  # (1, C, H, W)

    def member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(f"bank {self.name}: no member {name!r} (have {[m.name for m in self.members]})")

    def candidates(self) -> list[CandidateRecord]:
        """All profiled candidates of the build (metadata only), from candidates.json."""
        import json

        path = os.path.join(self.path, CANDIDATES)
        if CANDIDATES not in self.manifest["files"]:
            return []
        with open(path) as fh:
            return [CandidateRecord.from_dict(d) for d in json.load(fh)["candidates"]]


def load_bank(path: str) -> Bank:
    """Validate and load the bank in directory ``path`` (holding manifest.json)."""
    path = os.fspath(path)
    if os.path.isfile(path) and os.path.basename(path) == "manifest.json":
        path = os.path.dirname(path) or "."
    data = read_manifest(path)  # schema + every sha256, before any weight file is parsed
    members = []
    for m in data["members"]:
        fpath = os.path.join(path, m["file"])
        try:
            module = build_member_module(m["spec"], m["vip_layers"])
        except (ValueError, TypeError, KeyError) as exc:
            raise BankError(f"{os.path.join(path, 'manifest.json')}: member {m['name']}: cannot rebuild architecture ({exc})") from exc
        module = inference_module(load_weights(module, fpath))
        latency = {int(t): LatencyProfile.from_dict(p) for t, p in m["latency"].items()}
        members.append(Member(
            name=m["name"], val_accuracy=m["val_accuracy"], test_accuracy=m["test_accuracy"],
            vip_layers=list(m["vip_layers"]), parent=m["parent"], macs=m["macs"], param_bytes=m["param_bytes"],
            latency=latency, module=module, spec=m["spec"], file=m["file"],
        ))
    if not members or any(not m.latency for m in members):
        raise BankError(f"{os.path.join(path, 'manifest.json')}: every member needs a latency profile")
    q, t = data["selection"]["quantile"], data["selection"]["threads"]
    members.sort(key=lambda m: (m.quantile_ms(t, q) if t in m.latency else 0.0, m.val_accuracy))
    return Bank(path=path, name=data["name"], task=data["task"], class_names=list(data["class_names"]),
                input_spec=InputSpec.from_dict(data["input"]), members=members, manifest=data)
