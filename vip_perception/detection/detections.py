"""Detector output -> typed detections in the caller's image pixels (what the node publishes).

Why here: the bank's preprocess resizes a frame (or its roi) to the detector's input size, so
boxes must be scaled and shifted back before they mean anything to a subscriber, and labels
must lose Faster R-CNN's background offset (torchvision class 1 = our class 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the original image's pixels
    class_id: int                           # 0-based, indexes bank.class_names
    class_name: str
    score: float

    def to_dict(self) -> dict:
        return {"box": [round(v, 2) for v in self.box], "class_id": self.class_id,
                "class_name": self.class_name, "score": round(self.score, 4)}


def to_detections(output: dict, class_names: list[str], input_hw: tuple[int, int], image_hw: tuple[int, int],
                  offset_xy: tuple[int, int] = (0, 0), min_score: float = 0.0) -> list[Detection]:
    """One torchvision detector output ({"boxes" (K, 4), "labels" (K,), "scores" (K,)}) -> detections.

    ``input_hw``: the size the detector saw (bank.input_spec); ``image_hw``: the size of the frame
    (or roi) that was resized to it; ``offset_xy``: the roi's top-left corner in the frame.
    Sorted by score, highest first.
    """
    sy, sx = image_hw[0] / input_hw[0], image_hw[1] / input_hw[1]
    scale = torch.tensor([sx, sy, sx, sy], dtype=torch.float32)
    shift = torch.tensor([offset_xy[0], offset_xy[1]] * 2, dtype=torch.float32)
    boxes = output["boxes"].float() * scale + shift  # (K, 4)
    out = []
    for b, lab, s in zip(boxes.tolist(), output["labels"].tolist(), output["scores"].tolist()):
        k = int(lab) - 1
        if s < min_score or not 0 <= k < len(class_names):
            continue
        out.append(Detection(tuple(float(v) for v in b), k, class_names[k], float(s)))
    return sorted(out, key=lambda d: -d.score)
