"""Pure pieces of the ROS layer: result/timing JSON, detection selection, frame slots (newest
frame per camera, round robin), statistics and diagnostic levels."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("rclpy")

from std_msgs.msg import Header  # noqa: E402

from vip_perception.results import Detection  # noqa: E402
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
    D = Detection
    dets = [D((0, 0, 1, 1), 0, "a", 0.3), D((0, 0, 1, 1), 1, "b", 0.9), D((0, 0, 1, 1), 2, "c", 0.5)]
    assert [d.class_name for d in output.select_detections(dets, 0.4, 10)] == ["b", "c"]
    assert [d.class_name for d in output.select_detections(dets, 0.0, 1)] == ["b"]
    assert output.select_detections([], 0.0, 5) == []


def test_offset_detections_moves_roi_boxes_into_the_frame():
    dets = [Detection((1.0, 2.0, 11.0, 22.0), 3, "Dress", 0.8)]
    moved = output.offset_detections(dets, (40, 30))
    assert moved[0].box == (41.0, 32.0, 51.0, 52.0)
    assert (moved[0].class_id, moved[0].class_name, moved[0].score) == (3, "Dress", 0.8)
    assert dets[0].box == (1.0, 2.0, 11.0, 22.0)  # the engine's result is left alone
    assert output.offset_detections(dets, (0, 0)) == dets


def test_detections_json_has_xyxy_boxes_names_scores_and_the_header():
    dets = [Detection((10.0, 20.0, 40.0, 60.0), 1, "Trouser", 0.9),
            Detection((0.5, 1.5, 2.5, 3.5), 9, "Ankle boot", 0.4)]
    d = output.detections_dict(_hdr(), "image_raw", dets, "parent")
    assert d["header"] == {"stamp": {"sec": 5, "nanosec": 7}, "frame_id": "cam0"}
    assert d["box_format"] == "xyxy" and d["member"] == "parent"
    assert d["boxes"] == [[10.0, 20.0, 40.0, 60.0], [0.5, 1.5, 2.5, 3.5]]
    assert (d["class_ids"], d["class_names"], d["scores"]) == ([1, 9], ["Trouser", "Ankle boot"], [0.9, 0.4])
    assert json.loads(output.json_string(d).data) == d
    empty = output.detections_dict(_hdr(), "image_raw", [])
    assert (empty["boxes"], empty["class_ids"], empty["class_names"], empty["scores"]) == ([], [], [], [])


def test_detection2darray_builder_where_vision_msgs_is_importable():
    pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not installable without a ROS 2 "
                        "distribution; the JSON output is what runs here")
    arr = output.detections_msg(_hdr(), [Detection((10.0, 20.0, 40.0, 60.0), 1, "Trouser", 0.9)])
    assert arr.header.frame_id == "cam0" and arr.header.stamp.nanosec == 7
    det = arr.detections[0]
    assert det.header.frame_id == "cam0" and det.header.stamp.sec == 5  # each detection's too
    center = det.bbox.center.position if hasattr(det.bbox.center, "position") else det.bbox.center
    assert (center.x, center.y, det.bbox.size_x, det.bbox.size_y) == (25.0, 40.0, 30.0, 40.0)
    assert det.results[0].hypothesis.class_id == "1" and det.results[0].hypothesis.score == pytest.approx(0.9)
    assert output.detections_msg(_hdr(), []).detections == []


def test_detection2darray_builder_math_with_stand_in_message_classes(monkeypatch):
    """vision_msgs 4.x layout (center is a Pose2D with .position) faked, so the xyxy -> centre
    + size conversion and the per-detection headers are checked where vision_msgs is absent."""
    import sys
    import types

    class Msg:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    fake = types.ModuleType("vision_msgs.msg")
    fake.Detection2DArray = lambda: Msg(header=None, detections=[])
    fake.Detection2D = lambda: Msg(header=None, results=[], bbox=None)
    fake.ObjectHypothesisWithPose = lambda: Msg(hypothesis=Msg(class_id="", score=0.0))
    fake.BoundingBox2D = lambda: Msg(center=Msg(position=Msg(x=0.0, y=0.0), theta=0.0),
                                     size_x=0.0, size_y=0.0)
    monkeypatch.setitem(sys.modules, "vision_msgs", types.ModuleType("vision_msgs"))
    monkeypatch.setitem(sys.modules, "vision_msgs.msg", fake)
    hdr = _hdr()
    arr = output.detections_msg(hdr, [Detection((10.0, 20.0, 40.0, 60.0), 1, "Trouser", 0.9)])
    det = arr.detections[0]
    assert arr.header is hdr and det.header is hdr
    pos = det.bbox.center.position
    assert (pos.x, pos.y, det.bbox.size_x, det.bbox.size_y) == (25.0, 40.0, 30.0, 40.0)
    assert (det.results[0].hypothesis.class_id, det.results[0].hypothesis.score) == ("1", 0.9)
    assert output.detections_msg(hdr, []).detections == []


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
