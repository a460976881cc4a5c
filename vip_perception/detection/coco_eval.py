"""mAP of a detector on conveyor scenes with pycocotools (the reference COCO evaluator).

Why pycocotools: the numbers are then the standard COCO ones (mAP@[.5:.95] and mAP@0.5, 101-point
interpolation, maxDets 100), comparable with any other tool reading the same COCO JSON.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
from torch import nn

from ..data.conveyor import ConveyorScenes, coco_dict, scene_tensors


@torch.inference_mode()
def predict(model: nn.Module, scenes: ConveyorScenes, count: int, channels: int, batch: int = 4) -> list[dict]:
    """COCO result records (image_id, category_id, bbox xywh, score) for scenes 0..count-1."""
    model.eval()
    results = []
    for i0 in range(0, count, batch):
        ids = list(range(i0, min(i0 + batch, count)))
        images = [scene_tensors(scenes.scene(i), channels)[0] for i in ids]
        for i, out in zip(ids, model(images)):
            boxes = out["boxes"].numpy()  # (K, 4) x0, y0, x1, y1
            for b, lab, s in zip(boxes, out["labels"].tolist(), out["scores"].tolist()):
                results.append({"image_id": i, "category_id": int(lab), "score": float(s),
                                "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
    return results


def coco_map(gt: dict, results: list[dict]) -> dict:
    """{"map": mAP@[.5:.95], "map50": mAP@0.5} of ``results`` against the COCO dict ``gt``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        return {"map": 0.0, "map50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its tables
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = np.maximum(ev.stats[:2], 0.0)  # -1 means "no ground truth"; report 0
    return {"map": float(stats[0]), "map50": float(stats[1])}


def evaluate_map(model: nn.Module, scenes: ConveyorScenes, count: int, channels: int,
                 gt: dict | None = None) -> dict:
    """Predict on scenes 0..count-1 and score them; pass ``gt`` to reuse a COCO dict."""
    gt = gt if gt is not None else coco_dict(scenes, count)
    return coco_map(gt, predict(model, scenes, count, channels))
