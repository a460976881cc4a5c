"""The node serving the shipped detector bank over real DDS, and its ``backend`` parameter.

A BeltStream frame (the camera's belt scene) goes in as a sensor_msgs/Image; the node must
publish ``detections`` with the input header and boxes on the garments, in full-frame pixels
also when only a roi of the frame is processed. ``backend`` changes reload the bank (like a
``bank`` change): rejected with the reason when the bank cannot run on that backend, the old
bank serving on. Deadlines are generous and nothing asserts on speed.
"""
from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
torch = pytest.importorskip("torch")

from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from torchvision.ops import box_iou  # noqa: E402

from test_ros_node import WAIT_S, Rig  # noqa: E402
from vip_perception.data.conveyor import BeltStream  # noqa: E402
from vip_perception.ros import convert  # noqa: E402

pytestmark = pytest.mark.timeout(180)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DETECTOR = os.path.join(ROOT, "config", "banks", "conveyor_detector")
SHIPPED = os.path.join(ROOT, "config", "banks", "fashion_mnist")
BELT_FRAME = 30  # four garments in view (frames 0-12 show the empty start of the belt)



@pytest.fixture(scope="module")
def belt():
    return BeltStream("test")


@pytest.fixture
def detector_rig(ctx):
    if not os.path.isfile(os.path.join(DETECTOR, "manifest.json")):
        pytest.fail(f"{DETECTOR}: the shipped detector bank is missing")
    # by the shipped bank's name, as config/vip_perception_detector.yaml does
    r = Rig(ctx, "conveyor_detector", topics=("belt_cam",), name="vip_belt", output_format="json",
            deadline_ms=5000.0, score_threshold=0.5)
    yield r
    r.close()


def _frame_msg(rig, rgb: np.ndarray, frame_id: str):
    msg = convert.array_to_image(np.ascontiguousarray(rgb), "rgb8")
    msg.header.frame_id = frame_id
    msg.header.stamp = rig.probe.get_clock().now().to_msg()
    return msg


def _matches(result: dict, truth_boxes: np.ndarray, truth_ids: list[int]) -> list[tuple]:
    """(iou, same class) of each published detection with its best ground-truth box."""
    if not result["boxes"] or not len(truth_boxes):
        return []
    iou = box_iou(torch.tensor(result["boxes"]), torch.from_numpy(truth_boxes))  # (D, G)
    best, idx = iou.max(dim=1)
    return [(float(b), result["class_ids"][d] == truth_ids[int(g)])
            for d, (b, g) in enumerate(zip(best, idx))]


def test_detector_publishes_boxes_on_belt_frames_in_full_frame_pixels(detector_rig, belt):
    rig = detector_rig
    scene = belt.frame(BELT_FRAME)
    assert len(scene.boxes) >= 2
    debug = []
    rig.probe.create_subscription(Image, "/vip_belt/debug_image", debug.append, 5)

    msg = _frame_msg(rig, scene.image, "belt_whole")
    rig.send_and_wait(msg, topic="belt_cam")
    d = rig.detections[-1]
    assert rig.results == []  # a detector bank publishes detections, not classifications
    assert d["header"] == {"stamp": {"sec": msg.header.stamp.sec, "nanosec": msg.header.stamp.nanosec},
                           "frame_id": "belt_whole"}
    members = [m.name for m in rig.node.perception.engine.bank.members]
    assert d["box_format"] == "xyxy" and d["member"] in members
    assert len(d["boxes"]) == len(d["class_ids"]) == len(d["class_names"]) == len(d["scores"]) >= 1
    assert all(s >= 0.5 for s in d["scores"]) and d["scores"] == sorted(d["scores"], reverse=True)
    assert all(rig.node.perception.engine.bank.class_names[i] == n
               for i, n in zip(d["class_ids"], d["class_names"]))
    assert any(iou > 0.5 and same for iou, same in _matches(d, scene.boxes, scene.labels.tolist())), d

    # The same scene inside a larger frame, with the roi on it: boxes come back in the frame's
    # pixels (the node converts only the roi and passes its origin; the engine returns frame
    # pixels).
    ox, oy = 40, 30
    big = np.full((300, 400, 3), 22, np.uint8)
    big[oy:oy + 240, ox:ox + 320] = scene.image
    assert all(r.successful for r in rig.set(roi=[ox, oy, 320, 240], publish_debug_image=True))
    rig._wait(lambda: rig.node.perception._debug_pub.get_subscription_count() > 0, "debug subscriber")
    rig.send_and_wait(_frame_msg(rig, big, "belt_roi"), topic="belt_cam")
    shifted = rig.detections[-1]
    assert shifted["header"]["frame_id"] == "belt_roi"
    truth = scene.boxes + np.array([ox, oy, ox, oy], np.float32)
    assert any(iou > 0.5 and same for iou, same in _matches(shifted, truth, scene.labels.tolist())), shifted
    np.testing.assert_allclose(np.array(shifted["boxes"]), np.array(d["boxes"]) + [ox, oy, ox, oy], atol=1.0)

    rig._wait(lambda: any(m.header.frame_id == "belt_roi" for m in debug), "debug image")
    drawn = convert.image_to_array(next(m for m in debug if m.header.frame_id == "belt_roi"))
    assert (drawn.shape[0], drawn.shape[1]) == (300, 400)
    assert np.all(drawn == (255, 200, 0), axis=2).any()  # boxes drawn in BGR (0, 200, 255); input is grey

    # Nothing on the belt: an empty detection message is still published (consumers wait).
    empty = belt.frame(0)
    assert len(empty.boxes) == 0
    assert rig.set(roi=[0, 0, 320, 240])[0].successful
    rig.send_and_wait(_frame_msg(rig, empty.image, "belt_empty"), topic="belt_cam")
    last = rig.detections[-1]
    assert last["header"]["frame_id"] == "belt_empty"
    assert (last["boxes"], last["class_ids"], last["scores"]) == ([], [], [])
    cam = rig.node.perception.cameras["belt_cam"]
    rig._wait(lambda: cam.processed == 3, "the third frame counted (after its publish)")
    assert cam.errors == 0


def _set_atomically(rig, **values):
    """set_parameters_atomically: the node validates (and applies) the values as one change.
    (rclpy's plain set_parameters service runs the callbacks once per parameter.)"""
    fut = rig.params.set_parameters_atomically([Parameter(k, value=v) for k, v in values.items()])
    end = time.monotonic() + WAIT_S
    while not fut.done():
        assert time.monotonic() < end, "parameter service did not answer"
        time.sleep(0.02)
    return fut.result().result


def _ort_profiled_copy(bank: str, dest: str) -> str:
    """A copy of a classifier bank whose manifest claims onnxruntime profiles (its torch ones):
    lets a test serve on onnxruntime without profiling. The manifest is not checksummed."""
    shutil.copytree(bank, dest)
    path = os.path.join(dest, "manifest.json")
    with open(path) as fh:
        data = json.load(fh)
    for m in data["members"]:
        m.setdefault("backend_latency", {})["onnxruntime"] = m["latency"]
    with open(path, "w") as fh:
        json.dump(data, fh)
    return dest


def test_backend_rejected_for_the_detector_then_bank_and_backend_change_together(
        detector_rig, belt, quick_bank, tmp_path):
    rig = detector_rig
    scene = belt.frame(BELT_FRAME)
    res = rig.set(backend="onnxruntime")
    assert not res[0].successful
    assert "backend onnxruntime" in res[0].reason and "detection" in res[0].reason, res[0].reason
    assert rig.node.get_parameter("backend").value == "torch"
    rig.send_and_wait(_frame_msg(rig, scene.image, "still_torch"), topic="belt_cam")
    assert rig.detections[-1]["header"]["frame_id"] == "still_torch" and rig.detections[-1]["boxes"]
    bank = rig.node.perception.engine.bank
    assert (bank.task, bank.backend) == ("detection", "torch")

    # A classifier bank on onnxruntime, both parameters in one call: the check loads the bank
    # on the new backend, the worker switches between frames and the outputs follow the task.
    ort_bank = _ort_profiled_copy(quick_bank, str(tmp_path / "ort_bank"))
    res = _set_atomically(rig, bank=ort_bank, backend="onnxruntime")
    assert res.successful, res.reason
    rig.send_and_wait(_frame_msg(rig, scene.image, "now_ort"), topic="belt_cam")
    rig._wait(lambda: rig.results, "a classification from the onnxruntime bank")
    assert rig.results[-1]["header"]["frame_id"] == "now_ort"
    assert len(rig.results[-1]["class_ids"]) == 1
    bank = rig.node.perception.engine.bank
    assert (bank.task, bank.backend, bank.path.rstrip("/")) == ("classification", "onnxruntime", ort_bank)
    assert all(m.runners for m in bank.members)  # served by onnxruntime sessions
    assert rig.node.perception.bank_info()["backend"] == "onnxruntime"

    # The quick bank as it was built has no onnxruntime profile: switching to it alone is
    # refused (the reason names the backend); with backend torch in the same call it is not.
    res = rig.set(bank=quick_bank)
    assert not res[0].successful and "no onnxruntime latency profile" in res[0].reason, res[0].reason
    assert "current backend onnxruntime" in res[0].reason
    assert rig.node.perception.engine.bank.path.rstrip("/") == ort_bank
    res = _set_atomically(rig, bank=quick_bank, backend="torch")
    assert res.successful, res.reason
    params = rig.node.get_parameters(["bank", "backend"])
    assert [p.value for p in params] == [quick_bank, "torch"]
    rig.send_and_wait(_frame_msg(rig, scene.image, "back_to_torch"), topic="belt_cam")
    rig._wait(lambda: rig.results[-1]["header"]["frame_id"] == "back_to_torch", "torch result")
    assert rig.node.perception.engine.bank.backend == "torch"
    assert rig.node.perception.cameras["belt_cam"].errors == 0


def test_backend_onnxruntime_on_the_shipped_classifier_bank(ctx):
    with open(os.path.join(SHIPPED, "manifest.json")) as fh:
        assert all("onnxruntime" in m.get("backend_latency", {}) for m in json.load(fh)["members"])
    r = Rig(ctx, SHIPPED, topics=("fm_cam",), name="vip_fm", output_format="json")
    try:
        res = r.set(backend="onnxruntime")
        assert res[0].successful, res[0].reason
        r.send_and_wait(r.image(frame_id="fm"), topic="fm_cam")
        assert r.results[-1]["header"]["frame_id"] == "fm"
        assert r.node.perception.engine.bank.backend == "onnxruntime"
        assert r.node.get_parameter("backend").value == "onnxruntime"
    finally:
        r.close()


def test_detection_score_matches_by_class_and_iou():
    from vip_perception.ros.tools.detection_score import DetectionScore, match_frame
    truth = [[0, 0, 10, 10], [20, 20, 30, 30]]
    m = match_frame([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], [1, 1, 2], truth, [1, 3])
    assert (m.true_positives, m.false_positives, m.false_negatives) == (1, 2, 1)  # duplicate, wrong class
    assert m.best_ious == (1.0, 1.0)
    assert match_frame([], [], truth, [1, 3]) == match_frame([], [], truth, [1, 3])
    assert match_frame([], [], truth, [1, 3]).false_negatives == 2
    assert match_frame([[0, 0, 10, 10]], [1], [], []).false_positives == 1
    score = DetectionScore()
    score.add({"boxes": [[0, 0, 10, 10]], "class_ids": [1]}, {"boxes": truth, "class_ids": [1, 3]})
    score.add({"boxes": [], "class_ids": []}, {"boxes": [], "class_ids": []})
    assert (score.precision, score.recall, score.detections_per_frame) == (1.0, 0.5, 0.5)
    assert score.mean_best_iou == pytest.approx(0.5)
    assert score.short() == "P 100% R 50% (2)"


def test_demo_figures_carry_the_detection_score():
    from vip_perception.ros.tools.demo import Scoreboard

    board = Scoreboard()
    stamp = {"sec": 1, "nanosec": 0}
    board.on_truth({"stamp": stamp, "boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "class_ids": [1, 3]}, 0.0)
    board.on_result({"stamp": stamp, "box_format": "xyxy", "boxes": [[0, 0, 10, 10]], "class_ids": [1]}, 0.1)
    det = board.figures()["detection"]
    assert (det["frames"], det["precision"], det["recall"], det["detections_per_frame"]) == (1, 1.0, 0.5, 1.0)
    assert Scoreboard().figures()["detection"] is None  # classification runs: no detection figures


def test_demo_figures_say_per_load_phase_which_thread_counts_ran_and_what_others_used():
    from vip_perception.ros.tools.demo import Scoreboard

    board = Scoreboard()
    for threads, others in ((2, 0.1), (2, 0.2), (1, 0.3), (1, 0.6)):
        board.on_timing({"member": "vgg_xl", "threads": threads, "max_threads": 2, "others_cores": others,
                         "deadline_met": True, "latency_ms": 10.0})
    board.phase = "loaded"
    board.on_timing({"member": "vgg_xl.vip01", "threads": 1, "max_threads": 1, "others_cores": 1.2,
                     "deadline_met": False, "latency_ms": 20.0})
    board.on_timing({"skipped": True})  # a skipped frame ran nothing: counted as skipped only
    quiet, loaded = board.figures()["phases"]["quiet"], board.figures()["phases"]["loaded"]
    assert quiet["threads_share"] == {"1": 0.5, "2": 0.5} and quiet["max_threads_share"] == {"2": 1.0}
    assert quiet["others_cores"]["p50"] == pytest.approx(0.25)
    assert (loaded["threads_share"], loaded["max_threads_share"], loaded["misses"]) == ({"1": 1.0}, {"1": 1.0}, 1)
    assert board.threads_mix("quiet") == "threads: 1 50%, 2 50%; others' cores p50 0.25"
    assert Scoreboard().threads_mix("loaded") == "threads: n/a; others' cores p50 n/a"
