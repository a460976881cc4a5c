"""Detection: a ViP detector from its manifest spec (the project's Faster R-CNN, a
``DetectorSpec``, or a torchvision detector, a ``TorchvisionDetectorSpec``), its output ->
detections in frame pixels, and COCO mAP with pycocotools.

Boxes: the bank's preprocessing resizes the frame's roi to the detector's input size, so boxes
are scaled and shifted back before they mean anything to a subscriber, and labels lose Faster
R-CNN's background offset (torchvision class 1 = our class 0).

mAP: pycocotools is the reference COCO evaluator, so the numbers are the standard ones
(mAP@[.5:.95] and mAP@0.5, 101-point interpolation, maxDets 100), comparable with any other
tool reading the same COCO JSON.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np

from ..letterbox import boxes_from_letterbox
from ..results import Detection
from .base import Task


def to_detections(output: dict, class_names: Sequence[str], input_hw: tuple[int, int], image_hw: tuple[int, int],
                  offset_xy: tuple[int, int] = (0, 0), min_score: float = 0.0, letterbox: bool = False
                  ) -> list[Detection]:
    """One torchvision detector output ({"boxes" (K, 4) x0 y0 x1 y1, "labels" (K,), "scores"
    (K,)}) -> detections in frame pixels, highest score first.

    ``input_hw``: the size the detector saw; ``image_hw``: the size of the frame region that was
    resized to it (stretched, or ``letterbox``ed: boxes mapped back through
    ``letterbox.boxes_from_letterbox``); ``offset_xy``: that region's top-left corner in the
    frame. Labels outside 1..len(class_names) and scores below ``min_score`` are dropped.
    """
    shift = np.array([offset_xy[0], offset_xy[1]] * 2, np.float64)
    boxes = np.asarray(output["boxes"].float().numpy(), np.float64).reshape(-1, 4)  # (K, 4) input pixels
    if letterbox:
        boxes = boxes_from_letterbox(boxes, image_hw, input_hw) + shift
    else:
        sy, sx = image_hw[0] / input_hw[0], image_hw[1] / input_hw[1]
        boxes = boxes * np.array([sx, sy, sx, sy], np.float64) + shift
    out = []
    for b, lab, s in zip(boxes.tolist(), output["labels"].tolist(), output["scores"].tolist()):
        k = int(lab) - 1
        if s < min_score or not 0 <= k < len(class_names):
            continue
        out.append(Detection(tuple(float(v) for v in b), k, class_names[k], float(s)))
    return sorted(out, key=lambda d: -d.score)


def scene_image(scene, channels: int):
    """A conveyor ``Scene`` -> the detector's input image (C, H, W) float32 in [0, 1]."""
    import torch

    img = scene.image[..., :1] if channels == 1 else scene.image  # (H, W, C) uint8
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)


def predict(model, scenes, count: int, channels: int, batch: int = 4) -> list[dict]:
    """COCO result records (image_id, category_id, bbox x y w h, score) of ``model`` on scenes
    0..count-1 of ``scenes`` (a ``data.conveyor.ConveyorScenes``)."""
    return predict_images(model, ((scene_image(scenes.scene(i), channels), i, (1.0, 1.0)) for i in range(count)),
                          batch)


def predict_images(model, items, batch: int = 4) -> list[dict]:
    """COCO result records of ``model`` on ``items``: (image (C, H, W) float32 in [0, 1] at the
    model's input size, image id, (sx, sy) scale from input pixels to the image's own pixels).
    Boxes are reported in the image's own pixels, where its ground truth lives."""
    import torch

    model.eval()
    results, chunk = [], []

    def flush():
        with torch.inference_mode():
            outs = model([c[0] for c in chunk])
        for (_, image_id, (sx, sy)), out in zip(chunk, outs):
            boxes = out["boxes"].float().numpy() * np.array([sx, sy, sx, sy], np.float32)  # (K, 4) x0, y0, x1, y1
            for b, lab, s in zip(boxes, out["labels"].tolist(), out["scores"].tolist()):
                results.append({"image_id": int(image_id), "category_id": int(lab), "score": float(s),
                                "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
        chunk.clear()

    for item in items:
        chunk.append(item)
        if len(chunk) == batch:
            flush()
    if chunk:
        flush()
    return results


def coco_map(gt: dict, results: list[dict]) -> dict:
    """{"map": mAP@[.5:.95], "map50": mAP@0.5} of ``results`` against the COCO dict ``gt``
    (0.0 for no results or no ground truth)."""
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


def evaluate_map(model, scenes, count: int, channels: int, gt: dict | None = None) -> dict:
    """Predict on scenes 0..count-1 and score them with ``coco_map``; pass ``gt`` to reuse a
    COCO dict (``data.conveyor.coco_dict``)."""
    if gt is None:
        from ..data.conveyor import coco_dict

        gt = coco_dict(scenes, count)
    return coco_map(gt, predict(model, scenes, count, channels))


class DetectionTask(Task):
    name = "detection"
    output_kind = "detection"
    backends = ("torch",)  # torchvision's detector (RPN, RoIAlign, NMS) runs on torch only
    accuracy_name = "mAP@0.5"

    def build_member(self, spec, vip_layers: Sequence[str]):
        """A detector spec (``DetectorSpec``, ``TorchvisionDetectorSpec`` or the dict of either:
        one with an "arch" key is a torchvision detector) -> the detector in eval mode, ViP on
        the listed backbone convolutions."""
        from ..models.detector import DetectorSpec, build_detector
        from ..models.torchvision_detector import TorchvisionDetectorSpec, build_torchvision_detector
        from ..vip import apply_vip

        if isinstance(spec, dict):
            spec = TorchvisionDetectorSpec.from_dict(spec) if "arch" in spec else DetectorSpec.from_dict(spec)
        model = build_torchvision_detector(spec) if isinstance(spec, TorchvisionDetectorSpec) else build_detector(spec)
        if vip_layers:
            model = apply_vip(model, list(vip_layers))
        return model.eval()

    def batch1_call(self, module):
        """(1, C, H, W) -> the detector's output dict for that one image."""
        from ..models.detector import DetectorCall

        call = DetectorCall(module)
        return lambda x: call(x)[0]

    def postprocess(self, output, class_names: Sequence[str], input_hw: tuple[int, int],
                    roi: tuple[int, int, int, int]) -> dict:
        """Detector output -> {"detections": tuple of ``results.Detection``}, every detection the
        model returned, score-sorted, boxes in full-frame pixels (through the letterbox when the
        output says its input was letterboxed: an imported model's ``"letterbox"``)."""
        x, y, w, h = roi
        letterbox = bool(output.get("letterbox", False))
        return {"detections": tuple(to_detections(output, class_names, input_hw, (h, w), (x, y),
                                                  letterbox=letterbox))}

    def evaluate_accuracy(self, model, scenes, count: int, channels: int, gt: dict | None = None) -> dict:
        """COCO mAP of ``model`` on scenes 0..count-1 (see ``evaluate_map``); the manifest's
        accuracy fields hold its "map50"."""
        return evaluate_map(model, scenes, count, channels, gt)


TASK = DetectionTask()
