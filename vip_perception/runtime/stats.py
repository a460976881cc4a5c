"""Running statistics over frame results, for diagnostics (one instance per camera).

A plain class with no I/O, as ROS's topic_monitor keeps its statistics apart from publishing:
the worker thread records, a diagnostics timer reads ``snapshot()``; a lock makes that safe.
Percentiles cover the last ``window`` frames so they describe now, not the whole run; counts
cover everything since the last ``reset()``.
"""
from __future__ import annotations

import threading
from collections import Counter, deque

import numpy as np


class RuntimeStats:
    def __init__(self, window: int = 1000) -> None:
        if window < 1:
            raise ValueError(f"stats window must be >= 1, got {window}")
        self._lock = threading.Lock()
        self._window = window
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.frames = 0
            self.processed = 0
            self.skipped = 0
            self.misses = 0  # deadline not met, skipped frames included
            self.member_counts: Counter = Counter()
            self._actual = deque(maxlen=self._window)  # model time, ms
            self._e2e = deque(maxlen=self._window)  # capture -> result, ms
            self._sel = deque(maxlen=self._window)  # selection cost, us
            self._last = None

    def record(self, result) -> None:
        """Add one ``FrameResult``."""
        t = result.timing
        with self._lock:
            self.frames += 1
            if result.skipped:
                self.skipped += 1
            else:
                self.processed += 1
                self.member_counts[t.member] += 1
                self._actual.append(t.actual_ms)
            if not t.deadline_met:
                self.misses += 1
            self._e2e.append(t.end_to_end_ms)
            self._sel.append(t.selection_us)
            self._last = t

    def snapshot(self) -> dict:
        """Plain dict (JSON-ready): counts, miss ratio, latency percentiles, last decision."""
        with self._lock:
            def pct(values, q):
                return float(np.percentile(np.fromiter(values, float), q)) if values else None

            last = self._last
            return {
                "frames": self.frames,
                "processed": self.processed,
                "skipped": self.skipped,
                "misses": self.misses,
                "miss_ratio": self.misses / self.frames if self.frames else 0.0,
                "member_counts": dict(self.member_counts),
                "latency_ms_p50": pct(self._actual, 50),
                "latency_ms_p95": pct(self._actual, 95),
                "end_to_end_ms_p50": pct(self._e2e, 50),
                "end_to_end_ms_p95": pct(self._e2e, 95),
                "selection_us_p99": pct(self._sel, 99),
                "last_member": last.member if last else None,
                "last_threads": last.threads if last else None,
                "last_slowdown": last.slowdown if last else None,
            }
