"""Training, fine-tuning and evaluation of bank candidates.

Training draws batches from a ``TrainImages`` source: ``TensorImages`` (normalised images in
memory; random crop + flip), ``StationImages`` (28x28 garments rendered at the station per
batch, ``data.station_render``), so every candidate shares one copy of the data and enlarged
images are never stored, or ``StreamImages`` (a user's images decoded from disk per item by
DataLoader workers, never held whole). A run may spend its first steps at half resolution
(``TrainConfig.low_res_fraction``; fully convolutional models only): at 64x64 a step at 32x32
costs a quarter, and the full-resolution steps at the end adapt the model to the input it
serves. Training runs channels-last (oneDNN's fast layout on CPU) unless the model has a
convolution oneDNN cannot train in that layout (``training_layout``). bf16 autocast is used for
training only where the CPU has native bf16 (AVX512-BF16/AMX), where it is a speed-up rather
than a slowdown; evaluation stays float32 so the reported accuracy is that of the deployed
float32 module.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from ..data.station_render import StationAugment, render_station

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """One training (or fine-tuning) run."""

    samples: int  # images seen in total (epochs * train size, or fewer for a brief run)
    batch_size: int = 256
    optimizer: str = "sgd"  # "sgd" (nesterov momentum) or "adamw"
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "onecycle"  # "onecycle" | "cosine" | "step3" (lr/10 every third, as ViP's authors)
    label_smoothing: float = 0.0
    augment: bool = False  # the source's augmentation (crop + flip, or the station's conditions)
    bf16: bool = False  # bf16 autocast for forward/backward
    seed: int = 0
    low_res_fraction: float = 0.0  # first fraction of the steps at half the input resolution
    station: StationAugment | None = None  # StationImages: this run's conditions (None: the source's)

    def __post_init__(self):
        if not 0.0 <= self.low_res_fraction < 1.0:
            raise ValueError(f"low_res_fraction must be in [0, 1), got {self.low_res_fraction}")


def normalise(images: np.ndarray | torch.Tensor, mean, std, invert: bool = False) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) normalised with per-channel mean/std in [0,1] units."""
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float().div_(255.0)  # (N, C, H, W)
    if invert:
        x = 1.0 - x
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - m) / s


class TensorImages:
    """Normalised float images (N, C, H, W) and int64 labels (N,) held in memory."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, idx: torch.Tensor, gen: torch.Generator, augment: bool, half: bool) -> torch.Tensor:
        """(B, C, H, W), or (B, C, H/2, W/2) area-averaged when ``half``."""
        x = self.images[idx]
        if augment:
            x = _augment(x, gen)
        return F.avg_pool2d(x, 2) if half else x


class StationImages:
    """28x28 garments (N, 28, 28) uint8 rendered at the station, ``size`` px, per batch."""

    def __init__(self, items: torch.Tensor, labels: torch.Tensor, size: int, mean, std, invert: bool,
                 augment: StationAugment):
        self.items, self.labels, self.size = items, labels, size
        self.mean, self.std, self.invert, self.augment = mean, std, invert, augment

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, idx: torch.Tensor, gen: torch.Generator, augment: bool | StationAugment,
              half: bool) -> torch.Tensor:
        """``augment``: False (nominal), True (this source's ranges) or the ranges to draw from."""
        size = self.size // 2 if half else self.size
        ranges = augment if isinstance(augment, StationAugment) else (self.augment if augment else None)
        grey = render_station(self.items[idx], size, ranges, gen)  # (B, 1, S, S)
        return normalise_grey(grey, self.mean, self.std, self.invert)


class _ModelInputs(torch.utils.data.Dataset):
    """Items of ``dataset`` (RGB uint8 (H, W, 3), label) at the model's input: uint8
    (height, width, channels) by ``to_model_array`` (the resize ``Bank.preprocess`` uses), label."""

    def __init__(self, dataset, indices: np.ndarray, height: int, width: int, channels: int):
        self.dataset, self.indices = dataset, indices
        self.height, self.width, self.channels = height, width, channels

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        from ..data.image_folder import to_model_array

        image, label = self.dataset[int(self.indices[i])]
        return to_model_array(image, self.height, self.width, self.channels), int(label)


class StreamImages:
    """Images decoded from disk per item by DataLoader workers and resized to the model input:
    only the labels (N,) int64 and the batches in flight are in memory.

    ``dataset[i]`` -> (RGB uint8 (H, W, 3), label), e.g. ``data.user_data.open_split``. A
    dataset may substitute an unreadable image by another item, so training and evaluation use
    the labels the items come with. ``images[a:b]`` is the same stream over a slice.
    """

    def __init__(self, dataset, labels: np.ndarray | torch.Tensor, height: int, width: int, channels: int,
                 mean, std, invert: bool = False, workers: int = 2, indices: np.ndarray | None = None):
        self.dataset, self.height, self.width, self.channels = dataset, height, width, channels
        self.mean, self.std, self.invert, self.workers = mean, std, invert, workers
        self.all_labels = np.asarray(labels, dtype=np.int64)  # (N,) of the whole dataset
        self.indices = np.arange(len(self.all_labels)) if indices is None else np.asarray(indices)
        self.labels = torch.as_tensor(self.all_labels[self.indices])  # (n,) int64 of this stream

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, key: slice) -> "StreamImages":
        return StreamImages(self.dataset, self.all_labels, self.height, self.width, self.channels, self.mean,
                            self.std, self.invert, self.workers, self.indices[key])

    def batches(self, index_batches: list[list[int]]):
        """Normalised (B, C, H, W) float32 and labels (B,) int64 for each list of positions."""
        loader = torch.utils.data.DataLoader(
            _ModelInputs(self.dataset, self.indices, self.height, self.width, self.channels),
            batch_sampler=index_batches, num_workers=self.workers, persistent_workers=False)
        for images, labels in loader:  # (B, H, W, C) uint8, (B,)
            yield normalise(images, self.mean, self.std, self.invert), labels.long()


TrainImages = TensorImages | StationImages | StreamImages


def normalise_grey(grey: torch.Tensor, mean, std, invert: bool = False) -> torch.Tensor:
    """float (N, 1, H, W) grey levels 0..255 -> normalised (N, C, H, W), C = len(mean) (grey repeated)."""
    x = grey / 255.0
    if invert:
        x = 1.0 - x
    c = len(mean)
    x = x.expand(-1, c, -1, -1) if c > 1 else x
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - m) / s


def _augment(x: torch.Tensor, gen: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Random crop with zero padding (in normalised units: the background value) + h-flip."""
    n, _, h, w = x.shape
    bg = x.amin()  # background of a normalised image: the darkest value
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=float(bg))  # (N, C, H+2p, W+2p)
    off = torch.randint(0, 2 * pad + 1, (n, 2), generator=gen)
    out = torch.empty_like(x)
    for i in range(n):
        oy, ox = int(off[i, 0]), int(off[i, 1])
        out[i] = xp[i, :, oy:oy + h, ox:ox + w]
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {cfg.optimizer!r}")


def _scheduler(opt, cfg: TrainConfig, steps: int):
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.25)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    if cfg.schedule == "step3":
        third = max(1, math.ceil(steps / 3))
        return torch.optim.lr_scheduler.StepLR(opt, step_size=third, gamma=0.1)
    raise ValueError(f"schedule must be onecycle|cosine|step3, got {cfg.schedule!r}")


# oneDNN's 1x1 backward-weights kernel on channels-last input with stride > 1 and fewer input
# channels than its block (8 on AVX2, 16 on AVX-512) writes past its workspace
# (uxlfoundation/oneDNN#6035): with torch 2.14.1 on an AVX2-only EPYC a 4-channel strided
# shortcut corrupts the heap in the first backward pass (abort or segfault; 3, 4 and 6 channels
# fail there, 8 and more match the contiguous layout's gradients).
_CHANNELS_LAST_MIN_CIN = 16


def training_layout(model: nn.Module) -> torch.memory_format:
    """torch.channels_last, or torch.contiguous_format when ``model`` has a strided 1x1
    convolution with fewer than 16 input channels (the oneDNN defect above, on every machine
    kind: the contiguous layout trains the same model correctly, only more slowly)."""
    for m in model.modules():
        if (isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and max(m.stride) > 1
                and m.in_channels // m.groups < _CHANNELS_LAST_MIN_CIN):
            return torch.contiguous_format
    return torch.channels_last


def train(model: nn.Module, data: TrainImages, cfg: TrainConfig, desc: str = "train", progress: bool = True) -> float:
    """Train in place on batches drawn from ``data``; returns the last-100-step mean loss.

    Raises FloatingPointError when the loss stops being finite.
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    steps = max(1, math.ceil(cfg.samples / cfg.batch_size))
    low_res_steps = int(steps * cfg.low_res_fraction)
    opt = _optimizer(model, cfg)
    sched = _scheduler(opt, cfg, steps)
    model.train()
    layout = training_layout(model)
    model.to(memory_format=layout)
    losses = []
    bar = tqdm(_train_batches(data, steps, cfg, gen, low_res_steps), total=steps, desc=desc, leave=False,
               disable=not progress, mininterval=2.0)
    for x, y in bar:  # (B, C, H, W), (B,)
        x = x.contiguous(memory_format=layout)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            logits = model(x)  # (B, K)
        loss = nn.functional.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: loss became {loss.item()}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if len(losses) % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    return float(np.mean(losses[-100:]))


def _index_batches(n: int, steps: int, batch_size: int, gen: torch.Generator):
    """Positions of each step's batch: seeded permutations of 0..n-1, consumed in order."""
    perm, pos = torch.randperm(n, generator=gen), 0
    for _ in range(steps):
        if pos + batch_size > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        yield perm[pos:pos + batch_size]
        pos += batch_size


def _train_batches(data: TrainImages, steps: int, cfg: TrainConfig, gen: torch.Generator, low_res_steps: int):
    """(x (B, C, H, W), labels (B,)) for each step; the first ``low_res_steps`` at half resolution."""
    if not isinstance(data, StreamImages):
        for step, idx in enumerate(_index_batches(len(data), steps, cfg.batch_size, gen)):
            augment = (cfg.station or True) if cfg.augment else False  # station: this run's conditions
            yield data.batch(idx, gen, augment, half=step < low_res_steps), data.labels[idx]
        return
    order = [idx.tolist() for idx in _index_batches(len(data), steps, cfg.batch_size, gen)]
    for step, (x, y) in enumerate(data.batches(order)):
        if cfg.augment:
            x = _augment(x, gen)
        yield (F.avg_pool2d(x, 2) if step < low_res_steps else x), y


@torch.inference_mode()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy (fraction) in float32 eval mode. ``images`` may be a ``StreamImages``:
    then its items' own labels count and ``labels`` only gives the count."""
    model.eval()
    correct = 0
    if isinstance(images, StreamImages):
        n = len(images)
        for x, y in images.batches([list(range(i, min(n, i + batch_size))) for i in range(0, n, batch_size)]):
            correct += int((model(x).argmax(1) == y).sum())
        return correct / max(1, n)
    for i in range(0, images.shape[0], batch_size):
        logits = model(images[i:i + batch_size])  # (B, K)
        correct += int((logits.argmax(1) == labels[i:i + batch_size]).sum())
    return correct / max(1, images.shape[0])


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: torch.Tensor, batches: int = 10, batch_size: int = 256) -> None:
    """Re-estimate BN running statistics (cumulative average) after an architecture change."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for i in range(min(batches, math.ceil(images.shape[0] / batch_size))):
        model(images[i * batch_size:(i + 1) * batch_size])
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()
