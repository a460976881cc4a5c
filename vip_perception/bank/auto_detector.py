"""The recipe of a one-command detector build: a COCO directory detected, one parent named (a
torchvision detector), its training step and inference measured on this machine, and the time
budget split between parent training, ViP sensitivity, ViP fine-tuning, evaluation and
profiling.

The result is an ordinary ``DetectorRecipe`` (``data``: the COCO directory), written to the work
directory and recorded in the bank's manifest, so the build repeats exactly with ``bank
build-detector --config`` of that recipe. A resumed build reads its recipe back instead of
planning again.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .auto_recipe import BuildRequest, RequestError, plan_once
from .recipe import DetectorProfileRecipe, DetectorRecipe, DetectorTrainRecipe

log = logging.getLogger("vip_perception.bank")

DEFAULT_DETECTOR = "fasterrcnn_resnet18_fpn"  # dense 3x3 convolutions: where ViP pays (see torchvision_detector)
BATCH = 4  # images per training step
MAX_SIDE = 640  # default input: the images' median size, longer side at most this
PARENT_SHARE = 0.72  # of the training time; the rest fine-tunes the ViP groups
MAX_EPOCHS = 80  # parent passes over the training split at most (small sets)
MIN_PARENT_STEPS = 50  # below this the budget cannot give a useful detector
VIP_GROUPS = 3
VIP_STEP_COST = 1.1  # a ViP variant's training step relative to its parent's
PROFILE = DetectorProfileRecipe(threads=[1, 2], runs=40, rounds=4, warmup=3)


@dataclass
class DetectorCost:
    """What one parent costs on this machine (measured by ``measure_detector``)."""

    step_s: float  # one training step of BATCH images at the build's threads
    infer_s: float  # one image's inference, batch 1, the build's threads
    vip_layers: int  # ViP-able backbone convolutions


@dataclass
class DetectorPlan:
    """How the budget was split; ``skipped`` says what it left out."""

    budget_s: float
    seconds: dict[str, float] = field(default_factory=dict)  # phase -> planned seconds
    parent_steps: int = 0
    finetune_steps: int = 0
    vip_groups: int = 0
    cost: dict = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"budget_s": self.budget_s, "seconds": self.seconds, "parent_steps": self.parent_steps,
                "finetune_steps": self.finetune_steps, "vip_groups": self.vip_groups, "cost": self.cost,
                "skipped": self.skipped}


def detector_arch(req: BuildRequest) -> str:
    """The one torchvision detector a detection build trains (``--arch``; default DEFAULT_DETECTOR)."""
    from ..models.torchvision_detector import DETECTOR_ARCHS

    archs = list(req.archs) or [DEFAULT_DETECTOR]
    if len(archs) > 1:
        raise RequestError(f"--arch {','.join(archs)}: a detection bank has one parent (its ViP variants are the "
                           "other members); build one bank per architecture")
    if archs[0] not in DETECTOR_ARCHS:
        raise RequestError(f"--arch {archs[0]}: not a detector; known: {', '.join(DETECTOR_ARCHS)}")
    if len(req.weights) > 1:
        raise RequestError(f"--weights: {len(req.weights)} files for one detector; give at most one")
    return archs[0]


def default_detector_size(median_hw: tuple[int, int]) -> tuple[int, int]:
    """The images' median size, the longer side at most MAX_SIDE, multiples of 16, >= 64."""
    scale = min(1.0, MAX_SIDE / max(median_hw))
    return tuple(int(max(64, round(v * scale / 16) * 16)) for v in median_hw)


def measure_detector(spec: dict, threads: int, weights: str = "") -> DetectorCost:
    """Time a training step (BATCH random images with two boxes each, after one untimed step) and
    batch-1 inference of ``spec``'s detector at ``threads``; checks ``weights`` fit it."""
    from ..models.torchvision_arch import read_weights
    from ..models.torchvision_detector import (
        TorchvisionDetectorSpec,
        backbone_vip_layers,
        build_torchvision_detector,
        fit_detector_weights,
    )

    s = TorchvisionDetectorSpec.from_dict(spec)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_torchvision_detector(s)
    if weights:
        fit_detector_weights(model, s, read_weights(weights), weights)
    h, w = s.image_size
    images = [torch.rand(3, h, w) for _ in range(BATCH)]
    box = torch.tensor([[0.1 * w, 0.1 * h, 0.4 * w, 0.5 * h], [0.5 * w, 0.4 * h, 0.8 * w, 0.9 * h]])
    targets = [{"boxes": box, "labels": torch.tensor([1, 1])} for _ in range(BATCH)]
    opt = torch.optim.SGD(model.parameters(), lr=1e-5)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    model.eval()
    with torch.inference_mode():
        model([images[0]])
        t0 = time.perf_counter()
        for _ in range(3):
            model([images[0]])
        infer = (time.perf_counter() - t0) / 3
    return DetectorCost(step_s=float(np.median(times[1:])), infer_s=infer,
                        vip_layers=len(backbone_vip_layers(model, s)))


def plan_detector(budget_s: float, n_train: int, n_val: int, n_test: int, cost: DetectorCost) -> DetectorPlan:
    """Split ``budget_s`` (seconds still available) over the build's phases; RequestError when
    it cannot train a useful parent."""
    plan = DetectorPlan(budget_s=round(budget_s, 1), cost=cost.__dict__.copy())
    n_sens = min(n_val, 60)
    groups = VIP_GROUPS if cost.vip_layers >= 2 else 0
    eval_s = (1 + groups) * (n_val + n_test) * cost.infer_s
    sens_s = (cost.vip_layers + 1) * n_sens * cost.infer_s if groups else 0.0
    profile_s = (1 + groups) * 2 * (PROFILE.runs + PROFILE.warmup) * cost.infer_s * 1.8  # two kinds, ~1.8x at 1 thread
    overhead_s = 30.0 + 0.05 * budget_s  # start-up, checkpoints, and a machine busier than when measured
    train_s = budget_s - eval_s - sens_s - profile_s - overhead_s
    parent_s = train_s * (PARENT_SHARE if groups else 1.0)
    steps = int(parent_s / cost.step_s)
    if steps < MIN_PARENT_STEPS:
        need = (MIN_PARENT_STEPS * cost.step_s / (PARENT_SHARE if groups else 1.0) + eval_s + sens_s + profile_s
                + overhead_s) / 60
        raise RequestError(f"--time-budget {budget_s / 60:.0f} min is too short: a training step takes "
                           f"{cost.step_s:.1f} s here and the parent needs at least {MIN_PARENT_STEPS} steps; "
                           f"give at least {need:.0f} minutes")
    cap = int(MAX_EPOCHS * n_train / BATCH)
    if steps > cap:
        plan.skipped.append(f"parent capped at {MAX_EPOCHS} passes over {n_train} training images ({cap} steps); "
                            f"{(steps - cap) * cost.step_s / 60:.0f} min of the budget unused")
        steps = cap
    plan.parent_steps = steps
    if groups:  # a ViP model's step costs more than its parent's (the upsampling; 2.65 vs 2.48 s measured)
        plan.finetune_steps = max(10, int(train_s * (1 - PARENT_SHARE) / groups / (VIP_STEP_COST * cost.step_s)))
    plan.vip_groups = groups
    if not groups:
        plan.skipped.append("no ViP variants: the architecture has fewer than two ViP-able backbone convolutions")
    plan.seconds = {"parent": round(steps * cost.step_s, 1), "sensitivity": round(sens_s, 1),
                    "vip": round(groups * plan.finetune_steps * VIP_STEP_COST * cost.step_s, 1),
                    "evaluate": round(eval_s, 1), "profile": round(profile_s, 1)}
    return plan


def detector_recipe(req: BuildRequest, name: str, measure=measure_detector) -> tuple[DetectorRecipe, DetectorPlan]:
    """Detect ``req.data`` (COCO), choose the input size and parent, measure it and plan the budget."""
    from ..data.user_data import detect_dataset, open_split
    from .auto_recipe import probe_images

    t0 = time.time()
    arch = detector_arch(req)
    info = detect_dataset(req.data, "detection", seed=req.seed, val_fraction=0.15, test_fraction=0.15)
    train = open_split(info, "train", req.seed)
    _, median_hw, _ = probe_images(train, seed=req.seed)
    size = tuple(req.input_size) if req.input_size else default_detector_size(median_hw)
    objects = int(np.diff(train.listing.offsets).max()) if len(train) else 0
    detector: dict = {}
    if arch.startswith("fasterrcnn_"):
        detector["proposals"] = int(np.clip(8 * objects, 64, 300))  # a handful of objects: few proposals
        if not req.weights:
            detector["box_representation"] = 256  # torchvision's 1024 is sized for COCO's 80 classes
    spec = {"arch": arch, "num_classes": len(info.class_names), "image_size": list(size), **detector}
    threads = max(1, req.threads)
    cost = measure(spec, threads, req.weights[0] if req.weights else "")
    log.info("plan: %s at %dx%d: training step %.2f s (%d images, %d threads), inference %.0f ms, %d ViP-able "
             "convolutions", arch, size[1], size[0], cost.step_s, BATCH, threads, cost.infer_s * 1e3, cost.vip_layers)
    n_train, n_val = info.splits["train"], info.splits["val"]
    n_test = info.splits.get("test", n_val)
    plan = plan_detector(req.budget_min * 60.0 - (time.time() - t0), n_train, n_val, n_test, cost)
    lr = 5e-4 if req.weights else 2e-3
    parent = DetectorTrainRecipe(steps=plan.parent_steps, batch=BATCH, scenes=0, lr=lr, weight_decay=1e-4,
                                 warmup=min(100, max(5, plan.parent_steps // 10)), threads=threads, seed=req.seed,
                                 ckpt_every=50, log_every=10, hflip=True, workers=max(0, req.workers))
    finetune = DetectorTrainRecipe(steps=plan.finetune_steps or 10, batch=BATCH, scenes=0, lr=lr / 4,
                                   weight_decay=1e-4, warmup=min(20, max(2, plan.finetune_steps // 10)),
                                   threads=threads, seed=req.seed, ckpt_every=50, log_every=10, hflip=True,
                                   workers=max(0, req.workers))
    cfg = DetectorRecipe(
        name=name, seed=req.seed, data=os.path.abspath(req.data), arch=arch,
        weights=os.path.abspath(req.weights[0]) if req.weights else "", input_size=list(size), detector=detector,
        anchor_scenes=n_train, val_scenes=n_val, sensitivity_scenes=min(n_val, 60), test_scenes=n_test,
        parent=parent, finetune=finetune, vip_groups=plan.vip_groups, max_vip_layers=min(14, cost.vip_layers),
        epsilon=0.01, profile=PROFILE)
    return cfg, plan


def planned_detector_recipe(req: BuildRequest, work: str, name: str,
                            measure=measure_detector) -> tuple[DetectorRecipe, DetectorPlan, str]:
    """As ``auto_recipe.planned_recipe`` for detection: planned now and written to
    WORK/{recipe.yaml, plan.json, request.json}, or read back for the same request."""
    return plan_once(req, work, DetectorRecipe, lambda d: DetectorPlan(**d),
                     lambda: detector_recipe(req, name, measure), "vip-perception bank build-detector --config")
