"""The node's share of a frame's timing, added to the engine's TimingRecord.

Why apart from the node: the engine times what it runs (preprocess, selection, model,
post-processing); only the node sees the capture stamp arrive, the message become pixels and
the result go out. ``with_node_stages`` joins both into the one record published on ``timing``
and read by ``vip-perception bench node``; ``stage_entry`` is the per-frame row the bench keeps.
No rclpy; all times in milliseconds.
"""
from __future__ import annotations

from dataclasses import replace

from vip_perception.results import FrameResult

# Non-model stages of one frame, in path order: the keys of ``stage_entry`` the bench breaks down.
STAGES = ("receive_ms", "slot_wait_ms", "convert_ms", "preprocess_ms", "selection_ms", "actual_ms",
          "postprocess_ms", "publish_ms")


def with_node_stages(result: FrameResult, received_at: float, capture: float, convert_ms: float,
                     publish_ms: float) -> FrameResult:
    """``result`` with ``receive_ms`` (capture stamp -> subscription callback, from
    ``received_at`` and ``capture`` in seconds of one clock), ``convert_ms`` (message -> roi
    pixels: the callback's parse + validation and the worker's crop + colour conversion) and
    ``publish_ms`` (result message built and published) filled in its TimingRecord."""
    timing = replace(result.timing, receive_ms=max(0.0, (received_at - capture) * 1e3),
                     convert_ms=convert_ms, publish_ms=publish_ms)
    return replace(result, timing=timing)


def stage_entry(camera: str, result: FrameResult, slot_wait_ms: float, latency_ms: float,
                timing_publish_ms: float) -> dict:
    """One frame's row: the TimingRecord's fields, ``selection_ms``, ``slot_wait_ms`` (callback
    -> worker), ``latency_ms`` (capture stamp -> result published), ``timing_publish_ms`` (the
    timing record's own message, after the result) and ``unaccounted_ms`` (latency minus the
    stages in ``STAGES``: thread hand-offs, clock reads, the engine's lock)."""
    row = {"camera": camera, **result.timing.to_dict(), "selection_ms": result.timing.selection_us / 1e3,
           "slot_wait_ms": slot_wait_ms, "latency_ms": latency_ms, "timing_publish_ms": timing_publish_ms}
    row["unaccounted_ms"] = latency_ms - sum(row[k] for k in STAGES)
    return row
