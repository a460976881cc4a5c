"""The node's stages join the engine's TimingRecord; the bench row accounts for the latency."""
from __future__ import annotations

import pytest

from vip_perception.results import FrameResult, TimingRecord
from vip_perception.ros.frame_timing import STAGES, stage_entry, with_node_stages


def test_node_stages_fill_the_record_and_the_row_adds_up():
    t = TimingRecord("m", 1, 2.0, 2.5, 10.0, True, 1.0, 3.0, selection_us=20.0, end_to_end_ms=6.0,
                     preprocess_ms=0.3, postprocess_ms=0.1)
    r = with_node_stages(FrameResult(1, "c", 0.9, False, t), received_at=100.002, capture=100.0,
                         convert_ms=0.2, publish_ms=0.15)
    assert r.timing.receive_ms == pytest.approx(2.0) and r.timing.convert_ms == 0.2
    assert r.timing.publish_ms == 0.15 and r.timing.preprocess_ms == 0.3  # engine fields kept
    row = stage_entry("cam", r, slot_wait_ms=0.4, latency_ms=6.0, timing_publish_ms=0.1)
    assert row["selection_ms"] == pytest.approx(0.02)
    assert sum(row[k] for k in STAGES) + row["unaccounted_ms"] == pytest.approx(6.0)
    assert set(r.timing.to_dict()) >= {"receive_ms", "convert_ms", "preprocess_ms", "postprocess_ms",
                                       "publish_ms"}


def test_a_stamp_from_the_future_is_not_a_negative_delivery():
    t = TimingRecord("m", 1, 2.0, 2.5, 10.0, True, 1.0, 3.0)
    r = with_node_stages(FrameResult(1, "c", 0.9, False, t), 99.0, 100.0, 0.0, 0.0)
    assert r.timing.receive_ms == 0.0
