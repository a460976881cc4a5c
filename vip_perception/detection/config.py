"""The detector bank recipe (config/detector_conveyor.yaml) as dataclasses.

Why a file: the bank is reproduced from this YAML and a seed, and ``--quick`` is only the file's
``quick:`` section merged over the rest (tiny scenes, a few steps) for tests.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields

import yaml

from ..data.conveyor import ConveyorConfig
from .train import TrainConfig


@dataclass
class ProfileRecipe:
    threads: list[int] = field(default_factory=lambda: [1, 2])  # thread counts profiled
    runs: int = 60                                               # timed batch-1 runs per model and thread count
    rounds: int = 6                                              # interleaving rounds (shared machine noise)
    warmup: int = 5


@dataclass
class DetectorBuildConfig:
    name: str = "conveyor_detector"
    seed: int = 0
    scene: ConveyorConfig = field(default_factory=ConveyorConfig)
    detector: dict = field(default_factory=dict)       # DetectorSpec fields (anchors fitted, image size from scene)
    anchor_scenes: int = 500                           # training scenes whose boxes fit the anchors
    val_scenes: int = 300                              # selection and sensitivity (val split)
    sensitivity_scenes: int = 150                      # val scenes per single-layer ViP probe
    test_scenes: int = 500                             # reported only (test split)
    parent: TrainConfig = field(default_factory=TrainConfig)
    finetune: TrainConfig = field(default_factory=lambda: TrainConfig(steps=300, lr=5e-4, warmup=20))
    vip_groups: int = 3                                # ViP layer groups fine-tuned from the parent
    max_vip_layers: int = 7                            # least sensitive layers considered for groups
    epsilon: float = 0.01                              # ε-Pareto on val mAP@0.5
    profile: ProfileRecipe = field(default_factory=ProfileRecipe)

    def to_dict(self) -> dict:
        return asdict(self)


def _build(cls, value, where: str):
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(value).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown} (known: {sorted(known)})")
    return cls(**value)


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def load_detector_config(path: str, quick: bool = False) -> DetectorBuildConfig:
    """Read the recipe; unknown keys and bad values raise ValueError naming the file and key."""
    try:
        with open(path) as fh:
            raw = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise ValueError(f"cannot read detector config {path}: {exc}") from exc
    quick_part = raw.pop("quick", {}) or {}
    if quick:
        raw = _merge(raw, quick_part)
    subs = {"scene": ConveyorConfig, "parent": TrainConfig, "finetune": TrainConfig, "profile": ProfileRecipe}
    kwargs = {}
    for key, val in raw.items():
        kwargs[key] = _build(subs[key], val, f"{path}: {key}") if key in subs else val
    cfg = _build(DetectorBuildConfig, kwargs, path)
    if "light_range" in raw.get("scene", {}):
        cfg.scene = ConveyorConfig(**{**raw["scene"], "light_range": tuple(raw["scene"]["light_range"])})
    if cfg.sensitivity_scenes > cfg.val_scenes:
        raise ValueError(f"{path}: sensitivity_scenes {cfg.sensitivity_scenes} > val_scenes {cfg.val_scenes}")
    return cfg
