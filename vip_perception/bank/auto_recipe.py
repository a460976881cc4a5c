"""The recipe of a one-command classifier build: the data directory detected, the parents named
(torchvision architectures or the project's own families), their cost measured for a few steps,
and the time budget split by ``bank.plan.plan_build``.

The result is an ordinary ``ClassifierRecipe`` (``data.kind: user_data``), written to the work
directory and recorded in the bank's manifest, so the build repeats exactly with ``bank build
--config`` of that recipe.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..jsonfile import write_json
from ..models import TORCHVISION_ARCHS, build_classifier
from .plan import BuildPlan, ParentCost, plan_build
from .recipe import (
    ClassifierRecipe,
    DataConfig,
    ParentConfig,
    ProfileConfig,
    SearchSpace,
    SelectConfig,
    TrainRecipe,
    ViPConfig,
    load_recipe,
    to_dict,
)

log = logging.getLogger("vip_perception.bank")

# The project's own families by name: the parents of the Fashion-MNIST recipe, with resolution-free heads.
OWN_ARCHS = {
    "vgg_s": {"family": "plain", "stages": [[16, 16], [32, 32], [64]], "head": "gap"},
    "vgg_m": {"family": "plain", "stages": [[32, 32], [64, 64], [128, 128]], "head": "gap"},
    "res_s": {"family": "resnet", "stages": [[16], [32], [64]], "stem": 16, "head": "gap"},
}
DEFAULT_ARCHS = ("resnet18", "vgg_m")
MEAN_RGB, STD_RGB = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # torchvision's ImageNet statistics
MEAN_GREY, STD_GREY = [0.449], [0.226]
PROBE_IMAGES = 16  # training images decoded to choose channels and input size and to time decoding


class RequestError(ValueError):
    """A one-command build request that cannot be planned; the message names the flag."""


@dataclass
class BuildRequest:
    """What ``bank build --data`` was asked for."""

    data: str  # a directory data.user_data recognises (ImageFolder, with or without splits)
    archs: list[str] = field(default_factory=list)  # parent names: TORCHVISION_ARCHS or OWN_ARCHS ([] = default)
    weights: list[str] = field(default_factory=list)  # local weight files, the i-th for the i-th arch
    input_size: tuple[int, int] | None = None  # (height, width); None = from the images
    budget_min: float = 20.0  # minutes for the whole build
    threads: int = 1  # training and profiling threads
    workers: int = 2  # DataLoader decoding processes
    seed: int = 0

    def to_dict(self) -> dict:
        return {"data": os.path.abspath(self.data), "archs": list(self.archs),
                "weights": [os.path.abspath(w) for w in self.weights],
                "input_size": list(self.input_size) if self.input_size else None, "budget_min": self.budget_min,
                "threads": self.threads, "workers": self.workers, "seed": self.seed}


def parse_input_size(text: str) -> tuple[int, int]:
    """``"64"`` -> (64, 64); ``"48x64"`` -> (48, 64) as HxW. RequestError otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", text or "")
    if not m or int(m.group(1)) < 8 or (m.group(2) and int(m.group(2)) < 8):
        raise RequestError(f"--input-size {text!r}: give N or HxW in pixels (each >= 8), e.g. 64 or 48x64")
    h = int(m.group(1))
    return h, int(m.group(2) or h)


def parent_configs(archs: list[str], weights: list[str]) -> list[ParentConfig]:
    """One ParentConfig per arch (names deduplicated), the i-th weights file with the i-th arch."""
    archs = list(archs) or list(DEFAULT_ARCHS)
    unknown = [a for a in archs if a not in TORCHVISION_ARCHS and a not in OWN_ARCHS]
    if unknown:
        raise RequestError(f"--arch: unknown {unknown}; known: {', '.join([*TORCHVISION_ARCHS, *OWN_ARCHS])}")
    if len(weights) > len(archs):
        raise RequestError(f"--weights: {len(weights)} files for {len(archs)} architectures; give at most one "
                           "per --arch entry, in the same order")
    out, seen = [], {}
    for i, arch in enumerate(archs):
        w = weights[i] if i < len(weights) else ""
        if w and arch not in TORCHVISION_ARCHS:
            raise RequestError(f"--weights {w}: {arch} is one of the project's own families; weight files load "
                               f"into torchvision architectures ({', '.join(TORCHVISION_ARCHS)})")
        seen[arch] = seen.get(arch, 0) + 1
        name = arch if seen[arch] == 1 else f"{arch}_{seen[arch]}"
        spec = {"arch": arch} if arch in TORCHVISION_ARCHS else dict(OWN_ARCHS[arch])
        out.append(ParentConfig(name=name, spec=spec, weights=os.path.abspath(w) if w else ""))
    return out


def probe_images(dataset, count: int = PROBE_IMAGES, seed: int = 0) -> tuple[int, tuple[int, int], float]:
    """(channels, median (height, width), seconds per decoded image) of up to ``count`` items:
    1 channel when every probed image is grey (R = G = B)."""
    idx = np.random.default_rng(seed).permutation(len(dataset))[:count]
    t0, grey, sizes = time.perf_counter(), True, []
    for i in idx:
        image, _ = dataset[int(i)]  # (H, W, 3) uint8 RGB
        sizes.append(image.shape[:2])
        grey = grey and bool((image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all())
    per_image = (time.perf_counter() - t0) / max(1, len(idx))
    h, w = (int(np.median([s[k] for s in sizes])) for k in (0, 1))
    return (1 if grey else 3), (h, w), per_image


def default_input_size(median_hw: tuple[int, int], torchvision: bool) -> tuple[int, int]:
    """The images' median size, multiples of 8, within [32 (torchvision) or 16, 224], aspect kept."""
    lo = 32 if torchvision else 16
    scale = min(1.0, 224 / max(median_hw))
    return tuple(int(min(224, max(lo, round(v * scale / 8) * 8))) for v in median_hw)


def _time_steps(model: nn.Module, x: torch.Tensor, train: bool, repeats: int = 2) -> float:
    """Seconds per call (training step or inference) on ``x``, after one untimed call."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-4) if train else None
    y = torch.zeros(x.shape[0], dtype=torch.long)
    model.train(train)
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        if train:
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            with torch.inference_mode():
                model(x)
        if i:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def measure_cost(name: str, spec: dict, batch: int, decode_s: float, workers: int) -> ParentCost:
    """A parent's throughputs at ``spec``'s input: a few steps on random images; training
    throughput shares the cores with ``workers`` decoding at ``decode_s`` per image."""
    from ..vip import vip_layer_names

    model = build_classifier(spec)
    shape = (batch, spec["in_channels"], *spec["input_size"])
    x = torch.randn(shape)
    step = _time_steps(model, x, train=True) / batch
    infer = _time_steps(model, x, train=False) / batch
    one = _time_steps(model, x[:1], train=False, repeats=3)
    train_s = step + decode_s / max(1, workers)
    layers = len(vip_layer_names(model.eval(), (1, *shape[1:])))
    return ParentCost(name, 1.0 / train_s, 1.0 / (infer + decode_s / max(1, workers)), one * 1000.0, layers)


def _train_recipe(epochs: float, batch: int, pretrained: bool) -> TrainRecipe:
    if pretrained:  # fine-tuning: small steps keep what the weights know
        return TrainRecipe(epochs=epochs, batch_size=batch, optimizer="sgd", lr=0.01, momentum=0.9,
                           weight_decay=1e-4, schedule="cosine", label_smoothing=0.1, augment=True)
    return TrainRecipe(epochs=epochs, batch_size=batch, optimizer="adamw", lr=2e-3, weight_decay=5e-4,
                       schedule="onecycle", label_smoothing=0.1, augment=True)


def auto_recipe(req: BuildRequest, measure=measure_cost) -> tuple[ClassifierRecipe, BuildPlan]:
    """Detect the data, measure each parent and plan the budget; the recipe and the plan.

    RequestError for flags that do not fit; DatasetError (data.user_data) for the data.
    ``measure`` has ``measure_cost``'s signature (tests pass fake throughputs).
    """
    from ..data.user_data import detect_dataset, open_split

    t_start = time.time()
    if req.budget_min <= 0:
        raise RequestError(f"--time-budget {req.budget_min}: give minutes > 0")
    split = DataConfig()  # the builder detects the data again with these fractions: same splits
    info = detect_dataset(req.data, "classification", seed=req.seed, val_fraction=split.val_fraction,
                          test_fraction=split.test_fraction)  # COCO data go to auto_detector
    if len(info.class_names) < 2:
        raise RequestError(f"--data {req.data}: {len(info.class_names)} class; a classifier needs at least 2")
    parents = parent_configs(req.archs, req.weights)
    train_split = open_split(info, "train", req.seed)
    channels, median_hw, decode_s = probe_images(train_split, seed=req.seed)
    any_tv = any("arch" in p.spec for p in parents)
    h, w = req.input_size or default_input_size(median_hw, any_tv)
    if any_tv and min(h, w) < 32:
        raise RequestError(f"--input-size {h}x{w}: torchvision architectures need at least 32x32")
    n_train, n_val = info.splits["train"], info.splits["val"]
    batch = int(min(64 if n_train >= 2000 else 32, n_train))
    common = {"in_channels": channels, "input_size": [h, w], "num_classes": len(info.class_names)}
    check_weights(parents, common)
    torch.set_num_threads(max(1, req.threads))
    costs = [measure(p.name, {**common, **p.spec}, batch, decode_s, req.workers) for p in parents]
    for c in costs:
        log.info("plan: %-20s %.0f train img/s, %.0f eval img/s, %.2f ms batch-1, %d ViP-able layers", c.name,
                 c.train_ips, c.eval_ips, c.latency_ms, c.vip_layers)
    spent = time.time() - t_start
    budget_s = req.budget_min * 60.0 - spent
    if budget_s <= 0.1 * req.budget_min * 60.0:
        raise RequestError(f"--time-budget {req.budget_min:g}: detecting and measuring took {spent:.0f} s, "
                           "which leaves too little to plan; give more minutes")
    plan = plan_build(budget_s, n_train, n_val, costs, threads=1)
    by_name = {pp.name: pp for pp in plan.parents}
    kept = []
    for p in parents:
        if p.name in by_name:
            p.train = _train_recipe(by_name[p.name].epochs, batch, bool(p.weights))
            p.vip_variants = by_name[p.name].vip_variants
            kept.append(p)
    mean, std = (MEAN_GREY, STD_GREY) if channels == 1 else (MEAN_RGB, STD_RGB)
    data = DataConfig(kind="user_data", root=os.path.abspath(req.data), height=h, width=w, channels=channels,
                      mean=mean, std=std, workers=req.workers, val_size=n_val)
    cfg = ClassifierRecipe(
        name=os.path.basename(os.path.normpath(req.data)) or "bank", seed=req.seed, threads=max(1, req.threads),
        bf16="auto", data=data, search=SearchSpace(count=0), parents=kept,
        vip=ViPConfig(variants_per_parent=0, sensitivity_samples=plan.sensitivity_samples,
                      finetune=TrainRecipe(epochs=plan.finetune_epochs, batch_size=batch, optimizer="sgd", lr=0.01,
                                           schedule="step3", weight_decay=5e-4, augment=True)),
        profile=ProfileConfig(threads=[max(1, req.threads)], runs=plan.profile_runs,
                              warmup=max(2, plan.profile_runs // 10), rounds=min(10, plan.profile_runs)),
        select=SelectConfig(threads=max(1, req.threads), quantile="p95", epsilon=0.005, vip_min_speedup=1.05),
    )
    return cfg, plan


def check_weights(parents: list[ParentConfig], common: dict) -> None:
    """Load each parent's weight file into its architecture now, before any training: WeightsError
    (one line) for a file that does not fit; a class-count mismatch is allowed (logged at build)."""
    from ..models import TorchvisionSpec
    from ..models.torchvision_arch import fit_weights, read_weights

    for p in parents:
        if p.weights:
            spec = TorchvisionSpec.from_dict({**common, **p.spec})
            fit_weights(build_classifier(spec), spec, read_weights(p.weights), p.weights)


def planned_recipe(req: BuildRequest, work: str, measure=measure_cost) -> tuple[ClassifierRecipe, BuildPlan, str]:
    """The recipe and plan for ``req`` in work directory ``work``: planned now and written to
    WORK/{recipe.yaml, plan.json, request.json}, or read back when ``work`` was planned for the
    same request (a resumed build keeps its plan, whatever its ``--time-budget``). RequestError
    when ``work`` holds another request's plan. ``measure``: as for ``auto_recipe``."""
    return plan_once(req, work, ClassifierRecipe, BuildPlan.from_dict, lambda: auto_recipe(req, measure),
                     "vip-perception bank build --config")


def plan_once(req: BuildRequest, work: str, recipe_type: type, plan_from_dict, make, repeat: str) -> tuple:
    """(recipe, plan, recipe path) for ``req`` in ``work``: read back when ``work`` was planned for
    the same request (whatever its ``--time-budget``), else ``make()`` -> (recipe, plan) written to
    WORK/{recipe.yaml, plan.json, request.json}. ``repeat`` is the command that reruns a recipe."""
    import yaml

    recipe_path, plan_path, request_path = (os.path.join(work, f) for f in ("recipe.yaml", "plan.json",
                                                                             "request.json"))
    want = {k: v for k, v in req.to_dict().items() if k != "budget_min"}
    if os.path.isfile(request_path) and os.path.isfile(recipe_path) and os.path.isfile(plan_path):
        with open(request_path) as fh:
            had = json.load(fh)
        if {k: v for k, v in had.items() if k != "budget_min"} != want:
            raise RequestError(f"--work {work}: planned for another request ({request_path}); use another --work "
                               "or remove that directory")
        with open(plan_path) as fh:
            plan = plan_from_dict(json.load(fh))
        log.info("plan: resuming %s", recipe_path)
        return load_recipe(recipe_path, recipe_type), plan, recipe_path
    cfg, plan = make()
    os.makedirs(work, exist_ok=True)
    with open(recipe_path, "w") as fh:
        fh.write(f"# written by `vip-perception bank build --data`; repeat with `{repeat}` of this file\n")
        yaml.safe_dump(to_dict(cfg), fh, sort_keys=False)
    write_json(plan_path, plan.to_dict())
    write_json(request_path, req.to_dict())
    return cfg, plan, recipe_path
