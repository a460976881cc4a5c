"""Start-up calibration with a fake clock, fake sleep and fake members: no wall-clock speed."""
from __future__ import annotations

import math

import numpy as np
import pytest

from test_runtime_fakes import FakeBank, FakeClock, FakeCpuLoad, Load, three_members
from vip_perception.runtime.calibration import calibrate
from vip_perception.runtime.engine import Engine, EngineConfig
from vip_perception.runtime.slowdown import SlowdownEstimator


class FakeSleep:
    def __init__(self, clock: FakeClock) -> None:
        self.clock, self.calls = clock, []

    def __call__(self, s: float) -> None:
        self.calls.append(s)
        self.clock.advance_ms(s * 1e3)


def slow_bank(factor: float = 2.0):
    """A bank whose profile is ``factor`` x too optimistic at every thread count."""
    clock, load = FakeClock(), Load()
    load.factor = {1: factor, 2: factor}
    return FakeBank(three_members(clock, load)), clock


def test_calibration_measures_every_option_and_seeds_the_ratio():
    bank, clock = slow_bank(2.0)
    est = SlowdownEstimator()
    sleep = FakeSleep(clock)
    report = calibrate(bank, est, budget_s=5.0, runs_per_option=3, gap_ms=10.0, clock=clock, sleep=sleep)
    assert len(report.options) == 6 and report.skipped == []
    assert all(o.runs == 3 for o in report.options)
    assert all(math.isclose(o.ratio, 2.0) for o in report.options)
    assert [o.profiled_p50_ms for o in report.options] == sorted(o.profiled_p50_ms for o in report.options)
    assert len(sleep.calls) == 18 and all(s == pytest.approx(0.010) for s in sleep.calls)  # paced like frames
    assert report.thread_factors == {1: pytest.approx(2.0), 2: pytest.approx(2.0)}
    assert est.factor(1) == pytest.approx(2.0) and est.factor(2) == pytest.approx(2.0)
    assert est.option_factors()[(2, 1)] == pytest.approx(2.0)
    assert report.seconds == pytest.approx(0.18 + 3 * 2 * (1.5 + 1.0 + 3.0 + 2.0 + 6.0 + 4.0) / 1e3)
    d = report.to_dict()
    assert d["median_ratio"] == pytest.approx(2.0) and len(d["options"]) == 6 and d["skipped"] == []
    assert "6 options, median ratio 2.00" in report.describe()


def test_budget_is_respected_and_the_rest_reported_skipped():
    bank, clock = slow_bank(2.0)
    est = SlowdownEstimator()
    # Each run costs 10 ms of gap plus 2x its p50; fastest first: m_small@2 (3x 12 ms),
    # m_small@1 (3x 13 ms), m_mid@2 (3x 14 ms), ... 0.12 s fits the first two and two runs more.
    report = calibrate(bank, est, budget_s=0.12, clock=clock, sleep=FakeSleep(clock))
    assert report.seconds <= 0.12
    measured = [(o.member, o.threads) for o in report.options]
    assert measured[:2] == [("m_small", 2), ("m_small", 1)]
    assert set(report.skipped) | set(measured) == {(m.name, t) for m in bank.members for t in (1, 2)}
    assert not set(report.skipped) & set(measured)
    assert ("m_large", 1) in report.skipped
    assert "skipped" in report.describe() and report.to_dict()["skipped"]


def test_thread_counts_limit_what_is_measured_and_bad_arguments_raise():
    bank, clock = slow_bank(1.0)
    report = calibrate(bank, SlowdownEstimator(), thread_counts=(1,), clock=clock, sleep=FakeSleep(clock))
    assert {o.threads for o in report.options} == {1} and report.skipped == []
    for kwargs in ({"budget_s": 0}, {"runs_per_option": 0}, {"gap_ms": -1}):
        with pytest.raises(ValueError, match="calibration"):
            calibrate(bank, SlowdownEstimator(), clock=clock, sleep=FakeSleep(clock), **kwargs)


def test_a_bank_without_input_spec_measures_nothing():
    bank, clock = slow_bank(1.0)
    bank.input_spec = None
    report = calibrate(bank, SlowdownEstimator(), clock=clock, sleep=FakeSleep(clock))
    assert report.options == [] and len(report.skipped) == 6 and "input_spec" in report.describe()


def test_seed_is_the_prior_that_observations_age_toward():
    est = SlowdownEstimator(window=4, rank=2, half_life=1.0)
    est.seed({1: 2.0}, {(0, 1): 3.0})
    assert est.factor(1) == 2.0 and est.factor(2) == 1.0 and est.option_factors() == {(0, 1): pytest.approx(3.0)}
    est.observe(1, 1.5, 1.0, option=0)  # a lucky first frame: the seed still counts as a sample
    assert est.factor(1) == pytest.approx(2.0) and est.option_factors()[(0, 1)] == pytest.approx(3.0)
    est.observe(1, 8.0, 1.0, option=0)  # a slow frame: the worst sample of a partial window
    assert est.factor(1) == pytest.approx(8.0)
    for _ in range(30):  # other thread count keeps running: the slow sample ages toward the seed
        est.observe(2, 1.0, 1.0)
    assert est.factor(1) == pytest.approx(2.0, rel=1e-3)
    assert est.priors()[0] == {1: pytest.approx(2.0)}
    slow_aging = SlowdownEstimator(window=4, rank=2, half_life=1e9)
    slow_aging.seed({1: 2.0}, {})
    for _ in range(4):  # a full window of its own: the seed no longer counts as a sample
        slow_aging.observe(1, 1.5, 1.0)
    assert slow_aging.factor(1) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="seed"):
        est.seed({1: 0.0}, {})
    est.reset()
    assert est.factor(1) == 1.0 and est.priors() == ({}, {})


def test_a_2x_optimistic_profile_is_predicted_right_after_calibration():
    """Deadline 7 ms after 1 ms margin: by the profile m_large@2 (4 ms) fits; on this machine it
    takes 8 ms and misses. After calibration the engine chooses m_mid@2 (predicted 4 ms, takes 4)."""
    cfg = EngineConfig(deadline_ms=7.0, margin_ms=1.0, latency_quantile="p50")
    image = np.zeros((28, 28), np.uint8)

    bank, clock = slow_bank(2.0)
    engine = Engine(bank, cfg, clock=clock, cpu_load=FakeCpuLoad(clock))
    first = engine.process(image, clock())
    assert (first.timing.member, first.timing.threads) == ("m_large", 2)
    assert not first.timing.deadline_met and not first.timing.calibrated

    bank, clock = slow_bank(2.0)
    engine = Engine(bank, cfg, clock=clock, cpu_load=FakeCpuLoad(clock))
    report = engine.calibrate(clock=clock, sleep=FakeSleep(clock))
    assert engine.calibration is report and len(report.options) == 6
    first = engine.process(image, clock())
    assert (first.timing.member, first.timing.threads) == ("m_mid", 2)
    assert first.timing.predicted_ms == pytest.approx(4.0) and first.timing.deadline_met
    assert first.timing.calibrated and first.timing.to_dict()["calibrated"] is True


def test_a_2x_pessimistic_profile_serves_the_member_this_machine_affords_after_calibration():
    """The other way round (a bank profiled on a slower machine kind): deadline 4 ms after 1 ms
    margin. By the profile only m_mid@2 (2 ms) fits; here m_large@2 takes 2 ms. Calibration
    measured m_large itself, so it is served before it has run live; without calibration the
    engine keeps to the profile and serves m_mid."""
    cfg = EngineConfig(deadline_ms=4.0, margin_ms=1.0, latency_quantile="p50")
    image = np.zeros((28, 28), np.uint8)

    bank, clock = slow_bank(0.5)
    engine = Engine(bank, cfg, clock=clock, cpu_load=FakeCpuLoad(clock))
    first = engine.process(image, clock())
    assert (first.timing.member, first.timing.threads) == ("m_mid", 2) and first.timing.deadline_met

    bank, clock = slow_bank(0.5)
    engine = Engine(bank, cfg, clock=clock, cpu_load=FakeCpuLoad(clock))
    engine.calibrate(clock=clock, sleep=FakeSleep(clock))
    assert engine.estimator.priors()[1][(2, 2)] == pytest.approx(0.5)
    first = engine.process(image, clock())
    assert (first.timing.member, first.timing.threads) == ("m_large", 2)
    assert first.timing.predicted_ms == pytest.approx(2.0) and first.timing.deadline_met


def test_engine_keeps_the_calibration_across_a_quantile_change_and_drops_it_on_a_bank_swap():
    bank, clock = slow_bank(2.0)
    engine = Engine(bank, EngineConfig(deadline_ms=7.0, margin_ms=1.0), clock=clock, cpu_load=FakeCpuLoad(clock))
    engine.calibrate(clock=clock, sleep=FakeSleep(clock))
    engine.update_config(EngineConfig(deadline_ms=7.0, margin_ms=1.0, latency_quantile="p50"))
    assert engine.calibration is not None
    assert engine.estimator.factor(2) == pytest.approx(2.0)  # re-seeded after the reset
    other, _ = slow_bank(1.0)
    engine.swap_bank(other)
    assert engine.calibration is None
    assert engine.estimator.option_factors() == {} and engine.estimator.factor(2) == pytest.approx(2.0)


def test_a_load_level_seed_ages_away_like_load():
    """Machine kinds differ by small factors; 100x at 2 threads is a neighbour on the cores. It is
    seeded as an observation, so the 2-thread factor ages back toward the profile and 2 threads
    are probed again, instead of being ruled out for good."""
    est = SlowdownEstimator(half_life=10.0)
    est.seed({1: 1.5, 2: 100.0}, {(0, 2): 100.0, (0, 1): 1.5})
    assert est.factor(2) == pytest.approx(100.0) and est.option_factors()[(0, 2)] == pytest.approx(100.0)
    assert est.priors() == ({1: pytest.approx(1.5)}, {(0, 1): pytest.approx(1.5)})
    for _ in range(100):
        est.observe(1, 1.5, 1.0, option=0)
    assert est.factor(2) < 1.01 and est.factor(1) == pytest.approx(1.5)


def test_a_loaded_thread_count_does_not_use_up_the_budget_of_the_other():
    """2 threads stalled 100x by a neighbour: the budget prediction is per thread count, so the
    1-thread options after a stalled 2-thread one are still measured."""
    clock, load = FakeClock(), Load()
    load.factor = {1: 1.0, 2: 100.0}
    bank = FakeBank(three_members(clock, load))
    report = calibrate(bank, SlowdownEstimator(), budget_s=1.5, clock=clock, sleep=FakeSleep(clock))
    runs = {(o.member, o.threads): o.runs for o in report.options}
    assert runs[("m_small", 1)] == runs[("m_mid", 1)] == runs[("m_large", 1)] == 3
    assert report.seconds <= 1.5 and runs.get(("m_large", 2), 0) < 3  # the budget cut the stalled one
    assert report.thread_factors[1] == pytest.approx(1.0) and report.thread_factors[2] == pytest.approx(100.0)


def test_a_calibration_beside_a_busy_process_seeds_its_thread_count_as_load():
    """A neighbour holds one of the 2 cores during calibration and 2-thread runs take 2.5x their
    profile: a ratio a machine kind could explain, so only the CPU load reading tells it is load.
    Seeded as a prior it would keep m_large@2 out after the neighbour leaves; seeded as load it
    is forgotten then, and the 1-thread ratio (the machine's) stays."""
    clock, load = FakeClock(), Load()
    load.factor = {1: 1.2, 2: 2.5}
    bank = FakeBank(three_members(clock, load))
    sensor = FakeCpuLoad(clock, cpus=2, others=1.0)
    engine = Engine(bank, EngineConfig(deadline_ms=5.0, margin_ms=0.5), clock=clock, cpu_load=sensor)
    report = engine.calibrate(clock=clock, sleep=FakeSleep(clock))
    assert report.loaded_threads == [2] and report.to_dict()["loaded_threads"] == [2]
    assert "2 thr measured beside a busy process" in report.describe()
    est = engine.estimator
    assert est.priors()[0] == {1: pytest.approx(1.2)} and est.factor(2) == pytest.approx(2.5)
    sensor.others, load.factor = 0.0, {1: 1.2, 2: 1.2}
    image = np.zeros((28, 28), np.uint8)
    timings = []
    for _ in range(12):
        timings.append(engine.process(image, clock()).timing)
        clock.advance_ms(30.0)
    assert timings[-1].threads == 2 and est.factor(2) < 1.3  # forgotten with the load
    # the same calibration without the sensor keeps 2.5 as this machine's speed
    clock, load = FakeClock(), Load()
    load.factor = {1: 1.2, 2: 2.5}
    engine = Engine(FakeBank(three_members(clock, load)), EngineConfig(deadline_ms=5.0, margin_ms=0.5,
                    sense_cpu_load=False), clock=clock, cpu_load=FakeCpuLoad(clock, others=1.0))
    report = engine.calibrate(clock=clock, sleep=FakeSleep(clock))
    assert report.loaded_threads == [] and engine.estimator.priors()[0][2] == pytest.approx(2.5)
