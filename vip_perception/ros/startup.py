"""How long the node's start-up took, phase by phase, so a slow start names its cause.

Why: "the first result came 25 s after the launch" is not actionable; "kernels 23.1 s" is (the
native kernels were compiled because no cached build matched). The phases, in order:

  imports      process start -> the node begins configuring: interpreter, imports (rclpy,
               torch), rclpy init, node creation and parameter declaration. Only the first
               node of a process has it: a later one (a lifecycle node configured again, a
               harness that hosts several nodes) started long after the process did
  kernels      the native ViP kernels built or loaded (``fused.native``); ~0 once cached
  bank_load    manifest, checksums, weights, fused modules, backend sessions
  engine       engine construction and warm-up (every member run once per profiled thread
               count, so the first frame pays no first-call cost)
  calibration  every (member, threads) option run a few times, paced like frames, to seed the
               slowdown estimate with this machine's speed (``runtime.calibration``; parameter
               ``calibrate_on_start``); None when it is off

Everything expensive happens here, before the first frame: nothing is loaded lazily later.
No rclpy: the node measures, this module keeps and formats the numbers.
"""
from __future__ import annotations

import os
import time

PHASES = ("imports", "kernels", "bank_load", "engine", "calibration")
_first_node = [True]  # no StartupPhases created in this process yet


def process_age_s() -> float | None:
    """Seconds since this process started (Linux ``/proc``, 10 ms resolution); None elsewhere."""
    try:
        with open("/proc/self/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


class StartupPhases:
    """Seconds per phase (``PHASES``), measured with ``phase(name)``; ``imports`` is read from the
    process age when the object is created (the node creates it as configuring begins), for the
    first one of the process only (None, shown n/a, after that)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float | None] = dict.fromkeys(PHASES)
        self.seconds["imports"] = process_age_s() if _first_node[0] else None
        _first_node[0] = False
        self.kernels: str | None = None  # native_status(): which kernels serve and why
        self.calibration: str | None = None  # CalibrationReport.describe(), when one ran

    def phase(self, name: str):
        """Context manager adding the wall time of its block to phase ``name``."""
        if name not in PHASES:
            raise ValueError(f"unknown start-up phase {name!r}; one of {PHASES}")
        return _Timed(self.seconds, name)

    def to_dict(self) -> dict:
        """{"imports_s", "kernels_s", "bank_load_s", "engine_s", "calibration_s", "total_s",
        "kernels"}; a phase not measured (yet) is None."""
        out = {f"{k}_s": (None if v is None else round(v, 4)) for k, v in self.seconds.items()}
        done = [v for v in self.seconds.values() if v is not None]
        out["total_s"] = round(sum(done), 4) if done else None
        out["kernels"] = self.kernels
        return out

    def describe(self) -> str:
        """One log line: 'start-up 3.21 s: imports 2.10 s, kernels 0.01 s, ...'."""
        d = self.to_dict()
        parts = [f"{k} {'n/a' if d[k + '_s'] is None else format(d[k + '_s'], '.2f') + ' s'}"
                 for k in PHASES if not (k == "calibration" and d[k + "_s"] is None)]
        total = "n/a" if d["total_s"] is None else f"{d['total_s']:.2f} s"
        line = f"start-up {total}: {', '.join(parts)} ({self.kernels or 'kernels not tried'})"
        return line if self.calibration is None else f"{line}; {self.calibration}"


class _Timed:
    def __init__(self, seconds: dict, name: str):
        self.seconds, self.name = seconds, name

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds[self.name] = (self.seconds[self.name] or 0.0) + time.perf_counter() - self.t0


def build_engine(path: str, settings, engine_factory, clock, phases: StartupPhases):
    """Load the bank at ``path`` on ``settings.backend`` and build its engine, warmed up and,
    with ``settings.calibrate_on_start``, calibrated (``Engine.calibrate``; its report's line
    goes to ``phases.calibration``); returns (bank, engine). The native kernels are built or
    loaded during the bank load (when a member has fused ViP layers): their time is moved from
    ``bank_load`` to ``kernels``.
    Raises what ``load_bank`` raises (BankError naming the path and the reason)."""
    from vip_perception.bank import load_bank
    from vip_perception.fused import native

    before = native.load_seconds()
    with phases.phase("bank_load"):
        bank = load_bank(path, backend=settings.backend)
    after = native.load_seconds()
    if before is None and after is not None:  # tried during this load
        phases.seconds["bank_load"] -= after
        phases.seconds["kernels"] = after
    elif after is not None:  # already loaded earlier in this process: nothing to pay here
        phases.seconds["kernels"] = 0.0
    phases.kernels = native.native_status() if after is not None else "native kernels not needed"
    with phases.phase("engine"):
        engine = engine_factory(bank, settings, clock)
        warm_up = getattr(engine, "warm_up", None)
        if warm_up is not None:
            warm_up()
    calibrate = getattr(engine, "calibrate", None)
    if settings.calibrate_on_start and calibrate is not None:
        with phases.phase("calibration"):
            phases.calibration = calibrate().describe()
    return bank, engine
