"""Start-up phases: measured, reported as data and as one log line; the engine is built and
warmed up before the first frame, the native kernels loaded with the bank."""
from __future__ import annotations

import pytest

from vip_perception.ros.startup import PHASES, StartupPhases, build_engine, process_age_s
from vip_perception.runtime import Engine, EngineConfig

BANK = "config/banks/fashion_mnist"


class _Settings:
    backend = "torch"
    calibrate_on_start = False


def test_phases_data_and_log_line():
    p = StartupPhases()
    assert process_age_s() is None or process_age_s() > 0
    with p.phase("engine"):
        pass
    d = p.to_dict()
    assert set(d) == {f"{k}_s" for k in PHASES} | {"total_s", "kernels"}
    assert d["calibration_s"] is None and d["engine_s"] >= 0  # calibration: reserved, not yet measured
    assert "engine" in p.describe() and "calibration" not in p.describe()
    with pytest.raises(ValueError):
        p.phase("lunch")


def test_only_the_first_node_of_a_process_reports_its_imports():
    """A second node in one process (bench node's end-to-end run, a lifecycle node configured
    again) would report the process's whole age as its imports: it reports n/a instead."""
    StartupPhases()
    later = StartupPhases()
    assert later.to_dict()["imports_s"] is None and "imports n/a" in later.describe()


def test_build_engine_loads_kernels_with_the_bank_and_warms_up():
    warmed = []

    class Counting(Engine):
        def warm_up(self, bank=None):
            warmed.append(super().warm_up(bank))
            return warmed[-1]

    phases = StartupPhases()
    bank, engine = build_engine(BANK, _Settings(), lambda b, s, c: Counting(b, EngineConfig(50.0)), None, phases)
    d = phases.to_dict()
    assert engine.bank is bank and d["bank_load_s"] > 0 and d["engine_s"] > 0
    assert d["kernels_s"] is not None and d["kernels"]  # the bank has fused ViP members
    assert warmed == [sum(len(m.latency) for m in bank.members)]  # every member x thread count
    assert engine.estimator.option_factors() == {}  # warm-up runs are not observations
    assert all(m.module is not None for m in bank.members)  # materialised, nothing lazy left


def test_build_engine_calibrates_when_asked_and_reports_it():
    class Calibrating(_Settings):
        calibrate_on_start = True

    phases = StartupPhases()
    bank, engine = build_engine(BANK, Calibrating(), lambda b, s, c: Engine(b, EngineConfig(50.0)), None, phases)
    report = engine.calibration
    assert report is not None and report.options  # at least the fastest options fit 5 s
    assert {(o.member, o.threads) for o in report.options} | set(report.skipped) == \
        {(m.name, t) for m in bank.members for t in m.latency}
    assert phases.to_dict()["calibration_s"] is not None
    assert phases.calibration == report.describe() and report.describe() in phases.describe()
    assert "calibration" in phases.describe() and "observed/profiled" in phases.describe()
