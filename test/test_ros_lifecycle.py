"""The lifecycle variant: configure loads the bank, activate processes, deactivate stops,
cleanup frees; a bad bank fails configure and leaves the node unconfigured."""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
torch = pytest.importorskip("torch")

from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from vip_perception.ros import convert  # noqa: E402
from vip_perception.ros.lifecycle_node import VipPerceptionLifecycleNode  # noqa: E402

pytestmark = pytest.mark.timeout(120)
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


def _wait(pred, what, timeout=30.0):
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_transitions(ctx, quick_bank):
    node = VipPerceptionLifecycleNode(name="vip_lc", context=ctx, parameter_overrides=[
        Parameter("bank", value=quick_bank), Parameter("image_topics", value=["lc_image"]),
        Parameter("deadline_ms", value=2000.0), Parameter("output_format", value="json")])
    probe = rclpy.create_node("lc_probe", context=ctx)
    pub = probe.create_publisher(Image, "lc_image", QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    results = []
    probe.create_subscription(String, "classifications", lambda m: results.append(json.loads(m.data)), 20)
    ex = MultiThreadedExecutor(num_threads=3, context=ctx)
    ex.add_node(node)
    ex.add_node(probe)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    cam = node.perception.cameras["lc_image"]

    def frame(fid):
        msg = convert.array_to_image(np.full((32, 40, 3), 90, np.uint8), "bgr8")
        msg.header.frame_id = fid
        msg.header.stamp = probe.get_clock().now().to_msg()
        return msg

    try:
        assert node.perception.engine is None and pub.get_subscription_count() == 0
        assert node.trigger_configure() == SUCCESS
        assert node.perception.engine is not None
        _wait(lambda: pub.get_subscription_count() > 0, "subscription after configure")
        pub.publish(frame("inactive"))
        _wait(lambda: cam.received >= 1, "frame received while inactive")
        time.sleep(0.3)
        assert results == [] and cam.processed == 0

        assert node.trigger_activate() == SUCCESS
        pub.publish(frame("active"))
        _wait(lambda: results, "result while active")
        assert results[-1]["header"]["frame_id"] == "active"

        assert node.trigger_deactivate() == SUCCESS
        n_received, n_results = cam.received, len(results)
        pub.publish(frame("deactivated"))
        _wait(lambda: cam.received > n_received, "frame received after deactivate")
        time.sleep(0.3)
        assert len(results) == n_results

        assert node.trigger_cleanup() == SUCCESS
        assert node.perception.engine is None
        _wait(lambda: pub.get_subscription_count() == 0, "subscription removed by cleanup")

        # configure again works (cleanup really freed everything it created)
        assert node.trigger_configure() == SUCCESS
        assert node.trigger_activate() == SUCCESS
        _wait(lambda: pub.get_subscription_count() > 0, "subscription after reconfigure")
        pub.publish(frame("again"))
        _wait(lambda: results and results[-1]["header"]["frame_id"] == "again", "result after reconfigure")
        assert node.trigger_deactivate() == SUCCESS
        assert node.trigger_cleanup() == SUCCESS
    finally:
        ex.shutdown(timeout_sec=2.0)
        spin.join(timeout=5.0)
        probe.destroy_node()
        node.destroy_node()


def test_configure_with_bad_bank_fails_cleanly(ctx, tmp_path):
    node = VipPerceptionLifecycleNode(name="vip_lc_bad", context=ctx, parameter_overrides=[
        Parameter("bank", value=str(tmp_path / "missing")), Parameter("image_topics", value=["lc_bad"])])
    try:
        assert node.trigger_configure() == FAILURE
        assert node.perception.engine is None
        assert node.perception._outputs is None and node.perception._subs == []
    finally:
        node.destroy_node()
