"""What the perception node does, shared by the plain node and the lifecycle node.

One frame's path: the callback of a raw subscription parses the serialized Image without a
copy (``image_cdr``), validates it and keeps it as its camera's newest frame (``FrameSlots``);
the worker takes frames round robin, drops those older than the deadline, converts only the roi
(``convert.message_to_roi``), runs ``engine.process`` and publishes through ``output.Outputs``
with the stages timed (``frame_timing``). Parameter changes go through ``ParameterGate``
(validated without side effects, then applied); the worker picks them up between two frames.
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from sensor_msgs.msg import CompressedImage, Image

from ..runtime.serving_thread import ServingThread
from . import bank_checks, convert, debug_image, diagnostics, frame_timing, image_cdr, output, parameters, qos, startup
from .frame_slots import Frame, FrameSlots
from .parameter_gate import ParameterGate
from .stats import CameraStats

WATCH_PERIOD_S = 2.0      # how often silent topics are checked
SILENT_WARN_S = 5.0       # publishers present but nothing for this long -> warning


class Perception:
    """Subscriptions, worker, engine, outputs and diagnostics of one node. ``engine_factory(
    bank, settings, clock)`` builds the engine (default: ``bank_checks.default_engine_factory``);
    ``clock``: seconds in the stamps' timebase; ``record_stages``: per-frame times in stage_log."""

    def __init__(self, node, engine_factory: Callable | None = None,
                 clock: Callable[[], float] = time.time, record_stages: bool = False):
        self.node, self.log, self.clock = node, node.get_logger(), clock
        self.engine_factory = engine_factory or bank_checks.default_engine_factory
        self.serving = ServingThread()  # runs every torch call of the node (runtime/serving_thread.py)
        self.gate = ParameterGate(parameters.declare(node), self.log, run=self.serving.call)
        self.hardware_id = self.settings.hardware_id or socket.gethostname()
        self.cameras = {t: CameraStats(t) for t in self.settings.image_topics}
        self.slots = FrameSlots(list(self.cameras))
        self.frame_sizes: dict[str, tuple[int, int]] = {}  # camera -> (h, w) last seen
        self.engine, self.bank_error, self.active = None, None, False
        self.stage_log: list[dict] | None = [] if record_stages else None
        self._worker: threading.Thread | None = None  # the serving thread while active
        self._engine_fields = self._outputs = self._debug_pub = self._diag_pub = None
        self._subs, self._timers, self._prev, self._silent_warned = [], [], {}, {}
        self._started: float | None = None  # clock() at configure
        self.startup = startup.StartupPhases()  # seconds per start-up phase, logged once ready
        self.watch_period_s, self.silent_warn_s = WATCH_PERIOD_S, SILENT_WARN_S
        self.silent_warnings: list[str] = []  # also logged; kept for tests and the summary
        self._sub_group, self._timer_group = ReentrantCallbackGroup(), MutuallyExclusiveCallbackGroup()
        node.add_on_set_parameters_callback(self._on_set_parameters)
        node.add_post_set_parameters_callback(self.gate.post_set)

    @property
    def settings(self) -> parameters.Settings:
        """The current parameter snapshot (the worker reads one per frame)."""
        return self.gate.settings

    def _on_set_parameters(self, params):
        return self.gate.on_set(params, getattr(self.engine, "bank", None), dict(self.frame_sizes))

    # ---- lifecycle --------------------------------------------------------------------
    def configure(self) -> None:
        """Load the bank (BankError names the path and the reason), build the engine, create
        publishers, subscriptions and timers."""
        s = self.settings
        path = bank_checks.bank_path(s.bank)
        bank, self.engine = self.serving.call(startup.build_engine, path, s, self.engine_factory, self.clock,
                                              self.startup)
        self.gate.clear_pending_bank()  # the parameter's bank is the one just loaded
        self._engine_fields = s.engine_fields()
        self._outputs = output.Outputs(self.node, s.output_format, bank_checks.output_kind(bank))
        self._outputs.publish_labels(bank, s.score_threshold)  # latched on label_info
        self._debug_pub = self.node.create_publisher(Image, "~/debug_image", 1)
        self._diag_pub = self.node.create_publisher(diagnostics.DiagnosticArray, "/diagnostics", 10)
        self._subscribe(s)
        now = self.clock()
        self._prev = {c: st.snapshot(now) for c, st in self.cameras.items()}
        self._started = now
        self._timers = [
            self.node.create_timer(s.diagnostics_period_s, self._publish_diagnostics,
                                   callback_group=self._timer_group),
            self.node.create_timer(self.watch_period_s, self._watch_topics,
                                   callback_group=self._timer_group)]
        self.log.info(f"bank {path} ({bank.name}, task {bank.task}, {len(bank.members)} "
                      f"members, backend {s.backend}), deadline {s.deadline_ms} ms, output "
                      f"{self._outputs.format}, image conversion via {convert.BACKEND}; {self.startup.describe()}")

    def _subscribe(self, s: parameters.Settings) -> None:
        compressed = s.image_transport == "compressed"
        sub_qos = qos.subscription_qos(s.reliability)
        msg_type = CompressedImage if compressed else Image
        for camera in self.cameras:  # raw Image: serialized bytes, parsed without a copy
            sub = self.node.create_subscription(
                msg_type, camera + "/compressed" if compressed else camera,
                lambda m, c=camera: self._on_image(c, m), sub_qos, callback_group=self._sub_group,
                raw=not compressed)
            self._subs.append(sub)
            self.log.info(f"camera {camera}: subscribed to {sub.topic_name} "
                          f"({msg_type.__name__}, {qos.describe(sub_qos)})")

    def activate(self) -> None:
        self.slots.clear()
        self.active, self._worker = True, self.serving.thread
        self.serving.set_loop(self._worker_step)

    def deactivate(self) -> None:
        self.active = False
        if self._worker is not None:
            if not self.serving.set_loop(None, timeout_s=10.0):  # a frame stuck in the engine
                self.log.warning("deactivating with a frame still in progress after 10 s")
            self._worker = None
        self.slots.clear()

    def cleanup(self) -> None:
        self.deactivate()
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        for timer in self._timers:
            self.node.destroy_timer(timer)
        if self._outputs is not None:
            self._outputs.destroy()
        for pub in (self._debug_pub, self._diag_pub):
            if pub is not None:
                self.node.destroy_publisher(pub)
        self._subs, self._timers = [], []
        self._outputs = self._debug_pub = self._diag_pub = self.engine = None
        self.gate.clear_pending_bank()

    # ---- subscription callback: validate the header, keep the newest frame ------------
    def _on_image(self, camera: str, msg) -> None:
        t0, received_at, cam = time.perf_counter(), self.clock(), self.cameras[camera]
        cam.on_received(received_at)
        if not self.active:
            return
        try:
            msg = image_cdr.parse_image(msg) if isinstance(msg, bytes) else msg  # raw: serialized
            convert.validate_message(msg)
        except convert.ConversionError as exc:
            self._malformed(cam, exc)
            return
        if self.slots.put(camera, Frame(msg, received_at, (time.perf_counter() - t0) * 1e3)):
            cam.count("replaced")

    def _malformed(self, cam: CameraStats, exc: convert.ConversionError) -> None:
        cam.on_malformed(exc.reason)
        self.log.warning(f"camera {cam.topic}: skipped malformed image ({exc})",
                         throttle_duration_sec=5.0)

    # ---- worker -----------------------------------------------------------------------
    def _worker_step(self) -> None:
        """One frame loop turn (serving thread): the newest frame, if one comes within 0.1 s."""
        if (item := self.slots.take(timeout=0.1)) is None:
            return
        camera, frame = item
        try:
            self._handle(camera, frame)
        except Exception as exc:  # noqa: BLE001 - the worker must survive anything
            if not self.node.context.ok():  # shutting down (SIGINT/SIGTERM): publishing fails
                return self.serving.set_loop(None)
            self.cameras[camera].count("errors")
            self.log.error(f"camera {camera}: frame failed: {type(exc).__name__}: {exc}",
                           throttle_duration_sec=5.0)

    def _apply_pending(self, s: parameters.Settings) -> None:
        """Between frames: swap bank, update engine config, rebuild outputs, republish labels."""
        bank = self.gate.take_pending_bank()
        if bank is not None:
            getattr(self.engine, "warm_up", len)(bank)  # its first frame pays no first-call cost
            self.bank_error = bank_checks.swap_bank(self.engine, bank, self.log, s.calibrate_on_start)
        if s.engine_fields() != self._engine_fields:
            self._engine_fields = s.engine_fields()  # tried once, not on every frame
            bank_checks.update_config(self.engine, s, self.log)
        fmt = output.resolve_format(s.output_format)
        kind = bank_checks.output_kind(self.engine.bank)
        if (fmt, kind) != (self._outputs.format, self._outputs.kind):
            self._outputs.destroy()
            self._outputs = output.Outputs(self.node, s.output_format, kind)
        self._outputs.publish_labels(self.engine.bank, s.score_threshold)  # when either changed

    def _handle(self, camera: str, frame: Frame) -> None:
        """One frame: stale check -> the roi's pixels -> engine -> publish -> count."""
        s = self.settings
        cam, msg, now = self.cameras[camera], frame.msg, self.clock()
        capture = convert.stamp_seconds(msg.header.stamp) or frame.received_at  # unstamped drivers
        self._apply_pending(s)  # after `now`: a swap's warm-up and calibration do not age the frame
        if (now - capture) * 1e3 > s.deadline_ms:
            cam.count("dropped_stale")
            return
        t0 = time.perf_counter()
        if (size := convert.message_size(msg)) is not None:
            self.frame_sizes[camera] = size  # for roi checks at parameter set
        target = "mono8" if self.engine.bank.input_spec.channels == 1 else "rgb8"
        try:
            image, box = convert.message_to_roi(msg, target, s.roi)  # box: (x, y, w, h)
        except convert.ConversionError as exc:
            self._malformed(cam, exc)
            return
        t1 = time.perf_counter()
        result = self.engine.process(image, capture, origin=box[:2])  # frame pixels
        t2 = time.perf_counter()
        dets = None if result.detections is None else output.select_detections(
            result.detections, s.score_threshold, s.max_detections)
        if not result.skipped:
            self._outputs.publish_result(msg.header, camera, result, box, dets)
        t3 = time.perf_counter()
        result = frame_timing.with_node_stages(result, frame.received_at, capture,
                                               frame.callback_ms + (t1 - t0) * 1e3, (t3 - t2) * 1e3)
        latency_ms, slot_wait_ms = (self.clock() - capture) * 1e3, (now - frame.received_at) * 1e3
        self._outputs.publish_timing(msg.header, camera, result, slot_wait_ms, latency_ms)
        t4 = time.perf_counter()
        if s.publish_debug_image and self._debug_pub.get_subscription_count() > 0:
            self._debug_pub.publish(debug_image.render(msg, box, result, dets))
        overhead_ms = frame.callback_ms + (t1 - t0) * 1e3 + (t4 - t2) * 1e3
        cam.on_processed(result.timing.member, bool(result.timing.deadline_met), latency_ms,
                         overhead_ms, bool(result.skipped))
        if self.stage_log is not None:
            self.stage_log.append(frame_timing.stage_entry(camera, result, slot_wait_ms, latency_ms, (t4 - t3) * 1e3))

    # ---- timers and summary -----------------------------------------------------------
    def bank_info(self) -> dict:
        """The serving bank, its calibration, the last swap error and the start-up phases (s)."""
        return {**bank_checks.engine_info(self.engine, self.bank_error), "startup": self.startup.to_dict()}

    def _publish_diagnostics(self) -> None:
        statuses = diagnostics.period_statuses(
            self.node.get_name(), self.hardware_id, self.bank_info(), self.settings,
            self.active, self.cameras, self._prev, self.clock())
        self._diag_pub.publish(diagnostics.build_array(self.node.get_clock().now().to_msg(),
                                                       statuses))

    def _watch_topics(self) -> None:
        """Log a warning for a topic that has publishers but delivers nothing."""
        ours = qos.subscription_qos(self.settings.reliability)
        for warning in qos.silent_topic_warnings(self.node, self._subs, self.cameras, ours,
                                                 self._started, self.clock(), self.silent_warn_s,
                                                 self._silent_warned):
            self.silent_warnings.append(warning)
            self.log.warning(warning)

    def summary(self) -> dict:
        """Node, bank, uptime and each camera's totals (``summary.format_summary`` prints it)."""
        return {"node": self.node.get_name(), "bank": self.bank_info(),
                "uptime_s": 0.0 if self._started is None else self.clock() - self._started,
                "cameras": [st.summary() for st in self.cameras.values()]}
