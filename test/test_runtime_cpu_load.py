"""runtime.cpu_load: other processes' use of our cores from /proc counters (fake procfs trees and
the real one), with its hysteresis."""
import os
import subprocess
import sys
import time

import pytest

from test_runtime_fakes import FakeClock
from vip_perception.runtime.cpu_load import CpuLoad

HZ = os.sysconf("SC_CLK_TCK")


class FakeProc:
    """A procfs tree with ``stat`` (aggregate + 3 CPUs) and ``self/stat``; counters in ticks."""

    def __init__(self, root) -> None:
        self.root = root
        (root / "self").mkdir()
        self.cpu = {0: [0] * 8, 1: [0] * 8, 2: [0] * 8}  # user nice system idle iowait irq softirq steal
        self.own = 0
        self.write()

    def write(self) -> None:
        rows = [f"cpu{n} " + " ".join(map(str, v + [0, 0])) for n, v in self.cpu.items()]
        total = [sum(v[k] for v in self.cpu.values()) for k in range(8)] + [0, 0]
        (self.root / "stat").write_text("cpu  " + " ".join(map(str, total)) + "\n" + "\n".join(rows)
                                        + "\nintr 1 2 3\nctxt 99\n")
        # a command name with spaces and a parenthesis: fields are counted after the last ')'
        fields = ["R"] + ["0"] * 10 + [str(self.own), "0"] + ["0"] * 30
        (self.root / "self" / "stat").write_text("4242 (vip (perception) node) " + " ".join(fields) + "\n")

    def busy(self, seconds: float, cores: dict, own: float = 0.0, field: int = 0) -> None:
        """``cores[n]`` of CPU n busy for ``seconds`` (in ``field``: 0 user, 7 steal), of which
        ``own`` core-seconds were this process."""
        for n, frac in cores.items():
            self.cpu[n][field] += round(frac * seconds * HZ)
        self.own += round(own * seconds * HZ)
        self.write()


@pytest.fixture()
def proc(tmp_path):
    return FakeProc(tmp_path)


def sensor(proc, clock, **kw):
    return CpuLoad(proc=str(proc.root), cpus={0, 1}, clock=clock, **kw)


def step(proc, clock, seconds, cores, own=0.0, field=0):
    proc.busy(seconds, cores, own, field)
    clock.advance_ms(seconds * 1e3)


def test_others_are_the_watched_cpus_busy_time_minus_our_own(proc):
    clock = FakeClock()
    s = sensor(proc, clock)
    assert s.available and s.others_cores is None and s.max_threads() is None
    # we keep cpu0 busy; a neighbour keeps cpu1 at 80 %; cpu2 is outside our mask (ignored)
    step(proc, clock, 0.5, {0: 1.0, 1: 0.8, 2: 1.0}, own=1.0)
    assert s.update() is False
    assert s.others_cores == pytest.approx(0.8, abs=0.03)
    assert (s.taken, s.max_threads()) == (1, 1)


def test_steal_time_counts_as_taken(proc):
    clock = FakeClock()
    s = sensor(proc, clock)
    step(proc, clock, 0.5, {0: 0.9}, field=7)  # the hypervisor ran someone else on our vCPU
    s.update()
    assert s.others_cores == pytest.approx(0.9, abs=0.03) and s.max_threads() == 1


def test_hysteresis_takes_at_once_and_frees_after_two_quiet_readings(proc):
    clock = FakeClock()
    s = sensor(proc, clock)
    readings = []
    for load in (0.25, 0.55, 0.4, 0.2, 0.4, 0.2, 0.1, 0.0, 1.7, 1.2, 1.1, 0.0):
        step(proc, clock, 0.2, {0: min(load, 1.0), 1: max(load - 1.0, 0.0)})
        left = s.update()
        readings.append((s.taken, left))
    assert readings == [
        (0, False),  # 0.25 of a core: a process waking now and then, not a taken core
        (1, False),  # 0.55 >= 0.5: taken at once
        (1, False),  # 0.4: in the band, held
        (1, False),  # 0.2: one quiet reading
        (1, False),  # 0.4 again: the count restarts
        (1, False),
        (0, True),   # the second quiet reading in a row: free, reported once
        (0, False),
        (2, False),  # 1.7: both cores taken
        (2, False),  # 1.2 < 1.3: one quiet reading of the second core
        (1, True),   # 1.1: the second in a row, that core is freed
        (1, False),  # 0.0: one quiet reading of the last core
    ]
    assert s.max_threads() == 1  # never below 1


def test_readings_wait_for_the_interval(proc):
    clock = FakeClock()
    s = sensor(proc, clock, interval_s=0.1)
    step(proc, clock, 0.05, {0: 1.0, 1: 1.0})
    assert not s.update() and s.others_cores is None  # 50 ms: too few ticks to average
    step(proc, clock, 0.06, {0: 1.0, 1: 1.0})
    s.update()
    assert s.others_cores == pytest.approx(2.0, abs=0.05) and s.max_threads() == 1


def test_unreadable_proc_is_unavailable_and_changes_nothing(tmp_path):
    s = CpuLoad(proc=str(tmp_path / "missing"), clock=FakeClock())
    assert not s.available and not s.update() and s.max_threads() is None
    with pytest.raises(ValueError, match="interval_s must be > 0"):
        CpuLoad(interval_s=0)


def test_garbled_stat_counts_as_unavailable(proc):
    (proc.root / "stat").write_text("cpu0 not numbers\n")
    s = sensor(proc, FakeClock())
    assert not s.available and not s.update()


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux /proc")
def test_a_real_busy_neighbour_takes_a_core_and_frees_it_when_it_exits():
    s = CpuLoad(interval_s=0.1)
    assert s.available
    cpus = len(s.cpus)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(busy.pid, {min(s.cpus)})  # one whole core of ours, not spread
        deadline = time.monotonic() + 10.0
        while s.taken < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
            s.update()
        assert s.taken >= 1 and s.max_threads() <= max(1, cpus - 1)
    finally:
        busy.kill()
        busy.wait()
    deadline = time.monotonic() + 10.0
    left = False
    while s.taken >= 1 and time.monotonic() < deadline:
        time.sleep(0.05)
        left = s.update() or left
    if s.taken == 0:  # unless something else on the machine holds a core right now
        assert left and s.max_threads() == cpus
