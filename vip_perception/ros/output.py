"""Result messages: vision_msgs where importable, std_msgs/String JSON otherwise.

The message family follows the task's ``output_kind`` (``tasks.OUTPUT_KINDS``): classification ->
``classifications`` (the top-k hypotheses, best first), detection -> ``detections``; both carry
the input image's header, and every box is in frame pixels. The class names travel once, on
the latched ``label_info`` topic (vision_msgs/LabelInfo, or its JSON twin), so a consumer that
joins late still learns them; results carry class ids only. The JSON builders are pure functions over plain values
(``vip_perception.results``), tested without DDS. Torch-free: importing this module never
imports torch.
"""
from __future__ import annotations

import json

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header, String

from vip_perception.results import Detection, FrameResult
from vip_perception.tasks import OUTPUT_KINDS

OUTPUT_FORMATS = ("auto", "vision_msgs", "json")
LABEL_TOPIC = "label_info"
# Published once per bank and kept for subscribers that join later (vision_msgs' convention).
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


def vision_msgs_available() -> bool:
    """True when ``vision_msgs.msg`` imports (a ROS 2 distribution provides it)."""
    try:
        import vision_msgs.msg  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


def header_dict(header) -> dict:
    """std_msgs/Header -> {"stamp": {"sec", "nanosec"}, "frame_id"}."""
    return {"stamp": {"sec": int(header.stamp.sec), "nanosec": int(header.stamp.nanosec)},
            "frame_id": header.frame_id}


def ranked(result) -> list[tuple[int, str, float]]:
    """The result's hypotheses, best first: ``FrameResult.top``, or the single best class
    when the engine gave no ranking; [] for a skipped frame."""
    top = getattr(result, "top", None)
    if top:
        return [(int(i), str(n), float(p)) for i, n, p in top]
    if result.class_id is None:
        return []
    return [(int(result.class_id), str(result.class_name), float(result.score or 0.0))]


def classification_dict(header, camera: str, result: FrameResult, box) -> dict:
    """JSON twin of vision_msgs/Classification plus the roi the model saw, ``box`` = (x, y, w,
    h) in frame pixels. class_ids / class_names / scores / boxes hold the best class;
    ``top_k`` the k best ({"class_id", "class_name", "score"}, best first, k = the ``top_k``
    parameter). Empty lists for a skipped frame."""
    ok = result.class_id is not None
    return {
        "header": header_dict(header), "camera": camera,
        "class_ids": [int(result.class_id)] if ok else [],
        "class_names": [result.class_name] if ok else [],
        "scores": [float(result.score)] if ok and result.score is not None else [],
        "boxes": [list(box)] if ok and box is not None else [],
        "top_k": [{"class_id": i, "class_name": n, "score": p} for i, n, p in ranked(result)],
        "member": result.timing.member,
    }


def label_info_dict(header, class_names, threshold: float) -> dict:
    """JSON twin of vision_msgs/LabelInfo: class_map [{"class_id" (the index), "class_name"}]
    and the score threshold below which nothing is published (0.0 for classifiers)."""
    return {"header": header_dict(header),
            "class_map": [{"class_id": i, "class_name": str(n)} for i, n in enumerate(class_names)],
            "threshold": float(threshold)}


def label_info_msg(header, class_names, threshold: float):
    """vision_msgs/LabelInfo: VisionClass class_id (uint16) = the class index. ValueError when
    a bank has more classes than uint16 can number."""
    from vision_msgs.msg import LabelInfo, VisionClass

    if len(class_names) > 65536:
        raise ValueError(f"LabelInfo numbers classes with uint16: {len(class_names)} classes")
    return LabelInfo(header=header, threshold=float(threshold),
                     class_map=[VisionClass(class_id=i, class_name=str(n))
                                for i, n in enumerate(class_names)])


def select_detections(dets, score_threshold: float, max_detections: int) -> list[Detection]:
    """What the node publishes: score >= threshold, highest first, at most max_detections."""
    kept = [d for d in dets if d.score >= score_threshold]
    kept.sort(key=lambda d: -d.score)
    return kept[:max_detections]


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
    """Compact JSON in a std_msgs/String."""
    return String(data=json.dumps(d, separators=(",", ":")))


def resolve_format(output_format: str, vision_msgs: bool | None = None) -> str:
    """The concrete format: 'auto' -> 'vision_msgs' when ``vision_msgs`` (default: whether it
    is importable here), else 'json'; 'vision_msgs' and 'json' are returned as given.
    Raises ValueError for any other value."""
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output_format must be one of {list(OUTPUT_FORMATS)}, "
                         f"got {output_format!r}")
    if output_format != "auto":
        return output_format
    available = vision_msgs_available() if vision_msgs is None else vision_msgs
    return "vision_msgs" if available else "json"


def classification_msg(header, result):
    """vision_msgs/Classification: the top-k hypotheses (``ranked``), best first (4.x:
    class_id is a string, the class index; names are on ``label_info``)."""
    from vision_msgs.msg import Classification, ObjectHypothesis

    msg = Classification()
    msg.header = header
    msg.results = [ObjectHypothesis(class_id=str(i), score=p) for i, _, p in ranked(result)]
    return msg


def detections_msg(header, dets: list[Detection]):
    """vision_msgs/Detection2DArray, each detection's header copied too; empty when none.
    BoundingBox2D is centre + size, so the xyxy box is converted here."""
    from vision_msgs.msg import (
        BoundingBox2D,
        Detection2D,
        Detection2DArray,
        ObjectHypothesisWithPose,
    )

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
    """The result, timing and label publishers of one (output kind, resolved format) pair.

    ``output_kind`` is the bank task's ``output_kind`` (one of ``OUTPUT_KINDS``): it picks the
    result topic (``classifications`` or ``detections``) and its message family. Raises
    ValueError for an unknown kind or format."""

    def __init__(self, node, output_format: str, output_kind: str, qos_depth: int = 10):
        if output_kind not in OUTPUT_KINDS:
            raise ValueError(f"output kind must be one of {list(OUTPUT_KINDS)}, got "
                             f"{output_kind!r}")
        self.node = node
        self.format = resolve_format(output_format)
        self.kind = output_kind
        msg_type = label_type = String
        if self.format == "vision_msgs":
            from vision_msgs.msg import Classification, Detection2DArray, LabelInfo
            msg_type = Classification if output_kind == "classification" else Detection2DArray
            label_type = LabelInfo
        topic = "classifications" if output_kind == "classification" else "detections"
        self.results = node.create_publisher(msg_type, topic, qos_depth)
        self.timing = node.create_publisher(String, "timing", qos_depth)
        self.labels = node.create_publisher(label_type, LABEL_TOPIC, LATCHED_QOS)
        self._labelled = None  # (bank, threshold) last published on label_info

    def publish_labels(self, bank, score_threshold: float) -> bool:
        """Publish ``bank``'s class names on the latched ``label_info`` when the bank or the
        threshold (``score_threshold`` for detectors, 0.0 for classifiers) differs from the
        last one published; a no-op otherwise, so it may be called between any two frames.
        Stamped now, frame_id empty (the names hold for every camera). True when published."""
        threshold = float(score_threshold) if self.kind == "detection" else 0.0
        if self._labelled is not None and self._labelled[0] is bank \
                and self._labelled[1] == threshold:
            return False
        header = Header(stamp=self.node.get_clock().now().to_msg(), frame_id="")
        names = list(getattr(bank, "class_names", None) or [])
        self._labelled = (bank, threshold)  # once per bank, even if building the message fails
        self.labels.publish(label_info_msg(header, names, threshold)
                            if self.format == "vision_msgs"
                            else json_string(label_info_dict(header, names, threshold)))
        return True

    def publish_result(self, header, camera: str, result: FrameResult, box, dets=()) -> None:
        """One frame's result: ``box`` the roi (x, y, w, h), ``dets`` the detections to
        publish (already selected), both in frame pixels."""
        vision = self.format == "vision_msgs"
        if self.kind == "detection":
            msg = (detections_msg(header, dets) if vision else json_string(
                detections_dict(header, camera, dets, result.timing.member)))
        else:
            msg = (classification_msg(header, result) if vision else json_string(
                classification_dict(header, camera, result, box)))
        self.results.publish(msg)

    def publish_timing(self, header, camera: str, result: FrameResult, slot_wait_ms: float,
                       latency_ms: float) -> None:
        """The frame's timing record as JSON on ``timing`` (see ``timing_dict``)."""
        self.timing.publish(json_string(timing_dict(header, camera, result, slot_wait_ms,
                                                    latency_ms)))

    def destroy(self) -> None:
        for pub in (self.results, self.timing, self.labels):
            self.node.destroy_publisher(pub)
