"""Pure pieces of the ROS layer: result/timing JSON, detection selection, frame slots (newest
frame per camera, round robin), statistics and diagnostic levels."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("rclpy")

from std_msgs.msg import Header  # noqa: E402

from vip_perception.ros import diagnostics, output  # noqa: E402
from vip_perception.ros.frame_slots import Frame, FrameSlots  # noqa: E402
from vip_perception.ros.parameters import Settings  # noqa: E402
from vip_perception.ros.perception import clip_roi, format_summary  # noqa: E402
from vip_perception.ros.stats import CameraStats, Snapshot, rates  # noqa: E402
from vip_perception.runtime import FrameResult, TimingRecord  # noqa: E402


def _hdr():
    h = Header(frame_id="cam0")
    h.stamp.sec, h.stamp.nanosec = 5, 7
    return h


def _result(skipped=False):
    t = TimingRecord(None if skipped else "m1", 1, 2.0, 1.5, 10.0, not skipped, 1.2, 3.0)
    return FrameResult(None if skipped else 4, None if skipped else "Coat", None if skipped else 0.8, skipped, t)


def test_classification_json_has_every_field_and_the_header():
    d = output.classification_dict(_hdr(), "image_raw", _result(), (1, 2, 3, 4))
    assert d["header"] == {"stamp": {"sec": 5, "nanosec": 7}, "frame_id": "cam0"}
    assert (d["class_ids"], d["class_names"], d["scores"], d["boxes"]) == ([4], ["Coat"], [0.8], [[1, 2, 3, 4]])
    assert json.loads(output.json_string(d).data) == d


def test_timing_json_keeps_engine_fields_and_adds_node_fields():
    d = output.timing_dict(_hdr(), "image_raw", _result(), 0.25, 9.0)
    for key in ("member", "predicted_ms", "actual_ms", "remaining_ms", "deadline_met", "slowdown",
                "queue_age_ms", "slot_wait_ms", "latency_ms", "camera", "skipped"):
        assert key in d
    assert d["queue_age_ms"] == 3.0 and d["slot_wait_ms"] == 0.25
    assert output.timing_dict(_hdr(), "c", _result(skipped=True), 0, 0)["skipped"] is True


def test_select_detections_thresholds_sorts_and_caps():
    D = output.Detection
    dets = [D(0, "a", 0.3, (0, 0, 1, 1)), D(1, "b", 0.9, (0, 0, 1, 1)), D(2, "c", 0.5, (0, 0, 1, 1))]
    assert [d.class_name for d in output.select_detections(dets, 0.4, 10)] == ["b", "c"]
    assert [d.class_name for d in output.select_detections(dets, 0.0, 1)] == ["b"]
    assert output.select_detections([], 0.0, 5) == []


def test_resolve_format():
    assert output.resolve_format("json") == "json"
    assert output.resolve_format("auto") in ("json", "vision_msgs")


def test_frame_slots_keep_newest_and_serve_round_robin():
    slots = FrameSlots(["a", "b", "c"])
    assert not slots.put("a", Frame("a1", 0, 0))
    assert slots.put("a", Frame("a2", 0, 0))  # replaced the untaken a1
    slots.put("b", Frame("b1", 0, 0))
    slots.put("c", Frame("c1", 0, 0))
    cam, f = slots.take(0.1)
    assert (cam, f.msg) == ("a", "a2")
    slots.put("a", Frame("a3", 0, 0))  # a is back, but b and c are served first
    assert [slots.take(0.1)[0] for _ in range(3)] == ["b", "c", "a"]
    assert slots.take(0.01) is None


def test_clip_roi():
    assert clip_roi((), (480, 640)) is None
    assert clip_roi((600, 400, 100, 100), (480, 640)) == (600, 400, 40, 80)
    assert clip_roi((1000, 1000, 5, 5), (480, 640)) == (639, 479, 1, 1)


def test_rates_and_levels():
    s = Settings()
    prev = Snapshot(0.0)
    cur = Snapshot(2.0, received=20, processed=10, misses=1, dropped_stale=2, malformed=0)
    r = rates(prev, cur)
    assert r["input_hz"] == 10 and r["processed_hz"] == 5
    assert r["miss_ratio"] == pytest.approx(0.1) and r["drop_ratio"] == pytest.approx(0.1)
    assert diagnostics.level_for(r, 0.1, s)[0] == diagnostics.WARN  # miss ratio at the warn line
    ok = rates(prev, Snapshot(2.0, received=20, processed=20))
    assert diagnostics.level_for(ok, 0.1, s)[0] == diagnostics.OK
    bad = rates(prev, Snapshot(2.0, received=20, processed=2, dropped_stale=18))
    assert diagnostics.level_for(bad, 0.1, s)[0] == diagnostics.ERROR
    assert diagnostics.level_for(ok, None, s)[0] == diagnostics.STALE
    assert diagnostics.level_for(ok, s.stale_after_s + 1, s)[0] == diagnostics.STALE


def test_camera_status_values_and_summary_text():
    cam = CameraStats("image_raw")
    cam.on_received(1.0)
    cam.on_processed("m1", True, 5.0, 0.5, False)
    cam.on_processed("m2", False, 9.0, 0.7, False)
    cam.on_malformed("bad_step")
    st = diagnostics.camera_status("vip", "host", cam, Snapshot(0.0), cam.snapshot(2.0), 2.0, Settings())
    values = {kv.key: kv.value for kv in st.values}
    assert st.name == "vip: camera image_raw" and st.hardware_id == "host"
    assert values["deadline_misses"] == "1" and values["malformed_bad_step"] == "1"
    assert values["member_usage"] == "m1=1, m2=1"
    text = format_summary({"node": "vip", "uptime_s": 2.0, "bank": {"name": "b", "path": "/b"},
                           "cameras": [cam.summary()]})
    assert "processed 2" in text and "deadline misses 1" in text and "malformed 1" in text
