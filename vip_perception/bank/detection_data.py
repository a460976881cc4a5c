"""Where a detector build's images come from: generated conveyor scenes or a COCO directory on
disk, both seen through one interface, so training and evaluation have one code path.

A ``DetectionSource`` is one split at the detector's input size:
- ``source[i]`` -> (image float32 (C, H, W) in [0, 1] at the input size, target {"boxes" float32
  (K, 4) x0 y0 x1 y1 input pixels, "labels" int64 (K,) in 1..num_classes}): the torchvision
  detection training pair (label 0 is background); crowd boxes are not in it;
- ``eval_items(count)`` yields (image, image id, (sx, sy) from input to the image's own
  pixels) for ``tasks.detection.predict_images``, and ``ground_truth(ids)`` the COCO dict of
  those images in their own pixels (crowd boxes kept with ``iscrowd``, so pycocotools handles
  them as COCO does);
- ``box_shapes(count)`` -> box sizes sqrt(w h) and ratios h / w in input pixels, read from the
  annotations without decoding an image (anchor fitting).

Resizing: a COCO image is resized to the input size the way the bank resizes a frame's roi when
serving (``data.image_folder.to_model_array``: pixel-area averaging, grey by ITU-R 601), so
training, evaluation and serving see the same pixels. Decoding happens in ``__getitem__``, which
DataLoader workers call: nothing is loaded whole into memory.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.conveyor import ConveyorScenes, coco_dict, scene_tensors
from ..data.image_folder import to_model_array
from ..data.user_data import DatasetError, DatasetInfo, coco_ground_truth, open_split

__all__ = ["CocoSource", "SceneSource"]


class SceneSource:
    """Conveyor scenes ``0..count-1`` of one split (already at the detector's input size)."""

    def __init__(self, scenes: ConveyorScenes, count: int, channels: int):
        self.scenes, self.count, self.channels = scenes, count, channels
        self.class_names = list(scenes.class_names)
        self.skipped: dict[str, int] = {}

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        return scene_tensors(self.scenes.scene(int(index)), self.channels)

    def eval_items(self, count: int):
        for i in range(min(count, self.count)):
            yield self[i][0], i, (1.0, 1.0)

    def ground_truth(self, ids: list[int]) -> dict:
        return coco_dict(self.scenes, max(ids) + 1 if ids else 0)

    def box_shapes(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        sizes, ratios = [], []
        for i in range(min(count, self.count)):
            b = self.scenes.scene(i).boxes
            sizes.append(np.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
            ratios.append((b[:, 3] - b[:, 1]) / np.maximum(b[:, 2] - b[:, 0], 1e-6))
        return np.concatenate(sizes) if sizes else np.zeros(0), np.concatenate(ratios) if ratios else np.zeros(0)


class CocoSource:
    """One split of a COCO directory (``data.user_data``) at the input size ``(height, width)``.

    An unreadable image is skipped and counted in ``skipped`` (``user_data`` refuses a split
    with more than a small fraction of them); in training it is replaced by the next readable
    image, in evaluation left out together with its ground truth.
    """

    def __init__(self, info: DatasetInfo, split: str, size: tuple[int, int], channels: int, seed: int = 0):
        self.info, self.split, self.size, self.channels, self.seed = info, split, tuple(size), channels, seed
        self.items = open_split(info, split, seed)
        self.class_names = list(info.class_names)
        self.skipped = self.items.skipped

    def __len__(self) -> int:
        return len(self.items)

    def _scaled(self, image: np.ndarray, boxes: np.ndarray) -> tuple[torch.Tensor, np.ndarray, tuple[float, float]]:
        h, w = self.size
        sy, sx = image.shape[0] / h, image.shape[1] / w
        arr = to_model_array(image, h, w, self.channels)  # (h, w, C) uint8
        x = torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)  # (C, h, w)
        scaled = (boxes / np.array([sx, sy, sx, sy], np.float32)).astype(np.float32)
        return x, scaled, (sx, sy)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        item = self.items[int(index)]  # substitutes the next readable image for an unreadable one
        if item is None:
            raise DatasetError(f"{self.info.sources.get(self.split, self.info.root)}: no readable image near "
                               f"item {index}; check the image files")
        image, target = item
        keep = target["iscrowd"] == 0
        x, boxes, _ = self._scaled(image, target["boxes"][keep])
        return x, {"boxes": torch.from_numpy(boxes).reshape(-1, 4),
                   "labels": torch.from_numpy(target["labels"][keep] + 1).long()}

    def eval_items(self, count: int):
        self.items.substitute = False
        try:
            for i in range(min(count, len(self.items))):
                item = self.items[i]
                if item is None:
                    continue  # counted in skipped
                image, target = item
                x, _, scale = self._scaled(image, target["boxes"][:0])
                yield x, target["image_id"], scale
        finally:
            self.items.substitute = True

    def ground_truth(self, ids: list[int]) -> dict:
        gt = coco_ground_truth(self.info, self.split, self.seed)
        keep = set(int(i) for i in ids)
        return {**gt, "images": [im for im in gt["images"] if im["id"] in keep],
                "annotations": [a for a in gt["annotations"] if a["image_id"] in keep]}

    def box_shapes(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.items.listing
        n = min(count, len(s.image_ids))
        rows = np.repeat(np.arange(n), np.diff(s.offsets[:n + 1]))
        boxes = s.boxes[:s.offsets[n]][s.iscrowd[:s.offsets[n]] == 0]
        rows = rows[s.iscrowd[:s.offsets[n]] == 0]
        h, w = self.size
        sy, sx = s.sizes[rows, 0] / h, s.sizes[rows, 1] / w
        bw, bh = (boxes[:, 2] - boxes[:, 0]) / sx, (boxes[:, 3] - boxes[:, 1]) / sy
        return np.sqrt(bw * bh), bh / np.maximum(bw, 1e-6)
