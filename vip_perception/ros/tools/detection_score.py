"""Live score of published detections against the belt camera's ground truth (the demo's).

Why its own module: the demo matches each ``detections`` message to the truth of the same
frame (by image stamp) while frames stream, so it needs a running tally, not the COCO
evaluation of the whole test set (``tasks.detection.evaluate_map``). Per frame, detections (highest
score first) are matched greedily to the unmatched truth box of the same class with the
largest IoU, a match needing IoU >= 0.5 (the mAP@0.5 rule): precision and recall at IoU 0.5
over the run, plus the mean best IoU of each truth box with any detection (how well the
boxes sit, whatever the class). Pure: plain dicts in, numbers out.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torchvision.ops import box_iou

IOU_MATCH = 0.5


@dataclass(frozen=True)
class FrameMatch:
    true_positives: int
    false_positives: int
    false_negatives: int
    best_ious: tuple[float, ...]  # per truth box: best IoU with any detection (0.0 when none)


def match_frame(boxes, class_ids, truth_boxes, truth_ids, iou_match: float = IOU_MATCH) -> FrameMatch:
    """Greedy class-aware matching of one frame; ``boxes`` are x0, y0, x1, y1 in score order."""
    n_pred, n_true = len(boxes), len(truth_boxes)
    if not n_pred or not n_true:
        return FrameMatch(0, n_pred, n_true, (0.0,) * n_true)
    iou = box_iou(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                  torch.tensor(truth_boxes, dtype=torch.float32).reshape(-1, 4))  # (P, T)
    taken = [False] * n_true
    tp = 0
    for p in range(n_pred):
        best, best_t = iou_match, None
        for t in range(n_true):
            if not taken[t] and class_ids[p] == truth_ids[t] and iou[p, t] >= best:
                best, best_t = float(iou[p, t]), t
        if best_t is not None:
            taken[best_t] = True
            tp += 1
    best_ious = tuple(float(v) for v in iou.max(dim=0).values)  # (T,)
    return FrameMatch(tp, n_pred - tp, n_true - tp, best_ious)


@dataclass
class DetectionScore:
    """Running totals over the frames scored so far."""
    frames: int = 0
    detections: int = 0
    truth_boxes: int = 0
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    best_ious: list = field(default_factory=list)

    def add(self, result: dict, truth: dict) -> FrameMatch:
        """``result``: the node's detections JSON; ``truth``: the camera's belt ground truth."""
        m = match_frame(result["boxes"], result["class_ids"], truth["boxes"], truth["class_ids"])
        self.frames += 1
        self.detections += len(result["boxes"])
        self.truth_boxes += len(truth["boxes"])
        self.true_positives += m.true_positives
        self.false_positives += m.false_positives
        self.false_negatives += m.false_negatives
        self.best_ious.extend(m.best_ious)
        return m

    @property
    def precision(self) -> float | None:
        n = self.true_positives + self.false_positives
        return self.true_positives / n if n else None

    @property
    def recall(self) -> float | None:
        n = self.true_positives + self.false_negatives
        return self.true_positives / n if n else None

    @property
    def mean_best_iou(self) -> float | None:
        return sum(self.best_ious) / len(self.best_ious) if self.best_ious else None

    @property
    def detections_per_frame(self) -> float | None:
        return self.detections / self.frames if self.frames else None

    def short(self) -> str:
        """For the live line: P/R at IoU 0.5 and the frames scored."""
        if not self.frames:
            return "n/a"
        return f"P {_pct(self.precision)} R {_pct(self.recall)} ({self.frames})"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100.0 * v:.0f}%"
