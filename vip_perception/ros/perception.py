"""What the perception node does, shared by the plain node and the lifecycle node.

Threads, and why: subscription callbacks only validate a message header and store it as the
camera's newest frame (microseconds), so they never wait for inference; one worker thread takes
frames round robin, drops those already older than the deadline, converts, runs the engine
(``vip_perception.runtime.Engine``) and publishes. Parameter changes are validated in the
on-set callback without side effects and applied after acceptance; the worker picks them up at
the next frame. A bank change is loaded (fully: schema + checksums) during validation, so a bad
bank is rejected with the reason in SetParametersResult and the old bank keeps serving; the
loaded bank is switched in by the worker between two frames. A ``backend`` change is the same
operation (the bank reloaded on the other backend); a pair that is only valid together (an
onnxruntime-profiled bank and backend onnxruntime) is set in one atomic call, since rclpy's
plain set_parameters service validates one parameter at a time.
Detection banks publish on ``detections``; since only the roi is converted, their boxes are
shifted by the roi's origin into full-frame pixels before publishing.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Callable

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from sensor_msgs.msg import CompressedImage, Image

from . import convert, diagnostics, output, parameters, qos
from .frame_slots import Frame, FrameSlots
from vip_perception.share import bank_directory, share_candidates
from .stats import CameraStats

WATCH_PERIOD_S = 2.0      # how often silent topics are checked
SILENT_WARN_S = 5.0       # publishers present but nothing for this long -> warning


def default_bank_path() -> str:
    """The shipped bank (config/banks/fashion_mnist) wherever the package was installed."""
    rel = "config/banks/fashion_mnist"
    for c in share_candidates(rel):
        if (c / "manifest.json").is_file():
            return str(c)
    return str(share_candidates(rel)[-2])  # the source-tree path, for the error message


def default_engine_factory(bank, settings: parameters.Settings, clock):
    from vip_perception.runtime import Engine
    return Engine(bank, engine_config(settings), clock=clock)


def engine_config(s: parameters.Settings):
    from vip_perception.runtime import EngineConfig
    return EngineConfig(deadline_ms=s.deadline_ms, margin_ms=s.margin_ms,
                        latency_quantile=s.latency_quantile, on_no_fit=s.on_no_fit,
                        threads=s.threads)


def clip_roi(roi: tuple, shape: tuple) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) clipped to an image of ``shape``; None for the whole frame."""
    if not roi:
        return None
    h_img, w_img = shape[0], shape[1]
    x, y = min(int(roi[0]), w_img - 1), min(int(roi[1]), h_img - 1)
    return x, y, max(1, min(int(roi[2]), w_img - x)), max(1, min(int(roi[3]), h_img - y))


def stamp_seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class Perception:
    """Subscriptions, worker, engine, outputs and diagnostics of one node."""

    def __init__(self, node, engine_factory: Callable | None = None,
                 clock: Callable[[], float] = time.time, record_stages: bool = False):
        self.node = node
        self.log = node.get_logger()
        self.clock = clock
        self.engine_factory = engine_factory or default_engine_factory
        self.settings = parameters.declare(node)
        self.hardware_id = self.settings.hardware_id or socket.gethostname()
        self.cameras = {t: CameraStats(t) for t in self.settings.image_topics}
        self.slots = FrameSlots(list(self.cameras))
        self.engine = None
        self.bank_error: str | None = None
        self.active = False
        self.stage_log: list[dict] | None = [] if record_stages else None
        self._checked_bank = None        # (path, backend, Bank) of the last accepted validation
        self._pending_bank = None        # Bank the worker switches to at the next frame
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._running = False
        self._engine_fields = None
        self._outputs = None
        self._subs = []
        self._timers = []
        self._prev = {}
        self._silent_warned = {}
        self._started: float | None = None  # clock() at configure
        self.watch_period_s, self.silent_warn_s = WATCH_PERIOD_S, SILENT_WARN_S
        self.silent_warnings: list[str] = []  # also logged; kept for tests and the summary
        self._debug_pub = None
        self._sub_group = ReentrantCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        node.add_on_set_parameters_callback(self._on_set_parameters)
        node.add_post_set_parameters_callback(self._post_set_parameters)

    # ---- parameters -------------------------------------------------------------------
    def _check_bank(self, path: str, backend: str = "torch") -> str | None:
        """Load the candidate bank on the candidate backend (load_bank has no side effects) so
        a bad one, or one the backend cannot run, is rejected with the reason."""
        from vip_perception.bank import BankError, load_bank
        cur = self.settings
        if backend != cur.backend and path == cur.bank:
            what = f"backend {backend} rejected"
        elif backend != cur.backend:
            what = f"bank {bank_directory(path) or default_bank_path()} on backend {backend} rejected"
        elif backend != "torch":  # the bank alone changed: say which backend it was tried on
            what = f"bank rejected on the current backend {backend} (to change both, set bank " \
                   f"and backend in one atomic call)"
        else:
            what = "bank rejected"
        try:
            bank = load_bank(bank_directory(path) or default_bank_path(), backend=backend)
        except BankError as exc:
            return f"{what}: {exc}"
        except Exception as exc:  # noqa: BLE001 - any load failure is a rejection with reason
            return f"{what}: {type(exc).__name__}: {exc}"
        try:
            for member in bank.members:  # lazily loaded weights: load (and fail) now
                member.module
        except Exception as exc:  # noqa: BLE001
            return f"{what}: cannot load members: {type(exc).__name__}: {exc}"
        self._checked_bank = (path, backend, bank)
        return None

    def _on_set_parameters(self, params):
        result = parameters.validate_change(self.settings, params, bank_check=self._check_bank)
        if result.successful:
            reason = self._check_engine_fit(params)
            if reason:
                result.successful, result.reason = False, reason
        return result

    def _check_engine_fit(self, params) -> str | None:
        """Would the (new) bank serve the (new) settings? e.g. threads=4 needs a profile at 4
        threads. Checked with a throw-away Selector, the engine's own rule."""
        changes = {p.name: p.value for p in params if p.name in parameters.SPEC_BY_NAME}
        s = self.settings.replace(**{k: v for k, v in changes.items() if v is not None})
        reload = bool({"bank", "backend"} & set(changes))
        if reload and self._checked_bank is not None:
            bank = self._checked_bank[2]
        elif self.engine is not None:
            bank = self.engine.bank
        else:
            return None
        if not reload and s.engine_fields() == self.settings.engine_fields():
            return None
        from vip_perception.runtime import Selector
        try:
            Selector(bank.members, s.latency_quantile, int(s.threads), s.on_no_fit)
        except (ValueError, KeyError) as exc:
            return f"bank {getattr(bank, 'path', '?')} cannot serve these settings: {exc}"
        return None

    def _post_set_parameters(self, params):
        changes = {p.name: ([] if p.value is None else p.value) for p in params
                   if p.name in parameters.SPEC_BY_NAME}
        if not changes:
            return
        with self._lock:
            self.settings = self.settings.replace(**changes)
            if {"bank", "backend"} & set(changes):
                checked = self._checked_bank
                if checked is not None and checked[:2] == (self.settings.bank,
                                                           self.settings.backend):
                    self._pending_bank = checked[2]
                self._checked_bank = None
        self.log.info("parameters set: " + ", ".join(f"{k}={v!r}" for k, v in changes.items()))

    # ---- lifecycle --------------------------------------------------------------------
    def configure(self) -> None:
        """Load the bank, build the engine, create publishers and subscriptions."""
        from vip_perception.bank import load_bank
        s = self.settings
        path = bank_directory(s.bank) or default_bank_path()
        bank = load_bank(path, backend=s.backend)  # BankError names the path and the reason
        with self._lock:
            self._pending_bank = None  # the parameter's bank is the one just loaded
        self.engine = self.engine_factory(bank, s, self.clock)
        self._engine_fields = s.engine_fields()
        self._make_outputs(s)
        self._debug_pub = self.node.create_publisher(Image, "~/debug_image", 1)
        self._diag_pub = self.node.create_publisher(
            diagnostics.DiagnosticArray, "/diagnostics", 10)
        sub_qos = qos.subscription_qos(s.reliability)
        msg_type = CompressedImage if s.image_transport == "compressed" else Image
        for camera in self.cameras:
            topic = camera + "/compressed" if s.image_transport == "compressed" else camera
            sub = self.node.create_subscription(
                msg_type, topic, lambda m, c=camera: self._on_image(c, m), sub_qos,
                callback_group=self._sub_group)
            self._subs.append(sub)
            self.log.info(f"camera {camera}: subscribed to {sub.topic_name} "
                          f"({msg_type.__name__}, {qos.describe(sub_qos)})")
        now = self.clock()
        self._prev = {c: st.snapshot(now) for c, st in self.cameras.items()}
        self._started = now
        self._timers = [
            self.node.create_timer(s.diagnostics_period_s, self._publish_diagnostics,
                                   callback_group=self._timer_group),
            self.node.create_timer(self.watch_period_s, self._watch_topics,
                                   callback_group=self._timer_group),
        ]
        self.log.info(f"bank {path} ({bank.name}, task {bank.task}, {len(bank.members)} "
                      f"members, backend {s.backend}), deadline {s.deadline_ms} ms, output "
                      f"{self._outputs.format}, image conversion via {convert.BACKEND}")

    def activate(self) -> None:
        self.slots.clear()
        self.active = True
        self._running = True
        self._worker = threading.Thread(target=self._worker_loop, name="vip_worker", daemon=True)
        self._worker.start()

    def deactivate(self) -> None:
        self.active = False
        self._running = False
        if self._worker is not None:
            self._worker.join(timeout=10.0)
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
        for pub in (self._debug_pub, getattr(self, "_diag_pub", None)):
            if pub is not None:
                self.node.destroy_publisher(pub)
        self._subs, self._timers, self._outputs, self._debug_pub = [], [], None, None
        self.engine = None
        self._pending_bank = None

    # ---- callbacks --------------------------------------------------------------------
    def _on_image(self, camera: str, msg) -> None:
        t0 = time.perf_counter()
        cam = self.cameras[camera]
        cam.on_received(self.clock())
        if not self.active:
            return
        try:
            convert.validate_message(msg)
        except convert.ConversionError as exc:
            self._malformed(cam, exc)
            return
        frame = Frame(msg, self.clock(), (time.perf_counter() - t0) * 1e3)
        if self.slots.put(camera, frame):
            cam.count("replaced")

    def _malformed(self, cam: CameraStats, exc: convert.ConversionError) -> None:
        cam.on_malformed(exc.reason)
        self.log.warning(f"camera {cam.topic}: skipped malformed image ({exc})",
                         throttle_duration_sec=5.0)

    # ---- worker -----------------------------------------------------------------------
    def _worker_loop(self) -> None:
        while self._running:
            item = self.slots.take(timeout=0.1)
            if item is None:
                continue
            camera, frame = item
            try:
                self._handle(camera, frame)
            except Exception as exc:  # noqa: BLE001 - the worker must survive anything
                if not self.node.context.ok():
                    break  # shutting down (SIGINT/SIGTERM): publishing fails, nothing to report
                self.cameras[camera].count("errors")
                self.log.error(f"camera {camera}: frame failed: {type(exc).__name__}: {exc}",
                               throttle_duration_sec=5.0)

    def _apply_pending(self, s: parameters.Settings) -> None:
        """Between frames: switch bank, update engine config, rebuild outputs if needed."""
        with self._lock:
            bank, self._pending_bank = self._pending_bank, None
        if bank is not None:
            old = self.engine.bank
            try:
                self.engine.swap_bank(bank)
                self.bank_error = None
                self.log.info(f"bank swapped: {getattr(old, 'path', old)} -> {bank.path}")
            except Exception as exc:  # noqa: BLE001 - old bank keeps serving
                self.bank_error = str(exc)
                self.log.error(f"bank swap to {getattr(bank, 'path', bank)} failed, keeping "
                               f"{getattr(old, 'path', old)}: {exc}")
        if s.engine_fields() != self._engine_fields:
            self._engine_fields = s.engine_fields()  # tried once, not on every frame
            try:
                self.engine.update_config(engine_config(s))
            except ValueError as exc:  # validated already; keep the old config if not
                self.log.error(f"engine kept its previous config: {exc}")
        fmt = output.resolve_format(s.output_format)
        detection = self.engine.bank.task == "detection"
        if (fmt, detection) != (self._outputs.format, self._outputs.detection):
            self._outputs.destroy()
            self._make_outputs(s)

    def _make_outputs(self, s: parameters.Settings) -> None:
        self._outputs = output.Outputs(self.node, s.output_format,
                                       detection=self.engine.bank.task == "detection")

    def _handle(self, camera: str, frame: Frame) -> None:
        s = self.settings
        self._apply_pending(s)
        cam = self.cameras[camera]
        msg = frame.msg
        now = self.clock()
        capture = stamp_seconds(msg.header.stamp) or frame.received_at  # unstamped drivers
        if (now - capture) * 1e3 > s.deadline_ms:
            cam.count("dropped_stale")
            return
        t0 = time.perf_counter()
        bank = self.engine.bank
        target = "mono8" if bank.input_spec.channels == 1 else "rgb8"
        try:  # only the ROI is converted (cut from the zero-copy view first)
            size = convert.message_size(msg)
            if size is not None:
                roi = clip_roi(s.roi, size)
                img = convert.message_to_array(msg, target, roi=roi)
            else:  # compressed: the size is known after decoding
                img = convert.message_to_array(msg, target)
                size = img.shape[:2]
                roi = clip_roi(s.roi, size)
                img = convert.crop(img, roi)
        except convert.ConversionError as exc:
            self._malformed(cam, exc)
            return
        t1 = time.perf_counter()
        result = self.engine.process(img, capture, None)
        t2 = time.perf_counter()
        box = roi or (0, 0, size[1], size[0])
        dets = getattr(result, "detections", None)
        if dets is not None:  # engine boxes are in roi pixels: report them in the frame's
            dets = output.offset_detections(
                output.select_detections(dets, s.score_threshold, s.max_detections), box[:2])
        if not result.skipped:
            self._outputs.publish_result(msg.header, camera, result, box, dets)
        latency_ms = (self.clock() - capture) * 1e3
        slot_wait_ms = (now - frame.received_at) * 1e3
        self._outputs.publish_timing(msg.header, camera, result, slot_wait_ms, latency_ms)
        t3 = time.perf_counter()
        if s.publish_debug_image and self._debug_pub.get_subscription_count() > 0:
            self._publish_debug(msg, box, result, dets)
        overhead_ms = frame.callback_ms + (t1 - t0) * 1e3 + (t3 - t2) * 1e3
        cam.on_processed(result.timing.member, bool(result.timing.deadline_met), latency_ms,
                         overhead_ms, bool(result.skipped))
        if self.stage_log is not None:
            self.stage_log.append({"camera": camera, "callback_ms": frame.callback_ms,
                                   "convert_ms": (t1 - t0) * 1e3, "engine_ms": (t2 - t1) * 1e3,
                                   "publish_ms": (t3 - t2) * 1e3, "latency_ms": latency_ms,
                                   "slot_wait_ms": slot_wait_ms})

    def _publish_debug(self, msg, box, result, dets=None) -> None:
        """Annotated full frame (roi, then the label or each detection's box and name); only
        called while ~/debug_image has a subscriber."""
        import cv2
        bgr = cv2.cvtColor(convert.message_to_array(msg, "rgb8"), cv2.COLOR_RGB2BGR)
        x, y, w, h = box
        cv2.rectangle(bgr, (x, y), (x + w - 1, y + h - 1), (0, 255, 0), 2)
        t = result.timing
        if result.skipped:
            label = "skipped"
        elif dets is not None:
            label = f"{len(dets)} detections"
        else:
            label = f"{result.class_name} {result.score or 0:.2f}"
        for d in dets or ():
            x0, y0, x1, y1 = (int(round(v)) for v in d.box)
            cv2.rectangle(bgr, (x0, y0), (x1 - 1, y1 - 1), (0, 200, 255), 1)
            cv2.putText(bgr, f"{d.class_name} {d.score:.2f}", (x0, max(y0 - 3, 10)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 200, 255), 1)
        cv2.putText(bgr, f"{label} | {t.member} {t.actual_ms:.1f} ms", (x + 4, y + 20),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 0), 2)
        self._debug_pub.publish(convert.array_to_image(bgr, "bgr8", msg.header))

    # ---- timers -----------------------------------------------------------------------
    def bank_info(self) -> dict:
        bank = self.engine.bank if self.engine is not None else None
        if bank is None:
            return {"error": self.bank_error}
        return {"path": str(bank.path), "name": bank.name, "task": bank.task,
                "backend": getattr(bank, "backend", "torch"), "members": len(bank.members),
                "error": self.bank_error}

    def _publish_diagnostics(self) -> None:
        s = self.settings
        now = self.clock()
        name = self.node.get_name()
        statuses = [diagnostics.engine_status(name, self.hardware_id, self.bank_info(), s,
                                              self.active)]
        for camera, st in self.cameras.items():
            cur = st.snapshot(now)
            statuses.append(diagnostics.camera_status(name, self.hardware_id, st,
                                                      self._prev[camera], cur, now, s))
            self._prev[camera] = cur
        self._diag_pub.publish(diagnostics.build_array(self.node.get_clock().now().to_msg(),
                                                       statuses))

    def _watch_topics(self) -> None:
        now = self.clock()
        sub_qos = qos.subscription_qos(self.settings.reliability)
        for sub, (camera, st) in zip(self._subs, self.cameras.items()):
            last = st.last_received if st.last_received is not None else self._started
            silent = now - last
            if silent < self.silent_warn_s or now - self._silent_warned.get(camera, 0.0) < 30.0:
                continue
            pubs = self.node.get_publishers_info_by_topic(sub.topic_name)
            warning = qos.silent_topic_warning(sub.topic_name, sub_qos, pubs, silent)
            if warning:
                self._silent_warned[camera] = now
                self.silent_warnings.append(warning)
                self.log.warning(warning)

    # ---- summary ----------------------------------------------------------------------
    def summary(self) -> dict:
        started = self._started
        return {"node": self.node.get_name(), "bank": self.bank_info(),
                "uptime_s": 0.0 if started is None else self.clock() - started,
                "cameras": [st.summary() for st in self.cameras.values()]}


def format_summary(summary: dict) -> str:
    bank = summary["bank"]
    where = f"bank {bank['name']} ({bank['path']})" if bank.get("path") else "no bank loaded"
    if bank.get("path") and bank.get("backend", "torch") != "torch":
        where += f" on {bank['backend']}"
    lines = [f"{summary['node']}: final summary after {summary['uptime_s']:.1f} s, {where}"]
    ms = lambda v: "n/a" if v is None else f"{v:.1f} ms"  # noqa: E731
    for c in summary["cameras"]:
        lines.append(
            f"  {c['topic']}: received {c['received']}, processed {c['processed']}, deadline "
            f"misses {c['deadline_misses']}, dropped stale {c['dropped_stale']}, replaced "
            f"{c['replaced_by_newer']}, malformed {c['malformed']}, skipped {c['skipped']}, "
            f"errors {c['errors']}, latency p50 {ms(c['latency_ms_p50'])}, node overhead p50 "
            f"{ms(c['overhead_ms_p50'])}, members {c['member_usage']}")
    return "\n".join(lines)
