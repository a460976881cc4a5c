"""The annotated frame published on ``~/debug_image``: the roi, then the label or each
detection's box and name, and the member with its model time."""
from __future__ import annotations

import cv2

from vip_perception.results import FrameResult

from . import convert

GREEN, ORANGE = (0, 255, 0), (0, 200, 255)  # BGR


def render(msg, box, result: FrameResult, dets) -> object:
    """sensor_msgs/Image (bgr8, ``msg``'s header) of the full frame of ``msg`` annotated with
    ``box`` (the roi, x, y, w, h) and ``dets`` (None for a classification), all in frame pixels.
    Raises ConversionError when ``msg`` cannot be converted."""
    bgr = cv2.cvtColor(convert.message_to_array(msg, "rgb8"), cv2.COLOR_RGB2BGR)
    x, y, w, h = box
    cv2.rectangle(bgr, (x, y), (x + w - 1, y + h - 1), GREEN, 2)
    if result.skipped:
        label = "skipped"
    elif dets is not None:
        label = f"{len(dets)} detections"
    else:
        label = f"{result.class_name} {result.score or 0:.2f}"
    for d in dets or ():
        x0, y0, x1, y1 = (int(round(v)) for v in d.box)  # noqa: RUF046 - numpy floats
        cv2.rectangle(bgr, (x0, y0), (x1 - 1, y1 - 1), ORANGE, 1)
        cv2.putText(bgr, f"{d.class_name} {d.score:.2f}", (x0, max(y0 - 3, 10)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.35, ORANGE, 1)
    t = result.timing
    cv2.putText(bgr, f"{label} | {t.member} {t.actual_ms:.1f} ms", (x + 4, y + 20),
                cv2.FONT_HERSHEY_SIMPLEX, 0.6, GREEN, 2)
    return convert.array_to_image(bgr, "bgr8", msg.header)
