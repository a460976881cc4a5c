"""Result messages: vision_msgs where importable, std_msgs/String JSON otherwise.

Why both: vision_msgs is what ROS 2 consumers expect, but it is not installable without a ROS
distribution; the JSON form carries the same fields (header stamp and frame_id copied from the
input image, class ids, names, scores, boxes) so the node is useful either way. The JSON
builders are pure functions over plain values, tested without DDS.
"""
from __future__ import annotations

import json
from dataclasses import replace

from std_msgs.msg import String

from vip_perception.results import Detection

from .parameters import vision_msgs_available


def header_dict(header) -> dict:
    return {"stamp": {"sec": int(header.stamp.sec), "nanosec": int(header.stamp.nanosec)},
            "frame_id": header.frame_id}


def classification_dict(header, camera: str, result, box) -> dict:
    ok = result.class_id is not None
    return {
        "header": header_dict(header), "camera": camera,
        "class_ids": [int(result.class_id)] if ok else [],
        "class_names": [result.class_name] if ok else [],
        "scores": [float(result.score)] if ok and result.score is not None else [],
        "boxes": [list(box)] if ok and box is not None else [],
        "member": result.timing.member,
    }


def select_detections(dets, score_threshold: float, max_detections: int) -> list[Detection]:
    """What the node publishes: score >= threshold, highest first, at most max_detections."""
    kept = [d for d in dets if d.score >= score_threshold]
    kept.sort(key=lambda d: -d.score)
    return kept[:max_detections]


def offset_detections(dets, origin: tuple[int, int]) -> list[Detection]:
    """Boxes of a detector run on a crop -> full-frame pixels (the crop's top-left is ``origin``).

    Why: the node converts only the roi, so the engine's boxes are relative to it; subscribers
    draw on, and match against, the whole image."""
    ox, oy = float(origin[0]), float(origin[1])
    if not (ox or oy):
        return list(dets)
    return [replace(d, box=(d.box[0] + ox, d.box[1] + oy, d.box[2] + ox, d.box[3] + oy))
            for d in dets]


def detections_dict(header, camera: str, dets: list[Detection], member: str | None = None) -> dict:
    """JSON twin of Detection2DArray; boxes are [x0, y0, x1, y1] in full-frame pixels (unlike
    a classification's box, the roi as x, y, w, h). Empty lists when nothing was detected."""
    return {"header": header_dict(header), "camera": camera, "box_format": "xyxy",
            "class_ids": [int(d.class_id) for d in dets],
            "class_names": [d.class_name for d in dets],
            "scores": [float(d.score) for d in dets],
            "boxes": [[float(v) for v in d.box] for d in dets],
            "member": member}


def timing_dict(header, camera: str, result, slot_wait_ms: float, latency_ms: float) -> dict:
    """The engine's TimingRecord (member, predicted/actual/remaining ms, deadline_met,
    slowdown, queue_age_ms = capture -> processing start) plus what only the node knows:
    slot_wait_ms (callback -> worker) and latency_ms (capture -> result published)."""
    t = result.timing
    d = t.to_dict() if hasattr(t, "to_dict") else dict(vars(t))
    d.update({"header": header_dict(header), "camera": camera, "skipped": bool(result.skipped),
              "slot_wait_ms": float(slot_wait_ms), "latency_ms": float(latency_ms)})
    return d


def json_string(d: dict) -> String:
    return String(data=json.dumps(d, separators=(",", ":")))


def resolve_format(output_format: str) -> str:
    """'auto' -> 'vision_msgs' when importable, else 'json'."""
    if output_format == "auto":
        return "vision_msgs" if vision_msgs_available() else "json"
    return output_format


def classification_msg(header, result):
    """vision_msgs/Classification (4.x: class_id is a string)."""
    from vision_msgs.msg import Classification, ObjectHypothesis

    msg = Classification()
    msg.header = header
    if result.class_id is not None:
        msg.results = [ObjectHypothesis(class_id=str(result.class_id),
                                        score=float(result.score or 0.0))]
    return msg


def detections_msg(header, dets: list[Detection]):
    """vision_msgs/Detection2DArray, each detection's header copied too; empty when none.
    BoundingBox2D is centre + size, so the xyxy box is converted here."""
    from vision_msgs.msg import (BoundingBox2D, Detection2D, Detection2DArray,
                                 ObjectHypothesisWithPose)

    out = Detection2DArray()
    out.header = header
    for d in dets:
        det = Detection2D()
        det.header = header
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = str(d.class_id)
        hyp.hypothesis.score = float(d.score)
        det.results = [hyp]
        x0, y0, x1, y1 = (float(v) for v in d.box)
        bbox = BoundingBox2D()
        center = bbox.center
        pos = center.position if hasattr(center, "position") else center  # Pose2D since 4.0
        pos.x, pos.y = (x0 + x1) / 2, (y0 + y1) / 2
        bbox.size_x, bbox.size_y = x1 - x0, y1 - y0
        det.bbox = bbox
        out.detections.append(det)
    return out


class Outputs:
    """The node's result publishers, created once for a resolved format."""

    def __init__(self, node, output_format: str, detection: bool, qos_depth: int = 10):
        self.node = node
        self.format = resolve_format(output_format)
        self.detection = detection
        if self.format == "vision_msgs":
            from vision_msgs.msg import Classification, Detection2DArray
            cls_type, det_type = Classification, Detection2DArray
        else:
            cls_type = det_type = String
        self.classifications = node.create_publisher(cls_type, "classifications", qos_depth)
        self.detections = (node.create_publisher(det_type, "detections", qos_depth)
                           if detection else None)
        self.timing = node.create_publisher(String, "timing", qos_depth)

    def publish_result(self, header, camera: str, result, box, dets=None) -> None:
        if self.detection:
            dets = dets or []
            if self.format == "vision_msgs":
                self.detections.publish(detections_msg(header, dets))
            else:
                self.detections.publish(json_string(detections_dict(
                    header, camera, dets, result.timing.member)))
            return
        if self.format == "vision_msgs":
            self.classifications.publish(classification_msg(header, result))
        else:
            self.classifications.publish(json_string(classification_dict(header, camera,
                                                                         result, box)))

    def publish_timing(self, header, camera: str, result, slot_wait_ms: float,
                       latency_ms: float) -> None:
        self.timing.publish(json_string(timing_dict(header, camera, result, slot_wait_ms,
                                                    latency_ms)))

    def destroy(self) -> None:
        for pub in (self.classifications, self.detections, self.timing):
            if pub is not None:
                self.node.destroy_publisher(pub)
