"""The node's output in the real vision_msgs 4.x messages, read as a consumer reads it.

Classification (the ``top_k`` best, best first; string class ids; the input header) and
Detection2DArray (Pose2D centre ``bbox.center.position``, sizes, string class ids, each
detection's header) are received by a subscriber in another process (``READER``: it subscribes,
says READY and prints every message as JSON). ``label_info`` (vision_msgs/LabelInfo, latched:
transient local, depth 1) reaches a subscriber that joins after the node published it, and is
published again when the ``bank`` parameter switches the bank; its JSON twin is checked too.

vision_msgs is a required test group wherever the ROS 2 tooling is installed (test/
required_groups.py), so these tests run there; every wait is bounded, nothing asserts on speed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
torch = pytest.importorskip("torch")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs missing (an optional test group where "
                    "the ROS 2 tooling is not installed: scripts/test builds it)")

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import Header, String  # noqa: E402

from test_ros_node import WAIT_S, Rig  # noqa: E402
from vip_perception.data.conveyor import BeltStream  # noqa: E402
from vip_perception.results import Detection, FrameResult, TimingRecord  # noqa: E402
from vip_perception.ros import convert, output  # noqa: E402

pytestmark = pytest.mark.timeout(240)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DETECTOR = os.path.join(ROOT, "config", "banks", "conveyor_detector")
BELT_FRAME = 30  # four garments in view

READER = r'''
"""Subscribe to argv[1] (type argv[2]) until argv[3] messages or argv[5] s; argv[4] latched |
volatile. Prints READY, then one JSON line per message."""
import json
import sys
import time

import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosidl_runtime_py.convert import message_to_ordereddict
from rosidl_runtime_py.utilities import get_message

topic, type_name, count, mode, limit = sys.argv[1:6]
rclpy.init()
node = rclpy.create_node("vision_msgs_reader")
durability = DurabilityPolicy.TRANSIENT_LOCAL if mode == "latched" else DurabilityPolicy.VOLATILE
qos = QoSProfile(depth=1 if mode == "latched" else 10, reliability=ReliabilityPolicy.RELIABLE,
                 durability=durability)
got = []


def on_msg(msg):
    got.append(1)
    print(json.dumps({"type": type(msg).__name__, **message_to_ordereddict(msg)}), flush=True)


node.create_subscription(get_message(type_name), topic, on_msg, qos)
print("READY", flush=True)
end = time.monotonic() + float(limit)
while len(got) < int(count) and time.monotonic() < end and rclpy.ok():
    rclpy.spin_once(node, timeout_sec=0.1)
node.destroy_node()
rclpy.shutdown()
'''


class Reader:
    """A subscriber in another process; ``messages`` fills as its JSON lines arrive."""

    def __init__(self, tmp_path, topic: str, type_name: str, count: int, latched=False):
        script = tmp_path / "vision_msgs_reader.py"
        script.write_text(READER)
        self.messages: list[dict] = []
        self.ready = False
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, str(script), topic, type_name, str(count),
             "latched" if latched else "volatile", str(4 * WAIT_S)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self.wait(lambda: self.ready, "the reader process to subscribe")

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                if line.strip() == "READY":
                    self.ready = True
                elif line.startswith("{"):
                    self.messages.append(json.loads(line))
                self.cond.notify_all()

    def wait(self, pred, what, timeout=2 * WAIT_S):
        end = time.monotonic() + timeout
        with self.cond:
            while not pred():
                if time.monotonic() > end or (self.proc.poll() is not None and not pred()
                                              and not self._thread.is_alive()):
                    raise AssertionError(f"timed out waiting for {what}; reader rc "
                                         f"{self.proc.poll()}, stderr: {self._stderr()}")
                self.cond.wait(0.05)

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read()[-2000:]

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()


@pytest.fixture
def readers(tmp_path):
    made = []

    def start(*args, **kwargs):
        made.append(Reader(tmp_path, *args, **kwargs))
        return made[-1]

    yield start
    for r in made:
        r.close()


def _hdr(frame_id="cam0", sec=5, nanosec=7):
    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = sec, nanosec
    return h


def _stamp(header) -> dict:
    return {"sec": header.stamp.sec, "nanosec": header.stamp.nanosec}


def _send(rig, msg, topic):
    """Publish ``msg`` and wait for its timing record (published after the result)."""
    n = len(rig.timing)
    rig.pubs[topic].publish(msg)
    rig._wait(lambda: any(t["header"]["frame_id"] == msg.header.frame_id for t in rig.timing[n:]),
              f"frame {msg.header.frame_id} to be processed")


def _image(rig, frame_id, rgb=None):
    rgb = np.full((48, 64, 3), 120, np.uint8) if rgb is None else np.ascontiguousarray(rgb)
    msg = convert.array_to_image(rgb, "rgb8")
    msg.header.frame_id = frame_id
    msg.header.stamp = rig.probe.get_clock().now().to_msg()
    return msg


# ---- builders, real message classes -------------------------------------------------------
def test_classification_msg_holds_the_top_k_best_first_with_string_ids_and_the_header():
    from vision_msgs.msg import Classification

    top = ((4, "Coat", 0.6), (2, "Pullover", 0.3), (6, "Shirt", 0.05))
    t = TimingRecord("m1", 1, 2.0, 1.5, 10.0, True, 1.2, 3.0)
    msg = output.classification_msg(_hdr(), FrameResult(4, "Coat", 0.6, False, t, top=top))
    assert isinstance(msg, Classification)
    assert (msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec) == ("cam0", 5, 7)
    assert [(h.class_id, round(h.score, 6)) for h in msg.results] == [("4", 0.6), ("2", 0.3), ("6", 0.05)]
    no_rank = output.classification_msg(_hdr(), FrameResult(3, "Dress", 0.75, False, t))
    assert [(h.class_id, h.score) for h in no_rank.results] == [("3", 0.75)]
    assert output.classification_msg(_hdr(), FrameResult(None, None, None, True, t)).results == []


def test_detection2darray_msg_has_pose2d_centres_sizes_string_ids_and_each_header():
    from vision_msgs.msg import Detection2DArray, Pose2D

    hdr = _hdr()
    arr = output.detections_msg(hdr, [Detection((10.0, 20.0, 40.0, 60.0), 1, "Trouser", 0.9),
                                      Detection((0.5, 1.5, 2.5, 3.5), 9, "Ankle boot", 0.4)])
    assert isinstance(arr, Detection2DArray) and arr.header.frame_id == "cam0"
    first, second = arr.detections
    assert isinstance(first.bbox.center, Pose2D)
    c = first.bbox.center.position
    assert (c.x, c.y, first.bbox.size_x, first.bbox.size_y) == (25.0, 40.0, 30.0, 40.0)
    assert (second.bbox.center.position.x, second.bbox.size_y) == (1.5, 2.0)
    for det, cid, score in ((first, "1", 0.9), (second, "9", 0.4)):
        assert (det.header.frame_id, det.header.stamp.sec, det.header.stamp.nanosec) == ("cam0", 5, 7)
        assert det.results[0].hypothesis.class_id == cid
        assert det.results[0].hypothesis.score == pytest.approx(score)
    assert output.detections_msg(hdr, []).detections == []


def test_label_info_msg_and_its_json_twin_number_classes_by_index():
    from vision_msgs.msg import LabelInfo

    msg = output.label_info_msg(_hdr(frame_id=""), ["T-shirt/top", "Trouser"], 0.25)
    assert isinstance(msg, LabelInfo) and msg.threshold == pytest.approx(0.25)
    assert [(c.class_id, c.class_name) for c in msg.class_map] == [(0, "T-shirt/top"), (1, "Trouser")]
    d = output.label_info_dict(_hdr(frame_id=""), ["T-shirt/top", "Trouser"], 0.0)
    assert d == {"header": {"stamp": {"sec": 5, "nanosec": 7}, "frame_id": ""}, "threshold": 0.0,
                 "class_map": [{"class_id": 0, "class_name": "T-shirt/top"},
                               {"class_id": 1, "class_name": "Trouser"}]}


# ---- the node, read from another process -------------------------------------------------
def test_classification_top_k_reaches_a_subscriber_in_another_process(ctx, quick_bank, readers):
    rig = Rig(ctx, quick_bank, topics=("vm_cam",), name="vip_vm_cls", output_format="vision_msgs",
              top_k=3)
    try:
        reader = readers("classifications", "vision_msgs/msg/Classification", 2)
        pub = rig.node.perception._outputs.results
        rig._wait(lambda: pub.get_subscription_count() > 0, "the reader to match")
        first = _image(rig, "cls_k3")
        _send(rig, first, "vm_cam")
        reader.wait(lambda: len(reader.messages) >= 1, "the first Classification")
        assert all(r.successful for r in rig.set(top_k=10))  # runtime change, next frame
        _send(rig, _image(rig, "cls_k10"), "vm_cam")
        reader.wait(lambda: len(reader.messages) >= 2, "the second Classification")
    finally:
        rig.close()
    m3, m10 = reader.messages
    assert m3["type"] == "Classification"
    assert m3["header"] == {"stamp": _stamp(first.header), "frame_id": "cls_k3"}
    assert m10["header"]["frame_id"] == "cls_k10"
    for m, k in ((m3, 3), (m10, 10)):
        scores = [h["score"] for h in m["results"]]
        assert len(m["results"]) == k and scores == sorted(scores, reverse=True)
        assert all(h["class_id"] in {str(i) for i in range(10)} for h in m["results"])
        assert len({h["class_id"] for h in m["results"]}) == k
    assert sum(h["score"] for h in m10["results"]) == pytest.approx(1.0, abs=1e-4)  # all classes
    assert [h["class_id"] for h in m10["results"][:3]] == [h["class_id"] for h in m3["results"]]


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def test_detection2darray_reaches_a_subscriber_in_another_process(ctx, readers):
    scene = BeltStream("test").frame(BELT_FRAME)
    rig = Rig(ctx, DETECTOR, topics=("vm_belt",), name="vip_vm_det", output_format="vision_msgs",
              deadline_ms=5000.0, score_threshold=0.5)
    try:
        reader = readers("detections", "vision_msgs/msg/Detection2DArray", 1)
        pub = rig.node.perception._outputs.results
        rig._wait(lambda: pub.get_subscription_count() > 0, "the reader to match")
        msg = _image(rig, "belt_vm", scene.image)
        _send(rig, msg, "vm_belt")
        reader.wait(lambda: reader.messages, "a Detection2DArray")
    finally:
        rig.close()
    arr = reader.messages[0]
    want_header = {"stamp": _stamp(msg.header), "frame_id": "belt_vm"}
    assert arr["type"] == "Detection2DArray" and arr["header"] == want_header
    assert arr["detections"], arr
    h, w = scene.image.shape[:2]
    matched = False
    scores = []
    for det in arr["detections"]:
        assert det["header"] == want_header  # each detection's header too
        hyp = det["results"][0]["hypothesis"]
        assert hyp["class_id"].isdigit() and hyp["score"] >= 0.5
        scores.append(hyp["score"])
        c, sx, sy = det["bbox"]["center"]["position"], det["bbox"]["size_x"], det["bbox"]["size_y"]
        box = (c["x"] - sx / 2, c["y"] - sy / 2, c["x"] + sx / 2, c["y"] + sy / 2)
        assert sx > 0 and sy > 0 and -1 <= box[0] < box[2] <= w + 1 and -1 <= box[1] < box[3] <= h + 1
        matched |= any(_iou(box, t) > 0.5 and int(hyp["class_id"]) == int(lab)
                       for t, lab in zip(scene.boxes.tolist(), scene.labels.tolist()))
    assert matched, arr
    assert scores == sorted(scores, reverse=True)


def test_label_info_is_latched_for_late_subscribers_and_republished_on_a_bank_change(
        ctx, quick_bank, readers):
    rig = Rig(ctx, quick_bank, topics=("vm_lbl",), name="vip_vm_lbl", output_format="vision_msgs")
    try:
        names = list(rig.node.perception.engine.bank.class_names)
        # published at configure, before this subscriber existed: latched, so it arrives
        late = readers("label_info", "vision_msgs/msg/LabelInfo", 2, latched=True)
        late.wait(lambda: late.messages, "the latched LabelInfo")
        first = late.messages[0]
        assert first["type"] == "LabelInfo" and first["threshold"] == 0.0  # a classifier
        assert first["class_map"] == [{"class_id": i, "class_name": n} for i, n in enumerate(names)]
        assert first["header"]["frame_id"] == ""

        assert all(r.successful for r in rig.set(bank=DETECTOR, score_threshold=0.4))
        _send(rig, _image(rig, "after_swap"), "vm_lbl")  # the bank switches between frames
        late.wait(lambda: len(late.messages) >= 2, "LabelInfo of the new bank")
        second = late.messages[1]
        det_names = list(rig.node.perception.engine.bank.class_names)
        assert second["threshold"] == pytest.approx(0.4)  # a detector: its score threshold
        assert [c["class_name"] for c in second["class_map"]] == det_names
        # a subscriber joining now is told the current names first (depth 1)
        later = readers("label_info", "vision_msgs/msg/LabelInfo", 1, latched=True)
        later.wait(lambda: later.messages, "the latched LabelInfo after the change")
        assert later.messages[0]["threshold"] == pytest.approx(0.4)
        assert [c["class_name"] for c in later.messages[0]["class_map"]] == det_names
    finally:
        rig.close()


def test_label_info_json_twin_is_latched_too(ctx, quick_bank):
    rig = Rig(ctx, quick_bank, topics=("json_lbl",), name="vip_json_lbl", output_format="json")
    try:
        got = []
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        rig.probe.create_subscription(String, "label_info", rig._keep(got), latched)
        rig._wait(lambda: got, "the latched label_info JSON")
        names = list(rig.node.perception.engine.bank.class_names)
        assert got[0]["class_map"] == [{"class_id": i, "class_name": n} for i, n in enumerate(names)]
        assert got[0]["threshold"] == 0.0 and set(got[0]) == {"header", "class_map", "threshold"}
        assert rig.node.perception._outputs.labels.qos_profile.durability == \
            DurabilityPolicy.TRANSIENT_LOCAL
    finally:
        rig.close()
