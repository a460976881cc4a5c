"""`vip_perception_camera` on live sources: a stream (MJPEG over HTTP from a server this test
runs on 127.0.0.1) publishes frames of the asked size, reports a loss and keeps running when the
server stops, and resumes when it comes back on the same port; a URL nothing answers and a
missing /dev/videoN give one clear line naming the path and what to check, and the node lives.

No V4L2 device exists where this suite runs: only the device path's error handling is tested.
"""
from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
cv2 = pytest.importorskip("cv2")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from vip_perception.ros import capture, convert  # noqa: E402
from vip_perception.ros.camera_source import CameraSource  # noqa: E402
from vip_perception.ros.qos import subscription_qos  # noqa: E402
from vip_perception.ros.transport import dds_env  # noqa: E402

pytestmark = pytest.mark.timeout(240)
WAIT_S = 90  # generous bound for every readiness wait (the machine may be busy)


class MjpegServer:
    """multipart/x-mixed-replace JPEG frames (uniform grey, level = frame count % 250) on
    127.0.0.1 at about 30 Hz; ``stop`` closes the listening socket and every open stream,
    ``start`` serves again on the same port; while ``stalled`` is set, open streams stay
    connected but send nothing."""

    def __init__(self, size=(320, 240)):
        self.size, self.port, self.server = size, 0, None
        self.stopping, self.stalled = threading.Event(), threading.Event()

    def start(self) -> MjpegServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                k = 0
                try:
                    while not outer.stopping.is_set():
                        if outer.stalled.is_set():
                            outer.stopping.wait(0.03)
                            continue
                        w, h = outer.size
                        jpg = cv2.imencode(".jpg", np.full((h, w, 3), k % 250, np.uint8))[1].tobytes()
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         b"%d\r\n\r\n%s\r\n" % (len(jpg), jpg))
                        k += 1
                        outer.stopping.wait(0.03)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.stopping.clear()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video.mjpg"


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ctx():
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


def spin_until(ex, cond, what: str, timeout: float = WAIT_S) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        ex.spin_once(timeout_sec=0.05)


def live_camera(ctx, name: str, **params):
    """(camera node, probe node, executor, received images, received diagnostics of it)."""
    overrides = [Parameter("topic", value=f"{name}_image"), Parameter("rate_hz", value=30.0),
                 Parameter("reliability", value="reliable"), Parameter("reconnect_s", value=0.1),
                 Parameter("frame_id", value="stream_optical")]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    cam = CameraSource(name=name, context=ctx, parameter_overrides=overrides)
    probe = rclpy.create_node(f"{name}_probe", context=ctx)
    images, diags = [], []
    probe.create_subscription(Image, f"{name}_image", images.append, subscription_qos("reliable", depth=50))
    probe.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diags.extend(
        s for s in m.status if s.name.startswith(f"{name}: ")), 50)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(cam)
    ex.add_node(probe)
    return cam, probe, ex, images, diags


def close(cam, probe, ex) -> None:
    ex.shutdown()
    cam.destroy_node()
    probe.destroy_node()


def values(status: DiagnosticStatus) -> dict:
    return {kv.key: kv.value for kv in status.values}


def test_stream_publishes_reports_a_loss_and_resumes(ctx):
    server = MjpegServer(size=(320, 240)).start()
    cam, probe, ex, images, diags = live_camera(ctx, "stream_cam", source="stream", path=server.url,
                                                width=160, height=120, encoding="rgb8")
    try:
        spin_until(ex, lambda: len(images) >= 3, "the first frames of the stream")
        assert [(m.width, m.height, m.encoding) for m in images[:3]] == [(160, 120, "rgb8")] * 3
        assert all(m.header.frame_id == "stream_optical" for m in images)
        stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in images]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)  # each frame once
        grey = convert.image_to_array(images[-1]).astype(int)
        assert grey.max() - grey.min() <= 4  # the server's uniform frame, scaled
        spin_until(ex, lambda: any(s.level == DiagnosticStatus.OK for s in diags), "an OK diagnostic")
        ok = values([s for s in diags if s.level == DiagnosticStatus.OK][-1])
        assert (ok["state"], ok["source_size"], ok["path"]) == ("streaming", "320x240", server.url)

        server.stop()
        spin_until(ex, lambda: cam.live.snapshot()["losses"] == 1
                   and cam.live.snapshot()["state"] == "reconnecting", "the loss to be reported")
        diags.clear()
        spin_until(ex, lambda: any(values(s)["state"] == "reconnecting" for s in diags),
                   "a reconnecting diagnostic")
        lost = [s for s in diags if values(s)["state"] == "reconnecting"][-1]
        assert lost.level == DiagnosticStatus.WARN and values(lost)["losses"] == "1"
        assert server.url in lost.message and "check the URL" in lost.message, lost.message
        assert not cam.done.done()  # the node keeps running

        before = len(images)
        server.start()  # the same port
        spin_until(ex, lambda: len(images) >= before + 3, "frames after the server came back")
        snap = cam.live.snapshot()
        assert (snap["state"], snap["connects"], snap["losses"]) == ("streaming", 2, 1)
        assert [(m.width, m.height) for m in images[before:]] == [(160, 120)] * (len(images) - before)
    finally:
        server.stop()
        close(cam, probe, ex)


def test_a_stalled_stream_counts_as_lost_after_the_timeout_and_recovers(ctx):
    server = MjpegServer(size=(64, 48)).start()
    cam, probe, ex, images, _ = live_camera(ctx, "stall_cam", source="stream", path=server.url,
                                            width=0, height=0, source_timeout_s=1.0)
    try:
        spin_until(ex, lambda: len(images) >= 2, "the first frames of the stream")
        assert (images[0].width, images[0].height) == (64, 48)  # width/height 0: the source's size
        server.stalled.set()  # connected, silent
        spin_until(ex, lambda: cam.live.snapshot()["losses"] == 1, "the stall to count as a loss")
        assert cam.live.snapshot()["last_error"].startswith(f"stream {server.url}: lost after ")
        before = len(images)
        server.stalled.clear()
        spin_until(ex, lambda: len(images) >= before + 2, "frames after the stall")
        assert cam.live.snapshot()["state"] == "streaming" and not cam.done.done()
    finally:
        server.stalled.clear()
        server.stop()
        close(cam, probe, ex)


def test_missing_device_is_a_clear_error_and_the_node_lives(ctx):
    path = "/dev/video97"
    assert not os.path.exists(path)
    cam, probe, ex, images, diags = live_camera(ctx, "device_cam", source="device", path="97")
    try:
        spin_until(ex, lambda: cam.live.snapshot()["failed_opens"] >= 3, "three failed opens")
        snap = cam.live.snapshot()
        assert snap["state"] == "unavailable"
        assert snap["last_error"] == ("device /dev/video97 not found: check that the camera is "
                                      "connected and the path (ls /dev/video*)")
        spin_until(ex, lambda: any(s.level == DiagnosticStatus.ERROR for s in diags), "an ERROR diagnostic")
        err = [s for s in diags if s.level == DiagnosticStatus.ERROR][-1]
        assert err.message == "unavailable: " + snap["last_error"] and err.hardware_id == path
        assert not cam.done.done() and images == []
    finally:
        close(cam, probe, ex)


def test_a_path_that_is_no_capture_device_is_a_clear_error():
    """/dev/null exists but is no V4L2 capture device: the other device failure line."""
    cap, reason = capture.open_capture("device", "/dev/null", 640, 480, 10.0, 1.0)
    assert cap is None
    assert reason == ("device /dev/null: V4L2 cannot open it: check that it is a capture device, "
                      "that no other program holds it and that this user may read it (group video)")


def test_paths_that_can_never_work_fail_at_start(ctx):
    with pytest.raises(ValueError, match=r"^stream path 'cam.mjpg' is not a URL: give rtsp://"):
        CameraSource(name="bad_stream", context=ctx, parameter_overrides=[
            Parameter("source", value="stream"), Parameter("path", value="cam.mjpg")])
    with pytest.raises(ValueError, match=r"^source device needs the path parameter"):
        CameraSource(name="bad_device", context=ctx, parameter_overrides=[
            Parameter("source", value="device")])
    assert capture.device_path("2") == "/dev/video2" and capture.device_path("/dev/v4l/x") == "/dev/v4l/x"


def _lines(stream, out: queue.Queue) -> None:
    for line in stream:
        out.put(line.rstrip("\n"))


def test_unreachable_stream_logs_one_clear_line_and_keeps_retrying():
    """The executable as users run it: the error line names the URL and what to check, the
    retries continue (a later line counts the tries), and SIGINT still stops it cleanly."""
    url = f"http://127.0.0.1:{free_port()}/video.mjpg"
    env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
    env.update(dds_env(env)[0])
    proc = subprocess.Popen([sys.executable, "-m", "vip_perception.ros.camera_source", "--ros-args",
                             "-r", "__node:=unreachable_cam", "-p", "source:=stream", "-p", f"path:={url}",
                             "-p", "reconnect_s:=0.05", "-p", "source_timeout_s:=3.0"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    seen = []
    try:
        end = time.monotonic() + WAIT_S
        while not any("tries); retrying" in line for line in seen):
            assert time.monotonic() < end and proc.poll() is None, "\n".join(seen[-30:])
            try:
                seen.append(lines.get(timeout=0.5))
            except queue.Empty:
                pass
        errors = [line for line in seen if "[ERROR]" in line]
        assert len(errors) == 1, errors
        assert errors[0].endswith(f"[unreachable_cam]: stream {url}: cannot open it within 3 s: check the "
                                  "URL and that the server is running and reachable from this host; "
                                  "retrying in 0.05 s"), errors[0]
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert rc == 0
