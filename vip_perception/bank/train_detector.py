"""Resumable Faster R-CNN training on conveyor scenes rendered on the fly.

Why on the fly: a scene is a pure function of its index (``ConveyorScenes``), so the training
set needs no disk and the PNG copy written by ``write_split`` holds the same pixels. Training is
one step loop for parents (from scratch) and ViP variants (fine-tuned from the parent): AdamW,
linear warm-up, cosine decay, gradient clipping. A checkpoint (model + optimiser + step) is
written every ``ckpt_every`` steps with ``torch.save`` and read back with ``weights_only=True``,
so an interrupted run continues where it stopped, on the same scene order.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..data.conveyor import ConveyorScenes, scene_tensors
from .recipe import DetectorTrainRecipe


def lr_at(step: int, cfg: DetectorTrainRecipe) -> float:
    """Learning rate of optimiser step ``step`` (0-based): linear warm-up, then cosine to 0."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def scene_order(cfg: DetectorTrainRecipe, step: int) -> list[int]:
    """Scene indices of a step's batch: a seeded permutation per epoch, so resuming is exact."""
    out = []
    for k in range(step * cfg.batch, (step + 1) * cfg.batch):
        epoch, pos = divmod(k, cfg.scenes)
        out.append(int(np.random.default_rng((cfg.seed, epoch)).permutation(cfg.scenes)[pos]))
    return out


def train_detector(model: nn.Module, scenes: ConveyorScenes, cfg: DetectorTrainRecipe, work_dir: str, channels: int,
                   progress: bool = True, log=print) -> dict:
    """Train ``model`` in place for cfg.steps; checkpoints and a JSON-lines log go to work_dir."""
    os.makedirs(work_dir, exist_ok=True)
    ckpt_path, log_path = os.path.join(work_dir, "ckpt.pt"), os.path.join(work_dir, "train.jsonl")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, seconds = 0, 0.0
    if os.path.isfile(ckpt_path):
        state = torch.load(ckpt_path, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start, seconds = int(state["step"]), float(state["seconds"])
        log(f"resumed {work_dir} at step {start}")
    model.train()
    bar = tqdm(total=cfg.steps, initial=start, desc=os.path.basename(work_dir), disable=not progress, mininterval=5.0)
    recent: list[float] = []
    t_last = time.perf_counter()
    for step in range(start, cfg.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        images, targets = zip(*(scene_tensors(scenes.scene(i), channels) for i in scene_order(cfg, step)))
        losses = model(list(images), list(targets))
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.clip)
        opt.step()
        recent.append(float(loss.detach()))
        bar.update(1)
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            now = time.perf_counter()
            seconds += now - t_last
            t_last = now
            rec = {"step": done, "loss": float(np.mean(recent)), "lr": lr_at(step, cfg), "seconds": round(seconds, 1),
                   **{k: round(float(v.detach()), 4) for k, v in losses.items()}}
            recent = []
            with open(log_path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            bar.set_postfix(loss=f"{rec['loss']:.3f}")
        if done % cfg.ckpt_every == 0 or done == cfg.steps:
            tmp = ckpt_path + ".tmp"
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": done, "seconds": seconds}, tmp)
            os.replace(tmp, ckpt_path)
    bar.close()
    model.eval()
    return {"recipe": asdict(cfg), "seconds": round(seconds, 1)}
