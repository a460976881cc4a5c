"""How many of this process's cores other processes are using now, read from the kernel's counters.

Why: on 2 cores beside one busy process, a 2-thread run either finishes normally or waits a
scheduler slice (9 ms -> 100+ ms, on about a third of runs). The slowdown estimator
(``runtime.slowdown``) learns that only from runs: the first 2-thread frame after the load
arrives is a miss, every later try while it stays (a probe, when the aged factor lets 2 threads
back in) is another, and after the load leaves the backed-off keys take 150-200 frames to come
back. The kernel already counts who used the cores: the busy time of this process's CPUs in
``/proc/stat`` minus this process's own CPU time (``/proc/self/stat``) is what the other
processes took, in cores, over the last interval. That says how many cores are free for
intra-op threads before anything is run, and when a load has left.

Hysteresis, because a reading is an average over about 0.1 s of 10 ms ticks: a core counts as
taken as soon as others use ``TAKEN_AT`` (0.5) of one more core; it counts as free again after
``CLEAR_READINGS`` readings in a row below ``FREE_BELOW`` (0.3) of it. (A neighbour that keeps
a core busy reads 0.6-0.7 over intervals in which our 2-thread runs preempt it, 0.9-1.0
otherwise; an idle machine 0-0.1.) A process that wakes
for a few ms per frame (a camera driver, DDS) therefore never takes a core, and one that keeps a
core busy holds it even while our own 2-thread runs preempt it now and then.

Scope: Linux ``/proc``, the CPUs of this process's affinity mask (a container limited by a
cpuset sees its own cores). A CPU quota without a cpuset (cgroup ``cpu.max`` alone) is not
visible: other tenants' use of the host's cores then reads as load, which only makes the
engine use fewer threads. Where ``/proc`` cannot be read, ``available`` is False and the
readings are None: the engine then learns from frame timings alone. Not thread-safe on its
own: the engine calls it under its run lock.
"""
from __future__ import annotations

import os
import time
from typing import Callable

TAKEN_AT = 0.5  # others' use of a core (fraction) at which it counts as taken
FREE_BELOW = 0.3  # ... and below which, for CLEAR_READINGS readings in a row, as free again
CLEAR_READINGS = 2
INTERVAL_S = 0.1  # shortest interval a reading averages over (10 ticks of 10 ms per core)


def _busy_ticks(stat: str, cpus: frozenset[int]) -> int:
    """Busy ticks (user, nice, system, irq, softirq, steal) of ``cpus`` from /proc/stat text.
    Steal counts: time the hypervisor gave our virtual CPU to someone else is taken too."""
    total = 0
    for line in stat.splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *fields = line.split()
        if int(name[3:]) in cpus:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
            total += user + nice + system + irq + softirq + steal
    return total


def _own_ticks(stat: str) -> int:
    """utime + stime of /proc/<pid>/stat text (fields 14, 15; counted after the ``)`` that ends
    the command name, which may itself contain spaces)."""
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


class CpuLoad:
    """Other processes' use of this process's cores, and the intra-op threads that leaves room for.

    proc: the procfs root (tests pass a directory with ``stat`` and ``self/stat``).
    cpus: CPU numbers to watch; default this process's affinity mask.
    clock: seconds, monotonic. ``update`` takes a reading at most every ``interval_s``.
    """

    def __init__(self, proc: str = "/proc", cpus=None, interval_s: float = INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not interval_s > 0:
            raise ValueError(f"cpu load interval_s must be > 0, got {interval_s!r}")
        self._stat = os.path.join(proc, "stat")
        self._self_stat = os.path.join(proc, "self", "stat")
        self.cpus = frozenset(os.sched_getaffinity(0) if cpus is None else cpus)
        self.interval_s = float(interval_s)
        self._clock = clock
        self._hz = os.sysconf("SC_CLK_TCK")
        self.others_cores: float | None = None  # last reading, cores; None before the first
        self.taken = 0  # cores held by others (hysteresis applied)
        self._below = 0  # readings in a row below FREE_BELOW of the taken cores
        self._last = self._read()  # (time, busy ticks, own ticks) or None
        self.available = self._last is not None

    def _read(self):
        try:
            with open(self._stat) as f:
                busy = _busy_ticks(f.read(), self.cpus)
            with open(self._self_stat) as f:
                own = _own_ticks(f.read())
        except (OSError, ValueError, IndexError):
            return None
        return self._clock(), busy, own

    def update(self) -> bool:
        """Take a reading when ``interval_s`` has passed since the last one. Returns True once
        when cores held by others have just become free (a load left); False otherwise and
        when unavailable."""
        if self._last is None:
            return False
        now = self._clock()
        if now - self._last[0] < self.interval_s:
            return False
        reading = self._read()
        if reading is None:
            return False
        (t0, busy0, own0), (t1, busy1, own1) = self._last, reading
        self._last = reading
        span = (t1 - t0) * self._hz
        others = max(0.0, (busy1 - busy0) - (own1 - own0)) / span
        self.others_cores = others
        return self._apply(others)

    def _apply(self, others: float) -> bool:
        up = int(others + 1.0 - TAKEN_AT)  # cores with at least TAKEN_AT of one in use
        if up > self.taken:
            self.taken, self._below = min(up, len(self.cpus)), 0
            return False
        if self.taken and others < self.taken - 1 + FREE_BELOW:
            self._below += 1
            if self._below >= CLEAR_READINGS:
                self.taken, self._below = up, 0
                return True
        else:
            self._below = 0
        return False

    def max_threads(self) -> int | None:
        """Intra-op threads that fit in the cores others leave free (at least 1); None when
        unknown (unavailable, or no reading yet)."""
        if self.others_cores is None:
            return None
        return max(1, len(self.cpus) - self.taken)
