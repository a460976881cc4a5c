"""`vip_perception_camera`: every source publishes stamped frames with the frame_id asked for;
the synthetic scene publishes matching ground truth."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
cv2 = pytest.importorskip("cv2")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from vip_perception.ros import camera_source, convert  # noqa: E402
from vip_perception.ros.camera_source import CameraSource  # noqa: E402
from vip_perception.ros.qos import subscription_qos  # noqa: E402

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def ctx():
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


_count = iter(range(1000))


def run_camera(ctx, frames=3, **params):
    """Run a camera until it has published ``frames``; return (images, ground truths)."""
    i = next(_count)
    topic = f"cam_test_{i}"
    overrides = [Parameter("topic", value=topic), Parameter("max_frames", value=frames),
                 Parameter("rate_hz", value=50.0), Parameter("frame_id", value="optical_frame"),
                 Parameter("wait_for_subscribers", value=1)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    cam = CameraSource(name=f"camera_{i}", context=ctx, parameter_overrides=overrides)
    probe = rclpy.create_node(f"cam_probe_{i}", context=ctx)
    images, truths = [], []
    compressed = params.get("transport") == "compressed"
    probe.create_subscription(CompressedImage if compressed else Image,
                              topic + ("/compressed" if compressed else ""), images.append,
                              subscription_qos("reliable", depth=50))
    probe.create_subscription(String, "ground_truth",
                              lambda m: truths.append(json.loads(m.data)), 50)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(cam)
    ex.add_node(probe)
    end = time.monotonic() + 30
    while not (cam.done.done() and len(images) >= frames):
        assert time.monotonic() < end, f"camera published {cam.published}, received {len(images)}"
        ex.spin_once(timeout_sec=0.05)
    for _ in range(10):
        ex.spin_once(timeout_sec=0.02)
    ex.shutdown()
    cam.destroy_node()
    probe.destroy_node()
    return images, truths


def test_synthetic_source_with_ground_truth(ctx):
    images, truths = run_camera(ctx, frames=4, width=160, height=120, reliability="reliable")
    assert len(images) == 4
    for img in images:
        assert (img.width, img.height, img.encoding) == (160, 120, "bgr8")
        assert img.header.frame_id == "optical_frame" and img.header.stamp.sec > 0
    stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in images}
    assert len(truths) >= 4
    for t in truths:
        assert (t["stamp"]["sec"], t["stamp"]["nanosec"]) in stamps
        assert 0 <= t["label"] < 10 and len(t["box"]) == 4 and t["frame_id"] == "optical_frame"


def test_belt_scene_publishes_moving_garments_with_box_truth(ctx):
    """scene:=belt drives the camera with data.conveyor.BeltStream (the detector's scenes),
    scaled to the asked size together with its truth boxes."""
    from vip_perception.data.conveyor import BeltStream
    frames = 12
    images, truths = run_camera(ctx, frames=frames, width=640, height=480, scene="belt",
                                belt_speed=16, seed=0, reliability="reliable", encoding="rgb8")
    assert [(m.width, m.height) for m in images] == [(640, 480)] * frames
    stamps = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in images}
    stream = BeltStream("test", speed=16)
    assert len(truths) >= frames and any(t["boxes"] for t in truths)
    for t in truths:
        assert t["scene"] == "belt" and t["frame_id"] == "optical_frame"
        img = stamps[(t["stamp"]["sec"], t["stamp"]["nanosec"])]
        ref = stream.ground_truth(t["frame"])
        assert t["class_ids"] == ref["class_ids"] and t["class_names"] == ref["class_names"]
        assert np.allclose(np.array(t["boxes"]).reshape(-1, 4),
                           np.array(ref["boxes"]).reshape(-1, 4) * 2, atol=0.3)  # 320x240 -> 640x480
        expected = cv2.resize(stream.frame(t["frame"]).image, (640, 480), interpolation=cv2.INTER_AREA)
        assert np.array_equal(convert.image_to_array(img), expected)


def test_folder_source(ctx, tmp_path):
    for k in range(3):
        cv2.imwrite(str(tmp_path / f"{k}.png"), np.full((30, 40, 3), 40 * k, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    images, truths = run_camera(ctx, frames=3, source="folder", path=str(tmp_path), width=20,
                                height=10, encoding="rgb8", reliability="reliable")
    assert [(m.width, m.height, m.encoding) for m in images] == [(20, 10, "rgb8")] * 3
    assert [int(convert.image_to_array(m)[0, 0, 0]) for m in images] == [0, 40, 80]
    assert truths == []


def test_video_source(ctx, tmp_path):
    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    if not writer.isOpened():
        pytest.skip("OpenCV build cannot write MJPG video here")
    for k in range(4):
        writer.write(np.full((48, 64, 3), 60 * k, np.uint8))
    writer.release()
    images, _ = run_camera(ctx, frames=4, source="video", path=path, width=0, height=0,
                           encoding="mono8", reliability="reliable")
    assert [(m.width, m.height, m.encoding) for m in images] == [(64, 48, "mono8")] * 4


@pytest.mark.parametrize("storage", ["SQLITE3", "MCAP"])
def test_rosbag_source(ctx, tmp_path, storage):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.LATEST)
    RosImage = ts.types["sensor_msgs/msg/Image"]
    Header = ts.types["std_msgs/msg/Header"]
    Time = ts.types["builtin_interfaces/msg/Time"]
    bag = tmp_path / "bag"
    with Writer(bag, version=8, storage_plugin=getattr(StoragePlugin, storage)) as w:
        conn = w.add_connection("/front/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        for k in range(3):
            data = np.full((12, 16, 3), 50 * k + 10, np.uint8)
            msg = RosImage(Header(Time(1, k), "bagcam"), 12, 16, "rgb8", 0, 48, data.reshape(-1))
            w.write(conn, 1_000_000_000 + k, ts.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    images, _ = run_camera(ctx, frames=3, source="rosbag", path=str(bag), width=0, height=0,
                           encoding="rgb8", reliability="reliable", loop=False)
    assert [int(convert.image_to_array(m)[0, 0, 0]) for m in images] == [10, 60, 110]
    assert all(m.header.frame_id == "optical_frame" for m in images)


def test_compressed_transport(ctx):
    images, _ = run_camera(ctx, frames=2, width=64, height=48, transport="compressed",
                           reliability="reliable")
    assert all(m.format == "jpeg" for m in images)
    assert convert.message_to_array(images[0]).shape == (48, 64, 3)


def test_bad_source_is_a_clear_error(ctx, tmp_path):
    with pytest.raises(ValueError, match="no .*files"):
        CameraSource(name="bad_cam", context=ctx, parameter_overrides=[
            Parameter("source", value="folder"), Parameter("path", value=str(tmp_path))])
    with pytest.raises(ValueError, match="scene must be one of"):
        CameraSource(name="bad_cam3", context=ctx, parameter_overrides=[
            Parameter("scene", value="runway")])
    with pytest.raises(ValueError, match="source must be one of"):
        CameraSource(name="bad_cam2", context=ctx, parameter_overrides=[
            Parameter("source", value="webcam")])
    with pytest.raises(ValueError, match=r"^rate_hz must be > 0, got 0.0$"):
        CameraSource(name="bad_cam4", context=ctx, parameter_overrides=[
            Parameter("rate_hz", value=0.0)])


def _call(ex, client, request):
    """Call a service of another node in this process and spin until it answers."""
    assert client.wait_for_service(timeout_sec=30.0), f"{client.srv_name} not available"
    future = client.call_async(request)
    end = time.monotonic() + 60
    while not future.done():
        assert time.monotonic() < end, f"no answer from {client.srv_name}"
        ex.spin_once(timeout_sec=0.05)
    return future.result()


def test_camera_parameters_are_described_validated_and_applied(ctx):
    """Over the node's own parameter services: every parameter has its SPECS description,
    range and read-only flag; rate_hz is applied to the publishing timer; a bad rate is
    rejected with the reason and changes nothing; a start-only parameter is refused."""
    from rcl_interfaces.srv import DescribeParameters, SetParameters

    cam = CameraSource(name="cam_params", context=ctx, parameter_overrides=[
        Parameter("topic", value="cam_params_image"), Parameter("rate_hz", value=5.0)])
    probe = rclpy.create_node("cam_params_probe", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(cam)
    ex.add_node(probe)
    try:
        describe = probe.create_client(DescribeParameters, "/cam_params/describe_parameters")
        setp = probe.create_client(SetParameters, "/cam_params/set_parameters")
        names = [spec.name for spec in camera_source.SPECS]
        described = _call(ex, describe, DescribeParameters.Request(names=names)).descriptors
        assert [d.name for d in described] == names
        for spec, d in zip(camera_source.SPECS, described):
            assert (d.description, d.read_only) == (spec.description, spec.read_only), spec.name
        rate = described[names.index("rate_hz")]
        assert (rate.floating_point_range[0].from_value, rate.floating_point_range[0].to_value) \
            == (0.0, 1000.0)
        assert described[names.index("encoding")].additional_constraints == \
            "one of: bgr8, rgb8, mono8"
        assert cam.timer.timer_period_ns == 200_000_000

        def set_one(name, value):
            req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
            return _call(ex, setp, req).results[0]

        ok = set_one("rate_hz", 40.0)
        assert (ok.successful, ok.reason) == (True, "")
        assert cam.timer.timer_period_ns == 25_000_000  # the rcl timer's own period
        assert cam.get_parameter("rate_hz").value == 40.0
        bad = set_one("rate_hz", 0.0)
        assert (bad.successful, bad.reason) == (False, "rate_hz must be > 0, got 0.0")
        assert cam.timer.timer_period_ns == 25_000_000 and cam.get_parameter("rate_hz").value == 40.0
        frozen = set_one("source", "video")
        assert (frozen.successful, frozen.reason) == (False,
                                                      "Trying to set a read-only parameter: source.")
        assert set_one("frame_id", "left").successful and cam.p["frame_id"] == "left"
    finally:
        ex.shutdown()
        cam.destroy_node()
        probe.destroy_node()
