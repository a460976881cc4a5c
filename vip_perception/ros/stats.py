"""Per-camera counters and latency windows, kept apart from any ROS I/O.

Why plain classes: the worker, the subscription callbacks and the diagnostics timer touch the
same numbers from different threads; one lock per camera and no ROS types make them easy to
test and to print as the final summary. Time always comes in as an argument.
"""
from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field

from vip_perception.quantiles import percentile

WINDOW = 512  # latency samples kept per camera for the quantiles


@dataclass
class Snapshot:
    """Counters at one instant; the difference of two snapshots gives rates."""
    t: float
    received: int = 0
    processed: int = 0
    misses: int = 0
    dropped_stale: int = 0
    malformed: int = 0
    skipped: int = 0
    errors: int = 0


@dataclass
class CameraStats:
    """Everything the node counts about one camera topic."""
    topic: str
    received: int = 0           # messages that reached the callback
    processed: int = 0          # frames the engine ran on (result published)
    misses: int = 0             # processed but finished after the deadline
    dropped_stale: int = 0      # older than the deadline when the worker got to them
    replaced: int = 0           # overwritten by a newer frame before the worker took them
    malformed: int = 0          # failed validation or conversion
    malformed_reasons: Counter = field(default_factory=Counter)
    skipped: int = 0            # engine skipped (on_no_fit=skip and nothing fits)
    errors: int = 0             # engine or publish exceptions (logged)
    last_received: float | None = None
    member_usage: Counter = field(default_factory=Counter)
    latency_ms: deque = field(default_factory=lambda: deque(maxlen=WINDOW))   # stamp -> published
    overhead_ms: deque = field(default_factory=lambda: deque(maxlen=WINDOW))  # node work, no inference
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self, t: float) -> Snapshot:
        with self.lock:
            return Snapshot(t, self.received, self.processed, self.misses, self.dropped_stale,
                            self.malformed, self.skipped, self.errors)

    def on_received(self, t: float) -> None:
        with self.lock:
            self.received += 1
            self.last_received = t

    def on_malformed(self, reason: str) -> None:
        with self.lock:
            self.malformed += 1
            self.malformed_reasons[reason] += 1

    def count(self, what: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, what, getattr(self, what) + n)

    def on_processed(self, member: str | None, met: bool, latency_ms: float,
                     overhead_ms: float | None, skipped: bool) -> None:
        with self.lock:
            if skipped:
                self.skipped += 1
                return
            self.processed += 1
            self.misses += 0 if met else 1
            self.member_usage[member or "none"] += 1
            self.latency_ms.append(latency_ms)
            if overhead_ms is not None:
                self.overhead_ms.append(overhead_ms)

    def summary(self) -> dict:
        """Totals since start, JSON-friendly (final summary, bench)."""
        with self.lock:
            lat = list(self.latency_ms)
            ovh = list(self.overhead_ms)
            return {
                "topic": self.topic, "received": self.received, "processed": self.processed,
                "deadline_misses": self.misses, "dropped_stale": self.dropped_stale,
                "replaced_by_newer": self.replaced, "malformed": self.malformed,
                "malformed_reasons": dict(self.malformed_reasons), "skipped": self.skipped,
                "errors": self.errors, "member_usage": dict(self.member_usage),
                "latency_ms_p50": percentile(lat, 50), "latency_ms_p95": percentile(lat, 95),
                "overhead_ms_p50": percentile(ovh, 50), "overhead_ms_p99": percentile(ovh, 99),
            }


def rates(prev: Snapshot, cur: Snapshot) -> dict:
    """Per-second rates and ratios between two snapshots of one camera."""
    dt = max(cur.t - prev.t, 1e-9)
    received = cur.received - prev.received
    processed = cur.processed - prev.processed
    misses = cur.misses - prev.misses
    drops = (cur.dropped_stale - prev.dropped_stale) + (cur.malformed - prev.malformed)
    return {
        "input_hz": received / dt,
        "processed_hz": processed / dt,
        "miss_ratio": misses / processed if processed else 0.0,
        "drop_ratio": drops / received if received else 0.0,
        "received": received,
        "processed": processed,
    }
