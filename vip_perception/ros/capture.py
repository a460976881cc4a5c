"""Live frame sources of the camera node: a V4L2 device or any stream OpenCV's FFmpeg backend
reads (RTSP, MJPEG over HTTP, ...), read on a thread of their own, reopened with backoff.

Why a thread: a live source delivers frames at its own pace and ``read`` blocks until the next
one (or for up to ``timeout_s`` when the source stalls); doing that in the node's timer would
stall its executor. The thread keeps only the newest frame; the node takes it when it
publishes, so a slow publisher drops old frames instead of queueing them.

States: ``connecting`` (first try), ``streaming``, ``reconnecting`` (was streaming, lost;
retrying), ``unavailable`` (never opened; retrying). A source that stops delivering is reopened
at once; one that cannot be opened is retried after ``reconnect_s``, doubling after each failed
try up to ``RECONNECT_MAX_FACTOR`` times that. The first failure of a run of failures is
reported with one line naming the path and what to check, and the node keeps running. No
rclpy here: the node passes a ``log(level, line)`` callable and a clock.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

KINDS = ("device", "stream")
RECONNECT_MAX_FACTOR = 16  # the backoff stops growing at 16 x reconnect_s
STATES = ("connecting", "streaming", "reconnecting", "unavailable")


def device_path(path: str) -> str:
    """``/dev/videoN`` for a bare index ``N``; any other path unchanged."""
    return f"/dev/video{path}" if path.isdigit() else path


def check_path(kind: str, path: str) -> str | None:
    """Why ``path`` can never name a ``kind`` source (one line), or None. A missing device is
    not such a reason: it may be plugged in later, so it is retried like a lost one."""
    if not path:
        return f"source {kind} needs the path parameter (a /dev/videoN device or a stream URL)"
    if kind == "stream" and "://" not in path:
        return (f"stream path {path!r} is not a URL: give rtsp://..., http://... or another "
                "URL OpenCV's FFmpeg backend reads (a file is source:=video)")
    return None


@dataclass
class CaptureStatus:
    """Counters and state of one live source; ``as_dict`` is what diagnostics show."""
    state: str = "connecting"
    frames: int = 0            # frames read since start
    connects: int = 0          # successful opens (1 + reconnections that worked)
    losses: int = 0            # times a streaming source stopped delivering
    failed_opens: int = 0      # tries to open that failed
    last_error: str = ""       # the last failure line (empty: none yet)
    size: tuple[int, int] = field(default=(0, 0))  # (width, height) the source delivers

    def as_dict(self) -> dict:
        return {"state": self.state, "frames": self.frames, "connects": self.connects,
                "losses": self.losses, "failed_opens": self.failed_opens,
                "source_size": f"{self.size[0]}x{self.size[1]}", "last_error": self.last_error}


def open_capture(kind: str, path: str, width: int, height: int, rate_hz: float,
                 timeout_s: float):
    """Open ``path`` -> (cv2.VideoCapture, None), or (None, one-line reason naming the path and
    what to check). A device gets width/height/rate as capture properties (the device may
    ignore them; frames are resized later); a stream gets open and read timeouts."""
    import cv2
    if kind == "device":
        path = device_path(path)
        if not os.path.exists(path):
            return None, (f"device {path} not found: check that the camera is connected and "
                          "the path (ls /dev/video*)")
        cap = cv2.VideoCapture(path, cv2.CAP_V4L2)
        if not cap.isOpened():
            return None, (f"device {path}: V4L2 cannot open it: check that it is a capture "
                          "device, that no other program holds it and that this user may read "
                          "it (group video)")
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, width), (cv2.CAP_PROP_FRAME_HEIGHT, height),
                            (cv2.CAP_PROP_FPS, rate_hz)):
            if value:
                cap.set(prop, float(value))  # a refusal is fine: frames are resized instead
        return cap, None
    ms = int(timeout_s * 1000)
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                                                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
    if not cap.isOpened():
        return None, (f"stream {path}: cannot open it within {timeout_s:g} s: check the URL and "
                      "that the server is running and reachable from this host")
    return cap, None


class LiveCapture:
    """Reads one live source on a daemon thread; ``take`` hands the newest unseen frame.

    ``log(level, line)`` receives state changes (level ``info``, ``warn`` or ``error``);
    ``now_ns()`` stamps each frame when it is read (the acquisition time the node publishes).
    """

    def __init__(self, kind: str, path: str, *, width: int, height: int, rate_hz: float,
                 timeout_s: float, reconnect_s: float, log: Callable[[str, str], None],
                 now_ns: Callable[[], int]):
        if kind not in KINDS:
            raise ValueError(f"live source kind must be one of {list(KINDS)}, got {kind!r}")
        reason = check_path(kind, path)
        if reason:
            raise ValueError(reason)
        self.kind, self.path = kind, device_path(path) if kind == "device" else path
        self.size, self.rate_hz = (width, height), rate_hz
        self.timeout_s, self.reconnect_s = timeout_s, reconnect_s
        self.log, self.now_ns = log, now_ns
        self.status = CaptureStatus()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._newest: tuple[int, np.ndarray, int] | None = None  # (seq, bgr, stamp_ns)
        self._taken = 0
        self._thread = threading.Thread(target=self._run, name=f"capture {self.path}",
                                        daemon=True)

    def start(self) -> LiveCapture:
        self._thread.start()
        return self

    def stop(self, wait_s: float | None = None) -> None:
        """Stop reading; waits for the thread up to ``wait_s`` (default: the read timeout + 1 s,
        since a blocked read cannot be interrupted)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.timeout_s + 1.0 if wait_s is None else wait_s)

    def snapshot(self) -> dict:
        """The status as a plain dict (a copy, safe to read from any thread)."""
        with self._lock:
            return self.status.as_dict()

    def take(self) -> tuple[np.ndarray, int] | None:
        """(newest frame as read, BGR or grey, stamp in ns) if one arrived since the last
        take, else None."""
        with self._lock:
            if self._newest is None or self._newest[0] == self._taken:
                return None
            seq, img, stamp_ns = self._newest
            self._taken = seq
        return img, stamp_ns

    def _set(self, **changes) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(self.status, key, value)

    def _run(self) -> None:
        delay, failures = self.reconnect_s, 0
        while not self._stop.is_set():
            cap, reason = open_capture(self.kind, self.path, *self.size, self.rate_hz,
                                       self.timeout_s)
            if cap is not None:
                n = self._stream(cap, failures)
                cap.release()
                if n:
                    delay, failures = self.reconnect_s, 0
                    self._report_loss(n)
                    continue  # retry at once: a short hiccup costs no wait
                reason = (f"{self.kind} {self.path}: opened but gave no frame within "
                          f"{self.timeout_s:g} s: check that it sends video in a format OpenCV "
                          "decodes")
            failures += 1
            self._report_failure(reason, failures, delay)
            self._stop.wait(delay)
            delay = min(delay * 2, self.reconnect_s * RECONNECT_MAX_FACTOR)

    def _stream(self, cap, failures: int) -> int:
        """Read until the source stops delivering or ``stop``; -> frames read."""
        n = 0
        while not self._stop.is_set():
            ok, img = cap.read()
            if not ok or img is None or img.size == 0:
                break
            stamp = self.now_ns()
            n += 1
            with self._lock:
                seq = self.status.frames + 1
                self._newest = (seq, img, stamp)
                self.status.frames = seq
                if n == 1:
                    self.status.state, self.status.connects = "streaming", self.status.connects + 1
                    self.status.size = (img.shape[1], img.shape[0])
            if n == 1:
                again = " again" if self.status.connects > 1 else ""
                tries = f" (after {failures} failed tries)" if failures else ""
                self.log("info", f"{self.kind} {self.path}: streaming{again}, {img.shape[1]}x"
                                 f"{img.shape[0]}{tries}")
        return n

    def _report_loss(self, frames: int) -> None:
        if self._stop.is_set():
            return
        with self._lock:
            self.status.losses += 1
            self.status.state = "reconnecting"
            self.status.last_error = (f"{self.kind} {self.path}: lost after {frames} frames (no "
                                      f"frame within {self.timeout_s:g} s, or the source closed)")
        self.log("warn", f"{self.status.last_error}; reconnecting, first retry now, then every "
                         f"{self.reconnect_s:g} s doubling")

    def _report_failure(self, reason: str, failures: int, delay: float) -> None:
        """Log the first failure of a run, then each one once the backoff is at its cap."""
        with self._lock:
            self.status.failed_opens += 1
            self.status.last_error = reason
            self.status.state = "reconnecting" if self.status.connects else "unavailable"
        if failures == 1 or delay >= self.reconnect_s * RECONNECT_MAX_FACTOR:
            level = "error" if failures == 1 else "warn"
            tries = "" if failures == 1 else f" ({failures} tries)"
            self.log(level, f"{reason}{tries}; retrying in {delay:g} s")
