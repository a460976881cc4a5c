"""What the engine returns for one frame: plain data, no torch, so the ROS output layer and any
consumer can use it without importing the model stack.

Every coordinate is in full-frame pixels (the camera image the node received), whatever roi
the model saw.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Detection:
    """One detected object."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in full-frame pixels
    class_id: int  # 0-based, indexes the bank's class_names
    class_name: str
    score: float  # in [0, 1]

    def to_dict(self) -> dict:
        return {"box": [round(v, 2) for v in self.box], "class_id": self.class_id,
                "class_name": self.class_name, "score": round(self.score, 4)}


@dataclass(frozen=True)
class TimingRecord:
    """What happened to one frame, in milliseconds (``selection_us``: microseconds).

    The engine fills the fields up to ``postprocess_ms``; the node adds what only it sees
    (``receive_ms``, ``convert_ms``, ``publish_ms``; 0.0 where no node is involved). One
    frame's path, in order: capture stamp -> subscription callback (``receive_ms``: DDS
    delivery and the executor) -> the worker takes the frame (the node's ``slot_wait_ms``) ->
    message to roi pixels (``convert_ms``) -> ``preprocess_ms`` -> ``selection_us`` ->
    model (``actual_ms``) -> ``postprocess_ms`` -> result message published (``publish_ms``).
    ``queue_age_ms`` (capture -> engine start) covers the first three.
    """

    member: str | None  # None when skipped
    threads: int
    predicted_ms: float  # profiled quantile x slowdown of the chosen option
    actual_ms: float  # measured model time (0 when skipped)
    remaining_ms: float  # time left at decision (after preprocessing, minus margin)
    deadline_met: bool  # result ready within capture_time + deadline_ms (False when skipped)
    slowdown: float  # factor applied for ``threads``
    queue_age_ms: float  # capture -> start of processing
    selection_us: float = 0.0  # cost of the decision itself (factor lookup + selector)
    end_to_end_ms: float = 0.0  # capture -> result ready (engine side: before publishing)
    preprocess_ms: float = 0.0  # roi pixels -> model input tensor (bank.preprocess)
    postprocess_ms: float = 0.0  # model output -> result fields in frame pixels
    receive_ms: float = 0.0  # capture stamp -> subscription callback (DDS delivery + executor)
    convert_ms: float = 0.0  # message -> roi pixels (parse, validate, crop, colour), callback + worker
    publish_ms: float = 0.0  # building and publishing the result message
    calibrated: bool = False  # the engine's slowdown was seeded by a start-up calibration on this machine
    max_threads: int = 0  # more threads were not eligible: other processes held the other cores (0: no limit)
    others_cores: float | None = None  # cores other processes used at the last reading (None: not read)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FrameResult:
    """One frame's outcome. Classification banks fill class_id / class_name / score (the best
    class) and ``top``: the k most probable classes, best first, as (class_id, class_name,
    softmax probability), k = the engine's ``top_k`` capped at the number of classes (so
    ``top[0]`` is (class_id, class_name, score)). Detection banks fill ``detections``
    (score-sorted, boxes in full-frame pixels). ``roi`` is the region the model saw, (x, y, w,
    h) in full-frame pixels (the whole frame when none was set)."""

    class_id: int | None
    class_name: str | None
    score: float | None  # softmax probability of class_id
    skipped: bool
    timing: TimingRecord
    detections: tuple[Detection, ...] | None = None
    roi: tuple[int, int, int, int] | None = None
    top: tuple[tuple[int, str, float], ...] | None = None

    def to_dict(self) -> dict:
        return {
            "class_id": self.class_id,
            "class_name": self.class_name,
            "score": self.score,
            "skipped": self.skipped,
            "timing": self.timing.to_dict(),
            "detections": None if self.detections is None else [d.to_dict() for d in self.detections],
            "roi": None if self.roi is None else list(self.roi),
            "top": None if self.top is None else [list(t) for t in self.top],
        }
