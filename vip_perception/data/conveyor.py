"""Conveyor-belt detection scenes: Fashion-MNIST garments composited on a belt, with tight boxes.

Why: ViP is measured on a Faster R-CNN, and no detection data set can be downloaded here.
Garments of known class on a moving belt are a fair stand-in for a sorting station, and
every box is known exactly. A scene is a pure function of (config, split, index), so training
can render scenes on the fly and the PNG + COCO JSON copy on disk holds the same pixels.

Splits never mix source items: "train" scenes draw from the Fashion-MNIST train split; "val"
and "test" scenes draw from two disjoint halves of its test split (seeded permutation).
Garments are light on a dark belt, as in Fashion-MNIST, with per-scene lighting and noise.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from ..jsonfile import write_json
from .fashion_mnist import CLASS_NAMES, load_fashion_mnist

SPLITS = {"train": 0, "val": 1, "test": 2}
ALPHA_FULL = 48     # item grey level at which it fully hides the belt (soft edges below)
BOX_LEVEL = 24      # item grey level (after warping, before lighting) that counts as "garment"


@dataclass(frozen=True)
class ConveyorConfig:
    """How scenes look; every field is part of the scene's identity (same config -> same pixels)."""

    width: int = 320                  # scene size in pixels
    height: int = 240
    min_items: int = 0                # garments per scene, uniform in [min_items, max_items]
    max_items: int = 8
    min_scale: float = 1.1            # garment side = 28 px * scale
    max_scale: float = 2.0
    max_rotation: float = 25.0        # degrees, uniform in [-max, max]
    max_overlap: float = 0.25         # largest share of an earlier garment's box a later one may cover
    belt_level: int = 22              # mean belt grey level
    light_range: tuple = (0.75, 1.15)  # per-scene gain on garments and belt
    gradient: float = 0.25            # strength of a left-right lighting ramp
    noise_std: float = 4.0            # sensor noise, grey levels
    seed: int = 0

    def __post_init__(self):
        if self.width < 64 or self.height < 64:
            raise ValueError(f"ConveyorConfig: scene {self.width}x{self.height} must be at least 64x64")
        if not 0 <= self.min_items <= self.max_items:
            raise ValueError(f"ConveyorConfig: need 0 <= min_items <= max_items, "
                             f"got {self.min_items}, {self.max_items}")
        if not 0 < self.min_scale <= self.max_scale:
            raise ValueError(f"ConveyorConfig: need 0 < min_scale <= max_scale, got {self.min_scale}, {self.max_scale}")
        if 28 * self.max_scale * 1.5 > min(self.width, self.height):
            raise ValueError(f"ConveyorConfig: max_scale {self.max_scale} too large for a "
                             f"{self.width}x{self.height} scene")
        if not 0 <= self.max_overlap < 1:
            raise ValueError(f"ConveyorConfig: max_overlap must be in [0, 1), got {self.max_overlap}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["light_range"] = list(self.light_range)
        return d


@dataclass
class Scene:
    image: np.ndarray   # (H, W, 3) RGB uint8 (grey replicated)
    boxes: np.ndarray   # (K, 4) float32 x0, y0, x1, y1 in pixels, tight around each garment
    labels: np.ndarray  # (K,) int64 Fashion-MNIST class 0..9
    items: np.ndarray   # (K,) int64 index of each garment in its Fashion-MNIST split


def _source_items(split: str, n: int, seed: int) -> np.ndarray:
    """Indices of the Fashion-MNIST items a split may use (val/test: disjoint test halves)."""
    if split == "train":
        return np.arange(n)
    perm = np.random.default_rng((seed, 7919)).permutation(n)
    half = n // 2
    return np.sort(perm[:half] if split == "val" else perm[half:])


def _warp_item(img: np.ndarray, scale: float, angle: float) -> np.ndarray:
    """28x28 garment -> scaled and rotated patch on a black square big enough to hold it."""
    side = 28 * scale
    canvas = math.ceil(side * (abs(math.cos(math.radians(angle))) + abs(math.sin(math.radians(angle))))) + 4
    m = cv2.getRotationMatrix2D((13.5, 13.5), angle, scale)
    m[:, 2] += round(canvas / 2.0 - 13.5)  # centre it; a whole-pixel shift keeps scale 1 exact
    return cv2.warpAffine(img, m, (canvas, canvas), flags=cv2.INTER_LINEAR, borderValue=0)  # (S, S) uint8


def _cover(a: np.ndarray, b: np.ndarray) -> float:
    """Share of box a's area covered by box b (x0, y0, x1, y1)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = max((a[2] - a[0]) * (a[3] - a[1]), 1e-6)
    return iw * ih / area


class ConveyorScenes:
    """Renders scene ``index`` of a split on demand; ``len()`` is unbounded, so callers pick counts."""

    def __init__(self, split: str, config: ConveyorConfig = ConveyorConfig(), images: np.ndarray | None = None,
                 labels: np.ndarray | None = None, root: str | None = None):
        """``images`` (N, 28, 28) uint8 / ``labels`` (N,) override the Fashion-MNIST split (tests);
        otherwise it is read from ``root`` (None: ``fashion_mnist.default_root()``)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        self.split, self.config = split, config
        if images is None or labels is None:
            ds = load_fashion_mnist("train" if split == "train" else "test", root)
            images, labels = ds.images[..., 0], ds.labels
        self.images = np.asarray(images, np.uint8).reshape(len(labels), 28, 28)
        self.labels = np.asarray(labels, np.int64)
        self.pool = _source_items(split, len(self.labels), config.seed)
        self.class_names = list(CLASS_NAMES)

    def _belt(self, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        offset = rng.integers(0, 40)
        cols = (np.arange(c.width) + offset) % 40 < 3                      # slats every 40 px
        row = np.where(cols, c.belt_level + 10, c.belt_level).astype(np.float32)
        belt = np.repeat(row[None, :], c.height, axis=0)                  # (H, W)
        blotches = rng.normal(0, 3.0, (c.height // 8 + 1, c.width // 8 + 1))               # 8x8-pixel belt texture
        belt += blotches.repeat(8, 0).repeat(8, 1)[: c.height, : c.width]
        rail = max(c.height // 24, 2)
        belt[:rail] = belt[-rail:] = c.belt_level * 3                      # belt edges
        return belt

    def scene(self, index: int) -> Scene:
        c = self.config
        rng = np.random.default_rng((c.seed, SPLITS[self.split], int(index)))
        canvas = self._belt(rng)                                           # (H, W) float32
        gain = rng.uniform(*c.light_range)
        boxes, labels, items = [], [], []
        for _ in range(rng.integers(c.min_items, c.max_items + 1)):
            item = int(self.pool[rng.integers(len(self.pool))])
            patch = _warp_item(self.images[item], rng.uniform(c.min_scale, c.max_scale),
                               rng.uniform(-c.max_rotation, c.max_rotation))  # (S, S)
            ys, xs = np.nonzero(patch >= BOX_LEVEL)
            if ys.size == 0:
                continue
            tight = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)  # in patch coords
            s = patch.shape[0]
            for _attempt in range(30):  # rejection sampling of a position with bounded overlap
                x = int(rng.integers(-int(tight[0]), c.width - int(tight[2]) + 1))
                y = int(rng.integers(-int(tight[1]), c.height - int(tight[3]) + 1))
                box = tight + np.array([x, y, x, y], np.float32)
                if all(_cover(b, box) <= c.max_overlap and _cover(box, b) <= c.max_overlap for b in boxes):
                    break
            else:
                continue
            xa, ya, xb, yb = max(x, 0), max(y, 0), min(x + s, c.width), min(y + s, c.height)
            p = patch[ya - y: yb - y, xa - x: xb - x].astype(np.float32)      # (h, w) visible part
            alpha = np.clip(p / ALPHA_FULL, 0.0, 1.0)
            region = canvas[ya:yb, xa:xb]
            canvas[ya:yb, xa:xb] = alpha * p + (1.0 - alpha) * region      # later garments occlude
            boxes.append(box)
            labels.append(int(self.labels[item]))
            items.append(item)
        ramp = 1.0 + c.gradient * np.linspace(-0.5, 0.5, c.width, dtype=np.float32) * rng.choice([-1.0, 1.0])
        canvas = canvas * gain * ramp[None, :]
        if c.noise_std > 0:
            canvas += rng.normal(0, c.noise_std, canvas.shape).astype(np.float32)
        grey = np.clip(canvas, 0, 255).astype(np.uint8)
        return Scene(np.repeat(grey[..., None], 3, axis=2),
                     np.array(boxes, np.float32).reshape(-1, 4),
                     np.array(labels, np.int64), np.array(items, np.int64))


def scene_tensors(scene: Scene, channels: int) -> tuple:
    """Scene -> (image (C, H, W) float32 in [0, 1], target {"boxes": (K, 4) x0, y0, x1, y1 pixels,
    "labels": (K,) int64 1..10}): the torchvision detection input (label 0 is background)."""
    import torch  # data/ imports without torch; only detector training and evaluation need this

    img = scene.image[..., :1] if channels == 1 else scene.image
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)  # (C, H, W)
    target = {"boxes": torch.from_numpy(scene.boxes).reshape(-1, 4), "labels": torch.from_numpy(scene.labels + 1)}
    return x, target


def coco_categories() -> list[dict]:
    """COCO category ids are 1..10 (0 is Faster R-CNN's background)."""
    return [{"id": i + 1, "name": n, "supercategory": "garment"} for i, n in enumerate(CLASS_NAMES)]


def coco_dict(scenes: ConveyorScenes, count: int, file_names: list[str] | None = None) -> dict:
    """COCO annotations for scenes 0..count-1 (boxes as [x, y, w, h], category_id = label + 1)."""
    c = scenes.config
    images, anns = [], []
    for i in range(count):
        s = scenes.scene(i)
        images.append({"id": i, "width": c.width, "height": c.height,
                       "file_name": file_names[i] if file_names else f"{scenes.split}_{i:06d}.png"})
        for b, lab in zip(s.boxes, s.labels):
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(lab) + 1,
                         "bbox": [float(b[0]), float(b[1]), w, h], "area": w * h, "iscrowd": 0})
    return {"info": {"description": f"vip_perception conveyor scenes, split {scenes.split}",
                     "config": c.to_dict()},
            "images": images, "annotations": anns, "categories": coco_categories()}


def write_split(out_dir: str, split: str, count: int, config: ConveyorConfig = ConveyorConfig(),
                scenes: ConveyorScenes | None = None) -> str:
    """Write ``count`` scenes as PNGs under out_dir/split/ and out_dir/split.json (COCO); return the JSON path."""
    scenes = scenes or ConveyorScenes(split, config)
    img_dir = os.path.join(out_dir, split)
    os.makedirs(img_dir, exist_ok=True)
    names = [f"{split}/{i:06d}.png" for i in range(count)]
    for i, name in enumerate(names):
        img = scenes.scene(i).image
        if not cv2.imwrite(os.path.join(out_dir, name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
            raise OSError(f"{os.path.join(out_dir, name)}: could not write PNG")
    path = os.path.join(out_dir, f"{split}.json")
    write_json(path, coco_dict(scenes, count, names), indent=None)
    return path


class BeltStream:
    """A camera over the moving belt: frame ``index`` shows the belt ``speed`` px further along.

    Why: the node and the demo need a moving scene with ground truth. The belt is a strip of
    scenes (panels) laid end to end; a frame is the window at offset index * speed, garments move
    right to left, and a garment counts once at least ``min_visible`` of its box is in view
    (its box is then clipped to the frame). Panels are rendered without per-scene lighting or
    noise (no seams); the sensor noise is added per frame. Pure function of (config, index).
    """

    def __init__(self, split: str = "test", config: ConveyorConfig = ConveyorConfig(), speed: int = 8,
                 min_visible: float = 0.5, images: np.ndarray | None = None, labels: np.ndarray | None = None):
        if speed < 1:
            raise ValueError(f"BeltStream: speed must be >= 1 pixel per frame, got {speed}")
        from dataclasses import replace
        from functools import lru_cache

        self.config, self.speed, self.min_visible = config, int(speed), float(min_visible)
        self.panels = ConveyorScenes(split, replace(config, gradient=0.0, noise_std=0.0, light_range=(1.0, 1.0)),
                                     images, labels)
        self.class_names = self.panels.class_names
        self._panel = lru_cache(maxsize=4)(self.panels.scene)

    def frame(self, index: int) -> Scene:
        c = self.config
        k, x = divmod(int(index) * self.speed, c.width)
        a, b = self._panel(k), self._panel(k + 1)
        strip = np.concatenate([a.image[..., 0], b.image[..., 0]], axis=1)            # (H, 2W)
        canvas = strip[:, x: x + c.width].astype(np.float32)                           # (H, W)
        boxes, labels, items = [], [], []
        for panel, dx in ((a, -x), (b, c.width - x)):
            for box, lab, item in zip(panel.boxes, panel.labels, panel.items):
                shifted = box + np.array([dx, 0, dx, 0], np.float32)
                clipped = np.array([max(shifted[0], 0), shifted[1], min(shifted[2], c.width), shifted[3]], np.float32)
                if clipped[2] - clipped[0] >= self.min_visible * (box[2] - box[0]):
                    boxes.append(clipped)
                    labels.append(lab)
                    items.append(item)
        if c.noise_std > 0:
            canvas += np.random.default_rng((c.seed, 99, int(index))).normal(0, c.noise_std, canvas.shape)
        grey = np.clip(canvas, 0, 255).astype(np.uint8)
        return Scene(np.repeat(grey[..., None], 3, axis=2), np.array(boxes, np.float32).reshape(-1, 4),
                     np.array(labels, np.int64), np.array(items, np.int64))

    def ground_truth(self, index: int) -> dict:
        """JSON-able truth of a frame: boxes x0, y0, x1, y1 with class ids and names."""
        s = self.frame(index)
        return {"frame": int(index), "boxes": s.boxes.round(1).tolist(), "class_ids": s.labels.tolist(),
                "class_names": [self.class_names[i] for i in s.labels]}
