"""Resumable detector training over a ``bank.detection_data`` source (conveyor scenes rendered
on the fly, or a COCO directory decoded by DataLoader workers).

One step loop for parents (from scratch or from a checkpoint) and ViP variants (fine-tuned from
the parent): AdamW, linear warm-up, cosine decay, gradient clipping, optional horizontal flips.
The image order is a seeded permutation per pass, a pure function of the step, and a
checkpoint (model + optimiser + step) is written every ``ckpt_every`` steps with
``torch.save`` and read back with ``weights_only=True``, so an interrupted run continues where
it stopped, on the same images.
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

from .recipe import DetectorTrainRecipe


def lr_at(step: int, cfg: DetectorTrainRecipe) -> float:
    """Learning rate of optimiser step ``step`` (0-based): linear warm-up, then cosine to 0."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def scene_order(cfg: DetectorTrainRecipe, step: int, n: int) -> list[int]:
    """Image indices (of ``n``) of a step's batch: a seeded permutation per pass, so resuming is exact."""
    out = []
    for k in range(step * cfg.batch, (step + 1) * cfg.batch):
        epoch, pos = divmod(k, n)
        out.append(int(np.random.default_rng((cfg.seed, epoch)).permutation(n)[pos]))
    return out


class _StepBatches(torch.utils.data.Sampler):
    """Batches of image indices for steps ``start..steps-1`` (a DataLoader batch sampler)."""

    def __init__(self, cfg: DetectorTrainRecipe, start: int, n: int):
        self.cfg, self.start, self.n = cfg, start, n

    def __len__(self) -> int:
        return max(0, self.cfg.steps - self.start)

    def __iter__(self):
        for step in range(self.start, self.cfg.steps):
            yield scene_order(self.cfg, step, self.n)


def _as_list(batch: list) -> list:
    return batch


def _flip(image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
    """Mirror left-right: image (C, H, W) and its boxes x0 y0 x1 y1."""
    w = image.shape[-1]
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = w - target["boxes"][:, [2, 0]]
    return image.flip(-1), {**target, "boxes": boxes}


def train_detector(model: nn.Module, source, cfg: DetectorTrainRecipe, work_dir: str, progress: bool = True,
                   log=print) -> dict:
    """Train ``model`` in place for cfg.steps on ``source`` (``source[i]`` -> (image, target), the
    torchvision detection pair); checkpoints and a JSON-lines log go to work_dir."""
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
    n = len(source) if cfg.scenes <= 0 else min(cfg.scenes, len(source))
    loader = torch.utils.data.DataLoader(source, batch_sampler=_StepBatches(cfg, start, n), collate_fn=_as_list,
                                         num_workers=cfg.workers, persistent_workers=False)
    for step, batch in zip(range(start, cfg.steps), loader):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        if cfg.hflip:
            flips = np.random.default_rng((cfg.seed, step, 1)).random(len(batch)) < 0.5
            batch = [_flip(*b) if f else b for b, f in zip(batch, flips)]
        images, targets = zip(*batch)
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
