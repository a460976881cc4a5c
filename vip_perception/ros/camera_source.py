"""`vip_perception_camera`: publishes frames at ``rate_hz`` from an image folder, a video file,
a rosbag2 file, a V4L2 device, a stream OpenCV reads (RTSP, MJPEG over HTTP) or the built-in
synthetic conveyor scene (the default), so the node runs and is tested with no camera.

Frames are stamped when published (device and stream frames: when read), with the configured
frame_id. Device and stream sources are read on a thread of their own (``capture``): the node
publishes the newest frame not yet published at each tick, reopens a source that drops with
backoff, never stops for it, and reports the source's state in its log and on /diagnostics.

The synthetic source also publishes its ground truth (std_msgs/String JSON with the image's
stamp and frame_id) on ``ground_truth``. Scenes: ``station`` (one garment at a time at an
inspection station; truth: label, box x, y, w, h, at_station) and ``belt``
(``data.conveyor.BeltStream`` scenes moving along the belt; truth: boxes x0, y0, x1, y1,
class_ids, class_names). Parameters: ``SPECS``.
"""
from __future__ import annotations

import glob
import itertools
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.task import Future
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, String

from . import capture, convert, param_specs, qos
from .convert import MAX_DIM
from .param_specs import Spec

SOURCES = ("synthetic", "folder", "video", "rosbag") + capture.KINDS
SCENES = ("station", "belt")
BELT_SIZE = (320, 240)  # BeltStream renders at the detector's training size, then scales
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff")
ENCODINGS = ("bgr8", "rgb8", "mono8")
TRANSPORTS = ("raw", "compressed")
RELIABILITIES = ("best_effort", "reliable")
RUNTIME = "Takes effect at the next frame."
DIAGNOSTICS_PERIOD_S = 1.0  # device/stream sources: state and counters on /diagnostics

# Every parameter of the camera node. read_only: the frame source or the publisher is built
# from it at start, so a change needs a restart; the others apply while running.
SPECS: tuple[Spec, ...] = (
    Spec("source", "synthetic", "Frame source: synthetic (built-in conveyor scene), folder, "
         "video, rosbag, device (V4L2 camera) or stream (a URL OpenCV reads).", choices=SOURCES,
         read_only=True),
    Spec("path", "", "Image folder, video file, rosbag2 (directory or .mcap/.db3), V4L2 device "
         "(/dev/video0) or stream URL (rtsp://..., http://... MJPEG).", read_only=True),
    Spec("topic", "image_raw", "Output topic (compressed transport adds /compressed).",
         read_only=True),
    Spec("bag_topic", "", "Image topic to replay from the bag (empty: the first image topic).",
         read_only=True),
    Spec("rate_hz", 10.0, "Publish rate, Hz (> 0). Changing it changes the timer's period "
         "at once.", min=0.0, max=1000.0),
    Spec("width", 640, "Output width, pixels (0: keep the source size; a device is asked for "
         "it).", min=0, max=MAX_DIM, read_only=True),
    Spec("height", 480, "Output height, pixels (0: keep the source size; a device is asked for "
         "it).", min=0, max=MAX_DIM, read_only=True),
    Spec("frame_id", "camera", "header.frame_id of every image. " + RUNTIME),
    Spec("encoding", "bgr8", "Raw transport encoding.", choices=ENCODINGS, read_only=True),
    Spec("transport", "raw", "raw (sensor_msgs/Image) or compressed (jpeg CompressedImage).",
         choices=TRANSPORTS, read_only=True),
    Spec("reliability", "best_effort", "Publisher reliability.", choices=RELIABILITIES,
         read_only=True),
    Spec("loop", True, "Start again at the end of a folder, video or bag.", read_only=True),
    Spec("max_frames", 0, "Stop after this many frames (0: never). " + RUNTIME, min=0,
         max=2**31 - 1),
    Spec("seed", 0, "Synthetic scene: garment order and noise.", read_only=True),
    Spec("scene", "station", "Synthetic scene: station (one garment at a time at the "
         "inspection station, for the classifier) or belt (several garments moving along the "
         "belt, 320x240 scaled to width x height, for the detector).", choices=SCENES,
         read_only=True),
    Spec("belt_speed", 8, "Belt scene: pixels (at 320x240) the belt moves per frame.", min=1,
         max=320, read_only=True),
    Spec("dwell_frames", 6, "Synthetic scene: frames a garment rests at the station.", min=1,
         max=10000, read_only=True),
    Spec("travel_frames", 3, "Synthetic scene: frames the belt moves between garments.",
         min=1, max=10000, read_only=True),
    Spec("source_timeout_s", 5.0, "Device/stream: seconds to wait for the source to open, or "
         "for its next frame, before it counts as unavailable or lost.", min=0.1, max=600.0,
         read_only=True),
    Spec("reconnect_s", 1.0, "Device/stream: wait before reopening a source that cannot be "
         f"opened, doubling after each failed try up to {capture.RECONNECT_MAX_FACTOR}x.",
         min=0.01, max=3600.0, read_only=True),
    Spec("wait_for_subscribers", 0, "Hold the first frame until the image topic has this many "
         "subscribers (benchmarks count delivery from frame one).", min=0, max=1000,
         read_only=True),
)
SPEC_BY_NAME = {spec.name: spec for spec in SPECS}


def check_value(name: str, value) -> str | None:
    """Why ``value`` is not acceptable for camera parameter ``name`` (one line), or None."""
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        return None
    reason = param_specs.check_value(spec, value)
    if reason is None and name == "rate_hz" and value <= 0:
        reason = f"rate_hz must be > 0, got {value}"
    return reason


@dataclass
class SourceFrame:
    rgb: np.ndarray             # (H, W, 3) RGB uint8
    truth: dict | None = None   # synthetic ground truth
    stamp_ns: int | None = None  # acquisition time (ROS clock, ns); None: stamp when published


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2
    if width and height and (rgb.shape[1], rgb.shape[0]) != (width, height):
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    return rgb


def _as_rgb(img: np.ndarray, bgr: bool) -> np.ndarray:
    import cv2
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if bgr else cv2.COLOR_RGBA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if bgr else img


def synthetic_frames(width, height, seed, dwell, travel, loop=True) -> Iterator[SourceFrame]:
    from vip_perception.data.synthetic_scene import ConveyorScene, SceneConfig
    scene = ConveyorScene(SceneConfig(width=width or 640, height=height or 480, seed=seed,
                                      dwell_frames=dwell, travel_frames=travel))
    for f in scene:
        yield SourceFrame(f.image, f.ground_truth())


def belt_frames(width, height, seed, speed) -> Iterator[SourceFrame]:
    """BeltStream frames scaled to width x height; truth boxes scaled with them (x0, y0, x1, y1)."""
    from vip_perception.data.conveyor import BeltStream, ConveyorConfig
    bw, bh = BELT_SIZE
    stream = BeltStream("test", ConveyorConfig(width=bw, height=bh, seed=seed), speed=speed)
    w, h = width or bw, height or bh
    sx, sy = w / bw, h / bh
    for i in itertools.count():
        scene = stream.frame(i)
        boxes = [[round(float(v) * f, 1) for v, f in zip(b, (sx, sy, sx, sy))]
                 for b in scene.boxes]
        truth = {"frame": i, "scene": "belt", "boxes": boxes,
                 "class_ids": [int(c) for c in scene.labels],
                 "class_names": [stream.class_names[int(c)] for c in scene.labels]}
        yield SourceFrame(_resize(scene.image, w, h), truth)


def folder_frames(path, width, height, loop) -> Iterator[SourceFrame]:
    import cv2
    files = sorted(p for p in glob.glob(os.path.join(path, "*")) if p.lower().endswith(IMAGE_EXTS))
    if not files:
        raise ValueError(f"image folder {path!r}: no {'/'.join(IMAGE_EXTS)} files")
    while True:
        for p in files:
            img = cv2.imread(p, cv2.IMREAD_COLOR)
            if img is None:
                continue  # unreadable file: skip it, keep the stream going
            yield SourceFrame(_resize(_as_rgb(img, bgr=True), width, height))
        if not loop:
            return


def video_frames(path, width, height, loop) -> Iterator[SourceFrame]:
    import cv2
    if not os.path.isfile(path):
        raise ValueError(f"video file {path!r} not found")
    while True:
        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            raise ValueError(f"video file {path!r}: OpenCV cannot open it")
        n = 0
        while True:
            ok, img = cap.read()
            if not ok:
                break
            n += 1
            yield SourceFrame(_resize(_as_rgb(img, bgr=True), width, height))
        cap.release()
        if not loop or n == 0:
            return


def bag_frames(path, topic, width, height, loop) -> Iterator[SourceFrame]:
    """Image or CompressedImage messages of one topic from a rosbag2 (sqlite3 or MCAP)."""
    from pathlib import Path

    from rosbags.highlevel import AnyReader
    from rosbags.image import message_to_cvimage

    kinds = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
    while True:
        n = 0
        with AnyReader([Path(path)]) as reader:
            conns = [c for c in reader.connections if c.msgtype in kinds
                     and (not topic or c.topic == topic)]
            if not conns:
                raise ValueError(f"rosbag {path!r}: no image topic {topic!r} (has "
                                 f"{sorted({c.topic for c in reader.connections})})")
            conns = [c for c in conns if c.topic == conns[0].topic]
            for conn, _, raw in reader.messages(connections=conns):
                msg = reader.deserialize(raw, conn.msgtype)
                try:
                    rgb = message_to_cvimage(msg, "rgb8")
                except Exception:  # noqa: BLE001, S112 - an undecodable message is skipped
                    continue
                n += 1
                yield SourceFrame(_resize(np.ascontiguousarray(rgb), width, height))
        if not loop or n == 0:
            return


class CameraSource(Node):
    """Publishes one frame per timer tick (``rate_hz``) until the source ends or
    ``max_frames``; ``done`` completes then. Raises ValueError at construction for a bad
    parameter or a source that yields no frame. A device or stream source (``live``) never
    ends: a tick without a new frame publishes nothing, and a source that is missing or
    drops is retried (``live.snapshot()``: state and counters, also on /diagnostics)."""

    def __init__(self, name: str = "vip_perception_camera", **kwargs):
        super().__init__(name, **kwargs)
        p = param_specs.declare_all(self, SPECS)
        for key, value in p.items():
            reason = check_value(key, value)
            if reason:
                raise ValueError(reason)
        self.p = p
        self.live = self._live(p) if p["source"] in capture.KINDS else None
        if self.live is None:
            frames = self._frames(p)
            first = next(frames, None)  # fail now (bad path, empty folder), not inside a timer
            if first is None:
                raise ValueError(f"source {p['source']} {p['path']!r} yields no frames")
            self.frames = itertools.chain([first], frames)
        self.compressed = p["transport"] == "compressed"
        pub_qos = qos.subscription_qos(p["reliability"])
        topic = p["topic"] + "/compressed" if self.compressed else p["topic"]
        self.pub = self.create_publisher(CompressedImage if self.compressed else Image, topic,
                                         pub_qos)
        self.truth_pub = (self.create_publisher(String, "ground_truth", 10)
                          if p["source"] == "synthetic" else None)
        self.published = 0
        self.done = Future()
        self.timer = self.create_timer(1.0 / p["rate_hz"], self._tick)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._post_set_parameters)
        self.get_logger().info(f"publishing {p['source']} frames on {self.pub.topic_name} at "
                               f"{p['rate_hz']} Hz, {p['width']}x{p['height']} {p['encoding']}, "
                               f"{qos.describe(pub_qos)}")
        if self.live is not None:
            self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
            self.diag_timer = self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
            self.live.start()

    def _live(self, p) -> capture.LiveCapture:
        """The device or stream reader (started once the publisher exists); a path that can
        never work is a ValueError now, a source that is not there yet is retried."""
        clock = self.get_clock()
        return capture.LiveCapture(
            p["source"], p["path"], width=p["width"], height=p["height"], rate_hz=p["rate_hz"],
            timeout_s=p["source_timeout_s"], reconnect_s=p["reconnect_s"], log=self._log,
            now_ns=lambda: clock.now().nanoseconds)

    def _log(self, level: str, line: str) -> None:
        """One call site per severity: rclpy's logger refuses a site that changes severity."""
        if level == "error":
            self.get_logger().error(line)
        elif level == "warn":
            self.get_logger().warning(line)
        else:
            self.get_logger().info(line)

    def _publish_diagnostics(self) -> None:
        """One DiagnosticStatus for the live source: OK streaming, WARN (re)connecting, ERROR
        unavailable; its counters as values."""
        snap = self.live.snapshot()
        level = {"streaming": DiagnosticStatus.OK, "unavailable": DiagnosticStatus.ERROR}.get(
            snap["state"], DiagnosticStatus.WARN)
        message = snap["state"] if level == DiagnosticStatus.OK else \
            f"{snap['state']}: {snap['last_error'] or 'opening'}"
        values = dict(snap, source=self.p["source"], path=self.live.path, published=self.published)
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: {self.p['source']} "
                                  f"{self.live.path}", message=message, hardware_id=self.live.path,
                                  values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)

    def destroy_node(self) -> None:
        if self.live is not None:
            self.live.stop()
        super().destroy_node()

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Reject the whole set with the first reason; no side effects (rclpy itself rejects
        read-only parameters)."""
        for param in params:
            reason = check_value(param.name, param.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True, reason="")

    def _post_set_parameters(self, params) -> None:
        """Apply accepted runtime parameters: rate_hz re-times the timer now."""
        for param in params:
            if param.name not in SPEC_BY_NAME:
                continue
            self.p[param.name] = param.value
            if param.name == "rate_hz":
                self.timer.timer_period_ns = round(1e9 / param.value)
        self.get_logger().info("parameters set: " + ", ".join(
            f"{q.name}={q.value!r}" for q in params))

    def _frames(self, p) -> Iterator[SourceFrame]:
        w, h = p["width"], p["height"]
        if p["source"] == "synthetic" and p["scene"] == "belt":
            return belt_frames(w, h, p["seed"], p["belt_speed"])
        if p["source"] == "synthetic":
            return synthetic_frames(w, h, p["seed"], p["dwell_frames"], p["travel_frames"])
        if not p["path"]:
            raise ValueError(f"source {p['source']} needs the path parameter")
        if p["source"] == "folder":
            return folder_frames(p["path"], w, h, p["loop"])
        if p["source"] == "video":
            return video_frames(p["path"], w, h, p["loop"])
        return bag_frames(p["path"], p["bag_topic"], w, h, p["loop"])

    def _tick(self) -> None:
        if self.done.done():
            return
        if self.published == 0 and self.pub.get_subscription_count() < self.p["wait_for_subscribers"]:
            return
        if self.live is not None:
            frame = self._live_frame()
            if frame is None:
                return  # no new frame since the last tick
        else:
            frame = next(self.frames, None)
            if frame is None:
                self._finish("end of source")
                return
        header = Header()
        header.frame_id = self.p["frame_id"]
        if frame.stamp_ns is not None:  # device/stream: stamped when read from the source
            header.stamp = Time(nanoseconds=frame.stamp_ns).to_msg()
        if self.compressed:
            msg = convert.array_to_compressed(frame.rgb, "jpeg", header)
        else:
            msg = convert.array_to_image(_encode(frame.rgb, self.p["encoding"]),
                                         self.p["encoding"], header)
        if frame.stamp_ns is None:  # generated frames: stamped when published, after encoding
            msg.header.stamp = self.get_clock().now().to_msg()
        header = msg.header
        self.pub.publish(msg)
        if self.truth_pub is not None and frame.truth is not None:
            truth = dict(frame.truth, stamp={"sec": header.stamp.sec,
                                             "nanosec": header.stamp.nanosec},
                         frame_id=header.frame_id)
            self.truth_pub.publish(String(data=json.dumps(truth)))
        self.published += 1
        if self.p["max_frames"] and self.published >= self.p["max_frames"]:
            self._finish(f"max_frames={self.p['max_frames']} reached")

    def _live_frame(self) -> SourceFrame | None:
        """The newest device/stream frame not yet published, as RGB at width x height."""
        got = self.live.take()
        if got is None:
            return None
        img, stamp_ns = got
        return SourceFrame(_resize(_as_rgb(img, bgr=True), self.p["width"], self.p["height"]),
                           stamp_ns=stamp_ns)

    def _finish(self, why: str) -> None:
        self.timer.cancel()
        self.get_logger().info(f"{why}: published {self.published} frames")
        self.done.set_result(self.published)


def _encode(rgb: np.ndarray, encoding: str) -> np.ndarray:
    import cv2
    if encoding == "bgr8":
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if encoding == "mono8":
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return rgb


def main(argv: list[str] | None = None) -> int:
    from rclpy.executors import ExternalShutdownException

    rclpy.init(args=argv if argv is not None else sys.argv)
    try:
        node = CameraSource()
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - a message, not a traceback
        if isinstance(exc, KeyboardInterrupt) or not rclpy.ok():  # signal while starting
            print("vip_perception_camera: interrupted during start-up", file=sys.stderr, flush=True)
            return 0
        print(f"vip_perception_camera: cannot start: {exc}", file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 1
    try:
        rclpy.spin_until_future_complete(node, node.done)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # a timer callback raced the SIGINT/SIGTERM shutdown ("context is invalid"): expected
    finally:
        print(f"vip_perception_camera: published {node.published} frames", flush=True)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
