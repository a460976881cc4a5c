"""Bank build recipes: typed dataclasses read from YAML (config/bank_*.yaml, config/detector_*.yaml).

A bank is reproduced from its recipe and a seed, and ``--quick`` is only the file's ``quick:``
section merged over the rest. Both builders read their recipe with the one loader,
``load_recipe(path, ClassifierRecipe | DetectorRecipe, quick)``: unknown keys and values of the
wrong type raise ``RecipeError`` naming the file and the field (``file.yaml: search.train.lr``).
"""
from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, TypeVar

import yaml

from ..data.conveyor import ConveyorConfig

T = TypeVar("T")


class RecipeError(ValueError):
    """A recipe file that cannot be read or does not match its dataclass; the message names both."""


# ---- classifier bank ---------------------------------------------------------------------------
@dataclass
class DataConfig:
    """Where the classifier bank's images come from and how they are normalised."""

    # "fashion_mnist" (IDX files at 28x28), "station" (Fashion-MNIST garments rendered as the
    # station camera shows them, at height x width), "image_folder" (one sub-folder per class, read
    # into memory) or "user_data" (an ImageFolder with or without train/val/test splits, detected
    # by data.user_data and streamed from disk)
    kind: str = "fashion_mnist"
    root: str = ""  # IDX directory or ImageFolder root; "" = $VIP_FASHION_MNIST_DIR or Debian's dataset
    test_root: str = ""  # image_folder only: a separate test folder ("" = carve test out of root)
    val_size: int = 5000  # images held out of the training split to choose members
    test_size: int = 0  # image_folder without test_root: images held out for reporting
    train_limit: int = 0  # use only this many training images (0 = all); quick builds
    test_limit: int = 0  # report on only this many test images (0 = all)
    height: int = 28  # model input height, pixels; ImageFolder images are resized to it
    width: int = 28  # model input width, pixels
    channels: int = 1  # 1 = greyscale, 3 = RGB
    mean: list[float] = field(default_factory=lambda: [0.2860])  # per channel, in [0, 1] units
    std: list[float] = field(default_factory=lambda: [0.3530])  # per channel, in [0, 1] units
    invert: bool = False  # preprocess computes 255 - pixel first (dark objects on light ground)
    station: dict = field(default_factory=dict)  # kind "station": StationAugment ranges overriding the defaults
    workers: int = 2  # kind "user_data": DataLoader worker processes decoding images
    val_fraction: float = 0.15  # kind "user_data" without its own splits: images held out for val (stratified)
    test_fraction: float = 0.15  # ... and for test


@dataclass
class TrainRecipe:
    """How one group of classifiers is trained; ``epochs`` counts passes over the training split."""

    epochs: float = 1.0  # passes over the training split
    max_samples: int = 0  # cap on images seen (0 = no cap)
    mac_budget: float = 0.0  # if > 0: samples = clamp(mac_budget / macs, min_samples, epochs * n)
    min_samples: int = 0  # lower bound of the MAC-budgeted sample count
    batch_size: int = 256  # images per optimiser step
    optimizer: str = "sgd"  # "sgd" (nesterov momentum) or "adamw"
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9  # sgd momentum
    weight_decay: float = 5e-4  # on weights with more than one dimension
    schedule: str = "onecycle"  # "onecycle" | "cosine" | "step3"
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    augment: bool = False  # random crop (pad 2) + h-flip; kind "station": the camera's conditions
    low_res_fraction: float = 0.0  # first fraction of the steps at half resolution (gap heads only)
    station: dict = field(default_factory=dict)  # kind "station": ranges for this run, over data.station


@dataclass
class SearchSpace:
    """Base candidates: ``count`` specs sampled (seeded, deduplicated) from these choices."""

    count: int = 60  # distinct sampled specs
    families: dict[str, float] = field(default_factory=lambda: {"plain": 0.7, "resnet": 0.3})  # family -> weight
    stages: list[int] = field(default_factory=lambda: [2, 3])  # number of conv stages
    layers: list[int] = field(default_factory=lambda: [1, 2])  # convs (plain) or blocks (resnet) per stage
    base_widths: list[int] = field(default_factory=lambda: [8, 12, 16, 24, 32])  # first-stage width; doubles per stage
    kernel_sizes: list[int] = field(default_factory=lambda: [3, 5])  # conv kernel sizes
    batch_norm: list[bool] = field(default_factory=lambda: [True, False])  # plain family only
    pools: list[str] = field(default_factory=lambda: ["max", "avg"])  # pooling between stages
    heads: list[str] = field(default_factory=lambda: ["gap", "flatten"])  # classifier heads
    hidden: list[int] = field(default_factory=lambda: [0, 64])  # flatten head's hidden width (0 = none)
    max_macs: float = 30e6  # resample specs above this cost (brief training cannot use them)
    extra: list[dict] = field(default_factory=list)  # explicit ModelSpec dicts added as they are
    train: TrainRecipe = field(default_factory=TrainRecipe)  # how base candidates are trained


@dataclass
class ParentConfig:
    """A model trained properly: the source of ViP variants."""

    name: str  # candidate name (also the prefix of its variants' names)
    # ModelSpec fields, or {"arch": NAME} for a torchvision classifier (models.TorchvisionSpec);
    # input size, channels and classes come from the data section
    spec: dict
    train: TrainRecipe = field(default_factory=TrainRecipe)  # its training
    # further training stages continuing the first (full resolution, each with its own schedule
    # and conditions): one stage or a list, run in order; resumable per stage: a parent with
    # fewer stages recorded than listed gets the rest on the next run
    refine: TrainRecipe | list[TrainRecipe] | None = None
    vip_variants: int = -1  # ViP variants of this parent (-1: vip.variants_per_parent; 0: none)
    weights: str = ""  # torchvision arch: local .pth state_dict or .safetensors to start from ("" = scratch)


@dataclass
class ViPConfig:
    """How ViP variants are derived from each parent."""

    variants_per_parent: int = 10  # ViP layer groups fine-tuned per parent
    sensitivity_samples: int = 2000  # validation images for the per-layer sensitivity pass
    finetune: TrainRecipe = field(default_factory=lambda: TrainRecipe(
        epochs=0.15, optimizer="sgd", lr=0.01, schedule="step3", weight_decay=5e-4))  # fine-tuning from the parent


@dataclass
class ProfileConfig:
    """Batch-1 latency profiling of every candidate."""

    threads: list[int] = field(default_factory=lambda: [1, 2])  # thread counts profiled
    runs: int = 200  # timed runs per candidate and thread count
    warmup: int = 20  # untimed runs first
    rounds: int = 10  # runs are split into rounds; each round visits every candidate (shared noise)


@dataclass
class SelectConfig:
    """Pareto / ε-Pareto selection of the members."""

    threads: int = 2  # the profile the frontier uses
    quantile: str = "p95"  # latency quantile the frontier uses
    epsilon: float = 0.005  # additive ε on validation accuracy (fraction)
    keep_best: bool = True  # always keep the most accurate frontier model
    min_accuracy: float = 0.0  # candidates below this validation accuracy are never members
    vip_min_speedup: float = 1.0  # a ViP variant must be this much faster than its parent (p50, every
    #                               profiled thread count) to be eligible; 1.0 = no rule
    vip_max_val_drop: float = 1.0  # ... and at most this far below its parent in validation accuracy
    #                                (fraction: 0.01 = 1 point); 1.0 = no rule
    latency_tie: float = 0.0  # a front member at most this fraction faster than a more accurate one
    #                           counts as no faster (pareto.eps_pareto); 0 = off
    hv_accuracy_ref: float = 0.80  # hypervolume reference accuracy (latency ref: 1.05 x slowest candidate)

    def __post_init__(self):
        if not self.vip_min_speedup > 0:
            raise ValueError(f"vip_min_speedup must be > 0 (1.0 = no rule), got {self.vip_min_speedup}")
        if not 0.0 <= self.vip_max_val_drop <= 1.0:
            raise ValueError(f"vip_max_val_drop is a fraction in [0, 1] (0.01 = 1 point; 1.0 = no rule), "
                             f"got {self.vip_max_val_drop}")
        if not 0.0 <= self.latency_tie < 1.0:
            raise ValueError(f"latency_tie is a fraction in [0, 1) (0.05 = 5%; 0 = off), got {self.latency_tie}")


@dataclass
class ClassifierRecipe:
    """Everything ``bank build`` decides: data, search space, parents, ViP, profiling, selection."""

    name: str = "fashion_mnist"  # the bank's name (manifest "name")
    seed: int = 0  # every sample, split and initialisation derives from it
    threads: int = 2  # torch threads for training
    bf16: str = "auto"  # "auto" (if the CPU has native bf16) | "on" | "off"
    data: DataConfig = field(default_factory=DataConfig)  # images and normalisation
    search: SearchSpace = field(default_factory=SearchSpace)  # base candidates
    parents: list[ParentConfig] = field(default_factory=list)  # properly trained models
    vip: ViPConfig = field(default_factory=ViPConfig)  # ViP variants of the parents
    profile: ProfileConfig = field(default_factory=ProfileConfig)  # latency profiling
    select: SelectConfig = field(default_factory=SelectConfig)  # member selection


# ---- detector bank -----------------------------------------------------------------------------
@dataclass
class DetectorTrainRecipe:
    """One detector training run (parents from scratch, ViP variants fine-tuned from the parent)."""

    steps: int = 2000  # optimiser steps
    batch: int = 4  # scenes per step
    scenes: int = 4000  # distinct training scenes, cycled in a seeded order per epoch
    lr: float = 2e-3  # AdamW peak learning rate
    weight_decay: float = 1e-4  # AdamW weight decay
    warmup: int = 100  # linear warm-up steps
    clip: float = 10.0  # gradient-norm clip (early RPN losses spike)
    threads: int = 1  # torch intra-op threads
    seed: int = 0  # initialisation and scene order
    ckpt_every: int = 100  # steps between resumable checkpoints
    log_every: int = 20  # steps between train.jsonl lines
    hflip: bool = False  # mirror half the images left-right (seeded per step)
    workers: int = 0  # DataLoader worker processes decoding images (0: in the training process)


@dataclass
class DetectorProfileRecipe:
    """Batch-1 latency profiling of every detector candidate."""

    threads: list[int] = field(default_factory=lambda: [1, 2])  # thread counts profiled (selection uses the first)
    runs: int = 60  # timed batch-1 runs per model and thread count
    rounds: int = 6  # interleaving rounds (shared machine noise)
    warmup: int = 5  # untimed runs first


@dataclass
class DetectorRecipe:
    """Everything ``bank build-detector`` decides: data, architecture, training, ViP, selection."""

    name: str = "conveyor_detector"  # the bank's name (manifest "name")
    seed: int = 0  # parent initialisation; ViP fine-tunes use seed + 100 + group index
    data: str = ""  # a COCO directory (data.user_data); "" = conveyor scenes generated from `scene`
    scene: ConveyorConfig = field(default_factory=ConveyorConfig)  # how the conveyor scenes look (data "")
    arch: str = ""  # a torchvision detector (models.torchvision_detector); "" = the project's VGG Faster R-CNN
    weights: str = ""  # arch only: a local torchvision checkpoint (.pth state_dict / .safetensors) to start from
    input_size: list[int] = field(default_factory=list)  # [height, width]; [] = the scene size (data "") or required
    detector: dict = field(default_factory=dict)  # DetectorSpec fields (anchors fitted), or with `arch`
    #                                               TorchvisionDetectorSpec's proposals / box_representation
    anchor_scenes: int = 500  # training images whose boxes fit the anchors (project detector)
    val_scenes: int = 300  # selection and sensitivity (val split; at most the split's size)
    sensitivity_scenes: int = 150  # val images per single-layer ViP probe (<= val_scenes)
    test_scenes: int = 500  # reported only (test split; at most the split's size)
    parent: DetectorTrainRecipe = field(default_factory=DetectorTrainRecipe)  # parent training
    finetune: DetectorTrainRecipe = field(default_factory=lambda: DetectorTrainRecipe(
        steps=300, lr=5e-4, warmup=20))  # each ViP group, from the parent
    vip_groups: int = 3  # ViP layer groups fine-tuned from the parent
    max_vip_layers: int = 7  # least sensitive layers considered for groups
    epsilon: float = 0.01  # ε-Pareto on val mAP@0.5
    profile: DetectorProfileRecipe = field(default_factory=DetectorProfileRecipe)  # latency profiling


# ---- the loader --------------------------------------------------------------------------------
def _merge(base: dict, over: dict) -> dict:
    """``over`` merged into a copy of ``base``; nested mappings merge, everything else replaces."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _at(where: str, key) -> str:
    """Field path for messages: ``file.yaml: search.train.lr``."""
    return f"{where} {key}" if where.endswith(":") else f"{where}.{key}"


def _fail(where: str, message: str) -> RecipeError:
    return RecipeError(f"{where.rstrip(':')}: {message}")


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp)


def _convert(tp, value: Any, where: str) -> Any:
    """``value`` as type ``tp`` (dataclass, list[X], dict[K, V], tuple, int/float/str/bool, Any)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if is_dataclass(tp):
        return _build(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return _convert(arg, value, where)
            except RecipeError:
                continue
        raise _fail(where, f"expected {tp}, got {value!r}")
    if origin is list or tp is list:
        if not isinstance(value, list):
            raise _fail(where, f"expected a list, got {value!r}")
        return [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)] if args else value
    if origin is tuple or tp is tuple:
        if not isinstance(value, (list, tuple)):
            raise _fail(where, f"expected a list, got {value!r}")
        return tuple(value)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _fail(where, f"expected a mapping, got {value!r}")
        return {k: _convert(args[1], v, _at(where, k)) for k, v in value.items()} if args else value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise _fail(where, f"expected {_type_name(tp)}, got {value!r}")
        return value
    if tp is float:
        raise _fail(where, f"expected a number, got {value!r}")
    return value  # Any and other annotations: taken as written


def _build(cls: type[T], value: Any, where: str) -> T:
    """A mapping -> dataclass ``cls``; unknown keys, missing required keys and bad types raise."""
    if not isinstance(value, dict):
        raise _fail(where, f"expected a mapping, got {type(value).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise _fail(where, f"unknown keys {unknown} (known: {sorted(known)})")
    kwargs = {k: _convert(hints[k], v, _at(where, k)) for k, v in value.items()}
    missing = [n for n, f in known.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise _fail(where, f"missing required keys {missing}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # a dataclass's own __post_init__ check
        raise _fail(where, f"{exc}") from exc


def _check_detector(recipe: DetectorRecipe, path: str) -> None:
    if recipe.input_size and (len(recipe.input_size) != 2 or min(recipe.input_size) < 32):
        raise RecipeError(f"{path}: input_size must be [height, width], both >= 32, got {recipe.input_size}")
    if recipe.data and not recipe.input_size:
        raise RecipeError(f"{path}: input_size [height, width] is required with data (a COCO directory)")
    if recipe.weights and not recipe.arch:
        raise RecipeError(f"{path}: weights start a torchvision detector; set arch too")
    if recipe.sensitivity_scenes > recipe.val_scenes:
        raise RecipeError(f"{path}: sensitivity_scenes {recipe.sensitivity_scenes} > val_scenes {recipe.val_scenes}")
    if not recipe.profile.threads:
        raise RecipeError(f"{path}: profile.threads must list at least one thread count")


def load_recipe(path: str, recipe_type: type[T], quick: bool = False) -> T:
    """Read the YAML recipe at ``path`` as ``recipe_type`` (ClassifierRecipe or DetectorRecipe).

    ``quick`` merges the file's ``quick:`` section over the rest. Raises RecipeError (a
    ValueError) naming the file and the field for an unreadable file, an unknown key, a missing
    required key or a value of the wrong type.
    """
    try:
        with open(path) as fh:
            raw = yaml.safe_load(fh) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RecipeError(f"cannot read recipe {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping, got {type(raw).__name__}")
    quick_part = raw.pop("quick", {}) or {}
    if quick:
        raw = _merge(raw, quick_part)
    recipe = _build(recipe_type, raw, f"{path}:")
    if isinstance(recipe, DetectorRecipe):
        _check_detector(recipe, path)
    return recipe


def to_dict(obj) -> Any:
    """Dataclass tree -> plain JSON data (tuples become lists), for logs and the manifest's build record."""
    if is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
