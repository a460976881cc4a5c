"""Newest frame per camera, handed to the worker round robin.

Why a slot and not a queue: for deadline work only the newest frame of a camera is worth
processing; an older one still waiting when a newer arrives is replaced (and counted). Round
robin over cameras keeps one fast camera from starving the others.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class Frame:
    msg: Any             # image_cdr.RawImage (raw subscription) or CompressedImage, validated
    received_at: float   # clock() when the callback ran, s
    callback_ms: float   # time spent in the subscription callback


class FrameSlots:
    def __init__(self, cameras: list[str]):
        self._order = list(cameras)
        self._slot: dict[str, Frame | None] = {c: None for c in self._order}
        self._cursor = 0
        self._cv = threading.Condition()

    def put(self, camera: str, frame: Frame) -> bool:
        """Store ``frame`` as the camera's newest; True when it replaced an untaken one."""
        with self._cv:
            replaced = self._slot[camera] is not None
            self._slot[camera] = frame
            self._cv.notify()
        return replaced

    def take(self, timeout: float) -> tuple[str, Frame] | None:
        """Next camera (after the last one served) that has a frame; None after ``timeout``."""
        with self._cv:
            if not self._cv.wait_for(self._any, timeout):
                return None
            n = len(self._order)
            for i in range(n):
                cam = self._order[(self._cursor + i) % n]
                frame = self._slot[cam]
                if frame is not None:
                    self._slot[cam] = None
                    self._cursor = (self._cursor + i + 1) % n
                    return cam, frame
        return None

    def clear(self) -> int:
        with self._cv:
            n = sum(f is not None for f in self._slot.values())
            self._slot = {c: None for c in self._order}
            return n

    def wake(self) -> None:
        with self._cv:
            self._cv.notify_all()

    def _any(self) -> bool:
        return any(f is not None for f in self._slot.values())
