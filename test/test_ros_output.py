"""Pure pieces of the ROS layer: result/timing JSON, detection selection, frame slots (newest
frame per camera, round robin), statistics and diagnostic levels."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("rclpy")

from std_msgs.msg import Header  # noqa: E402

from vip_perception.results import Detection, FrameResult, TimingRecord  # noqa: E402
from vip_perception.ros import diagnostics, output  # noqa: E402
from vip_perception.ros.frame_slots import Frame, FrameSlots  # noqa: E402
from vip_perception.ros.parameters import Settings  # noqa: E402
from vip_perception.ros.stats import CameraStats, Snapshot, rates  # noqa: E402
from vip_perception.ros.summary import format_summary  # noqa: E402


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


def test_output_module_imports_without_torch():
    """ros/output (and what it imports: results, std_msgs) must not pull in the model stack."""
    import subprocess
    import sys
    code = ("import sys; import vip_perception.ros.output; "
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.') "
            "or m.startswith('vip_perception.detection') or m.startswith('vip_perception.runtime')); "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


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


def test_classification_json_has_the_top_k_best_first():
    t = TimingRecord("m1", 1, 2.0, 1.5, 10.0, True, 1.2, 3.0)
    top = ((4, "Coat", 0.6), (2, "Pullover", 0.3))
    d = output.classification_dict(_hdr(), "image_raw", FrameResult(4, "Coat", 0.6, False, t, top=top), None)
    assert d["top_k"] == [{"class_id": 4, "class_name": "Coat", "score": 0.6},
                          {"class_id": 2, "class_name": "Pullover", "score": 0.3}]
    assert (d["class_ids"], d["class_names"], d["scores"], d["boxes"]) == ([4], ["Coat"], [0.6], [])
    assert output.classification_dict(_hdr(), "c", _result(), None)["top_k"] == [
        {"class_id": 4, "class_name": "Coat", "score": 0.8}]  # no ranking: the best class alone
    assert output.classification_dict(_hdr(), "c", _result(skipped=True), None)["top_k"] == []


@pytest.mark.parametrize("asked,vision_msgs,resolved", [
    ("auto", True, "vision_msgs"), ("auto", False, "json"),
    ("json", True, "json"), ("json", False, "json"),
    ("vision_msgs", True, "vision_msgs"), ("vision_msgs", False, "vision_msgs"),
])
def test_resolve_format(asked, vision_msgs, resolved):
    assert output.resolve_format(asked, vision_msgs=vision_msgs) == resolved


def test_resolve_format_auto_follows_what_is_importable_and_rejects_unknown_values():
    want = "vision_msgs" if output.vision_msgs_available() else "json"
    assert output.resolve_format("auto") == want
    with pytest.raises(ValueError, match=r"^output_format must be one of \['auto', 'vision_msgs', "
                                         r"'json'\], got 'xml'$"):
        output.resolve_format("xml")


class _FakeNode:
    """Records create_publisher calls; publishers record what they publish."""

    def __init__(self):
        self.created, self.destroyed = [], []

    def get_clock(self):
        from rclpy.clock import Clock
        return Clock()

    def create_publisher(self, msg_type, topic, qos):
        pub = type("Pub", (), {"sent": None})()
        pub.sent, pub.topic, pub.msg_type, pub.qos = [], topic, msg_type, qos
        pub.publish = pub.sent.append
        self.created.append(pub)
        return pub

    def destroy_publisher(self, pub):
        self.destroyed.append(pub.topic)


@pytest.mark.parametrize("kind,topic", [("classification", "classifications"),
                                        ("detection", "detections")])
def test_outputs_choose_the_message_family_by_output_kind(kind, topic):
    node = _FakeNode()
    out = output.Outputs(node, "json", kind)
    assert [p.topic for p in node.created] == [topic, "timing", "label_info"]
    dets = (Detection((1.0, 2.0, 3.0, 4.0), 1, "Trouser", 0.9),)
    out.publish_result(_hdr(), "cam", _result(), (0, 0, 8, 8), dets)
    sent = json.loads(node.created[0].sent[0].data)
    if kind == "detection":
        assert sent["boxes"] == [[1.0, 2.0, 3.0, 4.0]] and sent["box_format"] == "xyxy"
    else:
        assert sent["class_names"] == ["Coat"] and sent["boxes"] == [[0, 0, 8, 8]]
    out.destroy()
    assert node.destroyed == [topic, "timing", "label_info"]
    with pytest.raises(ValueError, match=r"^output kind must be one of \['classification', "
                                         r"'detection'\], got 'segmentation'$"):
        output.Outputs(node, "json", "segmentation")


def test_labels_are_published_latched_once_per_bank_and_threshold():
    from types import SimpleNamespace

    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    node = _FakeNode()
    det = output.Outputs(node, "json", "detection")
    labels = node.created[2]
    assert (labels.qos.durability, labels.qos.depth, labels.qos.reliability) == (
        DurabilityPolicy.TRANSIENT_LOCAL, 1, ReliabilityPolicy.RELIABLE)
    bank = SimpleNamespace(class_names=["shirt", "bag"])
    assert det.publish_labels(bank, 0.3) and not det.publish_labels(bank, 0.3)  # once
    assert det.publish_labels(bank, 0.5)  # the threshold changed
    assert det.publish_labels(SimpleNamespace(class_names=["shirt", "bag"]), 0.5)  # another bank
    sent = [json.loads(m.data) for m in labels.sent]
    assert [m["threshold"] for m in sent] == [0.3, 0.5, 0.5]
    assert sent[0]["class_map"] == [{"class_id": 0, "class_name": "shirt"}, {"class_id": 1, "class_name": "bag"}]
    assert sent[0]["header"]["frame_id"] == "" and sent[0]["header"]["stamp"]["sec"] > 0  # stamped now
    cls = output.Outputs(node, "json", "classification")
    cls.publish_labels(bank, 0.3)
    assert json.loads(node.created[5].sent[0].data)["threshold"] == 0.0  # classifiers: no threshold


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
