"""A conveyor belt carrying Fashion-MNIST test garments past a camera: frames + ground truth.

Why: the node, the demo and the tests need a camera that needs no hardware and whose every
frame has a known answer, so accuracy can be scored live. The belt indexes like a real
inspection station: a garment slides in, rests at the station (the centre square of the frame,
``station_roi``) for ``dwell_frames`` frames, then the belt moves it out while the next slides
in over ``travel_frames`` frames. Garments are drawn light on a dark belt, as in Fashion-MNIST,
and fill the station square, so a 28x28 classifier sees what it was trained on when the node's
ROI is the station. Frames are a pure function of (config, index): seeded and repeatable.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .fashion_mnist import CLASS_NAMES, load_fashion_mnist


@dataclass(frozen=True)
class SceneConfig:
    width: int = 640            # frame size, pixels
    height: int = 480
    dwell_frames: int = 6       # frames a garment rests at the station
    travel_frames: int = 3      # frames the belt moves between two garments
    belt_level: int = 4         # belt brightness (Fashion-MNIST backgrounds are 0; 10 costs ~6 points)
    slat_contrast: int = 6      # slats (every 48 px) brighter than the belt by this much
    noise_std: float = 2.0      # sensor noise, grey levels
    seed: int = 0               # garment order and noise

    def __post_init__(self):
        if self.width < 28 or self.height < 28:
            raise ValueError(f"scene {self.width}x{self.height}: at least 28x28 pixels")
        if self.dwell_frames < 1 or self.travel_frames < 0:
            raise ValueError("dwell_frames must be >= 1 and travel_frames >= 0")


@dataclass
class SceneFrame:
    image: np.ndarray               # (H, W, 3) RGB uint8
    index: int                      # frame number
    label: int                      # class of the garment most in view
    class_name: str
    item: int                       # index of that garment in the Fashion-MNIST test split
    box: tuple[int, int, int, int]  # x, y, w, h of that garment, clipped to the frame
    at_station: bool                # resting at the station (fully inside station_roi)

    def ground_truth(self) -> dict:
        return {"frame": self.index, "label": self.label, "class_name": self.class_name,
                "item": self.item, "box": list(self.box), "at_station": self.at_station}


class ConveyorScene:
    def __init__(self, config: SceneConfig = SceneConfig(), images: np.ndarray | None = None,
                 labels: np.ndarray | None = None):
        """``images`` (N, 28, 28) uint8 and ``labels`` (N,) default to the Fashion-MNIST test
        split (root from $VIP_FASHION_MNIST_DIR or Debian's dataset-fashion-mnist)."""
        self.config = config
        if images is None or labels is None:
            ds = load_fashion_mnist("test")
            images, labels = ds.images[..., 0], ds.labels
        self.images = np.asarray(images, np.uint8).reshape(len(labels), 28, 28)
        self.labels = np.asarray(labels, np.int64)
        self.order = np.random.default_rng(config.seed).permutation(len(self.labels))
        self.size = min(config.width, config.height)       # garment side, pixels
        self.spacing = config.width                         # belt distance between garments
        self._resized = lru_cache(maxsize=4)(self._resize)

    @property
    def period(self) -> int:
        return self.config.dwell_frames + self.config.travel_frames

    def station_roi(self) -> tuple[int, int, int, int]:
        """x, y, w, h of the station square (what the node's roi should be)."""
        c = self.config
        return (c.width - self.size) // 2, (c.height - self.size) // 2, self.size, self.size

    def _resize(self, item: int) -> np.ndarray:
        return cv2.resize(self.images[item], (self.size, self.size),
                          interpolation=cv2.INTER_LINEAR)               # (S, S) uint8

    def _item(self, k: int) -> int:
        return int(self.order[k % len(self.order)])

    def frame(self, index: int) -> SceneFrame:
        c = self.config
        k, phase = divmod(index, self.period)
        shift = 0
        if phase >= c.dwell_frames:  # moving: fraction of the spacing travelled so far
            shift = round(self.spacing * (phase - c.dwell_frames + 1) / (c.travel_frames + 1))
        x0, y0, _, _ = self.station_roi()
        belt = self._belt(k * self.spacing + shift)                    # (H, W) uint8
        best = None
        for kk, x in ((k, x0 + shift), (k + 1, x0 + shift - self.spacing)):
            xa, xb = max(x, 0), min(x + self.size, c.width)
            if xb <= xa:
                continue
            item = self._item(kk)
            patch = self._resized(item)[:, xa - x: xb - x]             # (S, xb-xa)
            region = belt[y0: y0 + self.size, xa:xb]
            np.maximum(region, patch, out=region)
            if best is None or (xb - xa) > best[1][2]:
                best = (item, (xa, y0, xb - xa, self.size))
        item, box = best
        if c.noise_std > 0:
            rng = np.random.default_rng((c.seed, index))
            noisy = belt.astype(np.float32) + rng.normal(0, c.noise_std, belt.shape)
            belt = np.clip(noisy, 0, 255).astype(np.uint8)
        image = np.repeat(belt[..., None], 3, axis=2)                  # (H, W, 3) RGB
        label = int(self.labels[item])
        return SceneFrame(image, index, label, CLASS_NAMES[label], item, box,
                          at_station=phase < c.dwell_frames)

    def _belt(self, position: int) -> np.ndarray:
        c = self.config
        cols = (np.arange(c.width) + position) % 48 < 4                 # slats every 48 px
        row = np.where(cols, c.belt_level + c.slat_contrast, c.belt_level).astype(np.uint8)
        return np.repeat(row[None, :], c.height, axis=0)                # (H, W) uint8

    def __iter__(self):
        i = 0
        while True:
            yield self.frame(i)
            i += 1
