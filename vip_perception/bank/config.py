"""The bank build recipe: dataclasses read from a YAML file (config/bank_*.yaml).

Everything the build decides (data, search space, parents, ViP rounds, profiling, selection)
is here, so a bank is reproduced from its YAML and a seed, and ``--quick`` is just a smaller
recipe (the file's ``quick:`` section, merged over the rest).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import yaml


@dataclass
class DataConfig:
    kind: str = "fashion_mnist"  # "fashion_mnist" (IDX files) or "image_folder" (one sub-folder per class)
    root: str = "/usr/share/datasets/fashion-mnist"  # IDX directory, or the ImageFolder root
    test_root: str = ""  # image_folder only: a separate test folder ("" = carve test out of root)
    val_size: int = 5000  # images held out of the training split to choose members
    test_size: int = 0  # image_folder without test_root: images held out for reporting
    train_limit: int = 0  # use only this many training images (0 = all); quick builds
    test_limit: int = 0  # report on only this many test images (0 = all)
    height: int = 28  # model input size; ImageFolder images are resized to it
    width: int = 28
    channels: int = 1  # 1 = greyscale, 3 = RGB
    mean: list[float] = field(default_factory=lambda: [0.2860])  # per channel, in [0, 1] units
    std: list[float] = field(default_factory=lambda: [0.3530])
    invert: bool = False  # preprocess computes 255 - pixel first (dark objects on light ground)


@dataclass
class TrainRecipe:
    """How one group of models is trained; ``epochs`` counts passes over the training split."""

    epochs: float = 1.0
    max_samples: int = 0  # cap on images seen (0 = no cap)
    mac_budget: float = 0.0  # if > 0: samples = clamp(mac_budget / macs, min_samples, epochs * n)
    min_samples: int = 0
    batch_size: int = 256
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    label_smoothing: float = 0.0
    augment: bool = False


@dataclass
class SearchSpace:
    """Base candidates: ``count`` specs sampled (seeded, deduplicated) from these choices."""

    count: int = 60
    families: dict[str, float] = field(default_factory=lambda: {"plain": 0.7, "resnet": 0.3})
    stages: list[int] = field(default_factory=lambda: [2, 3])  # number of conv stages
    layers: list[int] = field(default_factory=lambda: [1, 2])  # convs (plain) or blocks (resnet) per stage
    base_widths: list[int] = field(default_factory=lambda: [8, 12, 16, 24, 32])  # first-stage width; doubles per stage
    kernel_sizes: list[int] = field(default_factory=lambda: [3, 5])
    batch_norm: list[bool] = field(default_factory=lambda: [True, False])
    pools: list[str] = field(default_factory=lambda: ["max", "avg"])
    heads: list[str] = field(default_factory=lambda: ["gap", "flatten"])
    hidden: list[int] = field(default_factory=lambda: [0, 64])
    max_macs: float = 30e6  # resample specs above this cost (brief training cannot use them)
    extra: list[dict] = field(default_factory=list)  # explicit ModelSpec dicts added as they are
    train: TrainRecipe = field(default_factory=TrainRecipe)


@dataclass
class ParentConfig:
    name: str
    spec: dict  # ModelSpec fields
    train: TrainRecipe = field(default_factory=TrainRecipe)
    vip_variants: int = -1  # ViP variants of this parent (-1: vip.variants_per_parent; 0: none)


@dataclass
class ViPConfig:
    variants_per_parent: int = 10  # ViP layer groups fine-tuned per parent
    sensitivity_samples: int = 2000  # validation images for the per-layer sensitivity pass
    finetune: TrainRecipe = field(default_factory=lambda: TrainRecipe(
        epochs=0.15, optimizer="sgd", lr=0.01, schedule="step3", weight_decay=5e-4))


@dataclass
class ProfileConfig:
    threads: list[int] = field(default_factory=lambda: [1, 2])
    runs: int = 200  # timed runs per candidate and thread count
    warmup: int = 20
    rounds: int = 10  # runs are split into rounds; each round visits every candidate (shared noise)


@dataclass
class SelectConfig:
    threads: int = 2  # the profile the frontier uses
    quantile: str = "p95"
    epsilon: float = 0.005  # additive ε on validation accuracy (fraction)
    keep_best: bool = True  # always keep the most accurate frontier model
    min_accuracy: float = 0.0  # candidates below this validation accuracy are never members (seed paper 2's minimum)
    hv_accuracy_ref: float = 0.80  # hypervolume reference accuracy (latency ref: 1.05 x slowest candidate)


@dataclass
class BankConfig:
    name: str = "fashion_mnist"
    seed: int = 0
    threads: int = 2  # torch threads for training
    bf16: str = "auto"  # "auto" (if the CPU has native bf16) | "on" | "off"
    data: DataConfig = field(default_factory=DataConfig)
    search: SearchSpace = field(default_factory=SearchSpace)
    parents: list[ParentConfig] = field(default_factory=list)
    vip: ViPConfig = field(default_factory=ViPConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    select: SelectConfig = field(default_factory=SelectConfig)


def _build(cls, value: Any, where: str):
    """Recursively turn a YAML mapping into dataclass ``cls``; unknown keys are errors."""
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(value).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown} (known: {sorted(known)})")
    kwargs = {}
    hints = {"data": DataConfig, "search": SearchSpace, "vip": ViPConfig, "profile": ProfileConfig,
             "select": SelectConfig, "train": TrainRecipe, "finetune": TrainRecipe}
    for key, val in value.items():
        if key == "parents":
            kwargs[key] = [_build(ParentConfig, p, f"{where}.parents[{i}]") for i, p in enumerate(val or [])]
        elif key in hints and isinstance(val, dict):
            kwargs[key] = _build(hints[key], val, f"{where}.{key}")
        else:
            kwargs[key] = val
    return cls(**kwargs)


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def load_config(path: str, quick: bool = False) -> BankConfig:
    """Read a bank recipe; ``quick`` merges the file's ``quick:`` section over the rest."""
    try:
        with open(path) as fh:
            raw = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise ValueError(f"cannot read bank config {path}: {exc}") from exc
    quick_part = raw.pop("quick", {}) or {}
    if quick:
        raw = _merge(raw, quick_part)
    return _build(BankConfig, raw, path)


def to_dict(obj) -> Any:
    """Dataclass tree -> plain data (for logs and the manifest's build record)."""
    if is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
