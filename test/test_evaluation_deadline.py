"""Evaluation harness: report fields and plot (tiny in-memory bank), CLI on a real quick bank,
background load start/stop. No speed assertions."""
import json
import os
import subprocess
import sys

import numpy as np
import psutil
import pytest
import torch

from test_runtime_fakes import FakeBank, FakeMember
from vip_perception.evaluation.deadline import (
    POLICIES,
    EvalConfig,
    arrival_after_pass,
    evaluate,
    free_cores,
    pass_order,
)
from vip_perception.evaluation.load import BackgroundLoad
from vip_perception.evaluation.report import plot

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLICY_FIELDS = {"miss_ratio", "accuracy_all_frames", "accuracy_processed", "selection_us_p50",
                 "selection_us_p99", "member_usage", "member_counts", "misses", "skipped"}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


class Data:
    def __init__(self, n=40, seed=0):
        rng = np.random.default_rng(seed)
        self.images = rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
        self.labels = rng.integers(0, 10, n).astype(np.int64)


def tiny_bank():
    members = []
    for k, c in enumerate((2, 4)):
        m = FakeMember(f"cnn{c}", 0.8 + 0.05 * k, {1: 0.05 * (k + 1), 2: 0.04 * (k + 1)})
        torch.manual_seed(k)
        m.module = torch.nn.Sequential(torch.nn.Conv2d(1, c, 3), torch.nn.Flatten(),
                                       torch.nn.Linear(c * 26 * 26, 10)).eval()
        members.append(m)
    return FakeBank(members, name="tiny")


def check_report(rep, frames):
    assert set(rep["policies"]) == set(POLICIES)
    for name, p in rep["policies"].items():
        assert POLICY_FIELDS <= set(p), name
        assert 0.0 <= p["miss_ratio"] <= 1.0 and 0.0 <= p["accuracy_all_frames"] <= 1.0
        assert p["selection_us_p99"] >= p["selection_us_p50"] >= 0.0
        assert sum(p["member_counts"].values()) + p["skipped"] == frames
    s = rep["scenario"]
    for key in ("deadline_ms", "reference_member", "reference_p95_ms_measured", "cpu", "threads",
                "background_load", "load_pattern", "load_frames", "frames", "fps", "members"):
        assert key in s, key
    assert s["deadline_ms"] == pytest.approx(s["deadline_scale"] * s["reference_p95_ms_measured"])
    assert s["cpu"]["cpu"] and s["cpu"]["cores"] >= 1
    assert len(rep["frames_trace"]) == frames


def test_evaluate_in_memory_writes_every_field_and_plot(tmp_path):
    cfg = EvalConfig(bank="", background_load=0, load_pattern="step", frames=12, fps=500.0,
                     reference_runs=5, margin_ms=0.01, deadline_scale=3.0)
    rep = evaluate(cfg, bank=tiny_bank(), data=Data())
    check_report(rep, 12)
    # accuracy bookkeeping: a static policy's accuracy over all frames <= its processed accuracy
    p = rep["policies"]["static_smallest"]
    assert p["accuracy_all_frames"] <= p["accuracy_processed"] + 1e-12
    cal = rep["scenario"]["calibration"]  # --calibrate is the default: every option measured
    assert rep["scenario"]["calibrate"] is True and len(cal["options"]) + len(cal["skipped"]) == 4
    png = tmp_path / "p.png"
    plot(rep, str(png))
    assert png.stat().st_size > 10_000
    json.dumps(rep)  # serialisable as is


def test_no_calibrate_leaves_the_engine_unseeded_and_the_flag_parses():
    import argparse

    from vip_perception.commands.evaluate_deadline import add_arguments

    cfg = EvalConfig(bank="", background_load=0, frames=3, fps=500.0, reference_runs=5, margin_ms=0.01,
                     deadline_scale=3.0, calibrate=False)
    rep = evaluate(cfg, bank=tiny_bank(), data=Data())
    assert rep["scenario"]["calibrate"] is False and rep["scenario"]["calibration"] is None
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--bank", "b"]).calibrate is True
    args = parser.parse_args(["--bank", "b", "--no-calibrate", "--calibration-budget-s", "2"])
    assert args.calibrate is False and args.calibration_budget_s == 2.0
    with pytest.raises(ValueError, match="calibration-budget"):
        EvalConfig(bank="x", calibration_budget_s=0).validate()


def test_bad_scenarios_rejected():
    for kw, match in [({"frames": 0}, "frames"), ({"fps": 0}, "fps"), ({"background_load": -1}, "background-load"),
                      ({"deadline_scale": 0}, "deadline-scale"), ({"load_pattern": "ramp"}, "load-pattern"),
                      ({"settle_ms": -1}, "settle-ms"), ({"slowdown_window": 0}, "slowdown-window"),
                      ({"slowdown_window": 8, "slowdown_rank": 9}, "slowdown-rank")]:
        with pytest.raises(ValueError, match=match):
            EvalConfig(bank="x", **kw).validate()


def test_slowdown_flags_reach_the_adaptive_engine_and_the_record():
    """--slowdown-window/--slowdown-rank build the adaptive engine's estimator, and the scenario
    records the estimator that ran (so records taken under different defaults stay comparable)."""
    from vip_perception.runtime.slowdown import SlowdownEstimator

    cfg = EvalConfig(bank="", background_load=0, frames=3, fps=500.0, reference_runs=5, margin_ms=0.01,
                     deadline_scale=3.0, calibrate=False, slowdown_window=6, slowdown_rank=2)
    rep = evaluate(cfg, bank=tiny_bank(), data=Data())
    assert rep["scenario"]["slowdown"] == {"window": 6, "rank": 2, "half_life_frames": SlowdownEstimator().half_life}
    default = SlowdownEstimator()
    est = EvalConfig(bank="x").slowdown_estimator()
    assert (est.window, est.rank) == (default.window, default.rank)


def test_pass_runs_thread_counts_ascending_and_shuffles_within_each():
    """No measured run follows one that used more threads; members still vary in order."""
    import random

    options = [(i, t) for i in range(6) for t in (1, 2, 4)]
    rng = random.Random(0)
    orders = [pass_order(options, rng) for _ in range(20)]
    for order in orders:
        assert sorted(order) == sorted(options)
        assert [t for _, t in order] == sorted(t for _, t in order)
    firsts = {tuple(i for i, t in order if t == 1) for order in orders}
    assert len(firsts) > 1  # shuffled within a thread count, differently per frame


def test_arrival_after_a_pass_waits_for_the_settle_time_only_when_asked():
    # On time: one period after the previous arrival.
    assert arrival_after_pass(1.0, 0.1, now=1.02) == pytest.approx(1.1)
    # The pass overran the period: half a period after it ended.
    assert arrival_after_pass(1.0, 0.1, now=1.3) == pytest.approx(1.35)
    # The pass oversubscribed the cores: the settle time after it, whichever is later.
    assert arrival_after_pass(1.0, 0.1, now=1.02, settle=0.25) == pytest.approx(1.27)
    assert arrival_after_pass(1.0, 0.1, now=1.3, settle=0.01) == pytest.approx(1.35)


def test_free_cores_left_by_the_background_load():
    assert free_cores(1, cores=2) == 1
    assert free_cores(0, cores=2) == 2
    assert free_cores(3, cores=2) == 1  # never below one
    assert free_cores(0) == len(os.sched_getaffinity(0))


def test_engine_settings_checked_by_the_engine_config():
    """Quantile, on_no_fit and margin against the deadline follow EngineConfig.validate."""
    with pytest.raises(ValueError, match="margin_ms"):
        evaluate(EvalConfig(bank="", background_load=0, frames=2, reference_runs=5, deadline_ms=0.1,
                            margin_ms=0.2), bank=tiny_bank(), data=Data())
    with pytest.raises(ValueError, match="latency_quantile"):
        EvalConfig(bank="x", quantile="p42").engine_config(10.0)


def test_background_load_starts_and_stops():
    load = BackgroundLoad(1)
    try:
        load.start()
        pids = load.pids
        assert load.running and len(pids) == 1 and psutil.Process(pids[0]).is_running()
        assert psutil.Process(pids[0]).num_threads() == 1  # one core's worth of work
    finally:
        load.stop()
    assert not load.running and not psutil.pid_exists(pids[0])
    load.stop()  # idempotent
    with pytest.raises(ValueError, match="processes"):
        BackgroundLoad(-1)


def test_engine_end_to_end_on_a_real_bank(quick_bank):
    from vip_perception.bank import load_bank
    from vip_perception.runtime import Engine, EngineConfig

    bank = load_bank(quick_bank)
    t = [0.0]
    eng = Engine(bank, EngineConfig(deadline_ms=1e4, margin_ms=0.0, threads=1), clock=lambda: t[0])
    img = np.full((28, 28), 128, np.uint8)
    r = eng.process(img, capture_time=0.0)
    assert not r.skipped and 0 <= r.class_id < len(bank.class_names)
    assert r.class_name == bank.class_names[r.class_id]
    assert r.timing.member == max(bank.members, key=lambda m: m.val_accuracy).name  # everything fits
    eng.swap_bank(quick_bank)  # a path: loaded fully, then switched
    assert eng.bank is not bank and eng.process(img, 0.0).timing.member == r.timing.member


def test_evaluate_cli_on_a_real_bank(quick_bank, tmp_path):
    js, png = tmp_path / "d.json", tmp_path / "d.png"
    cmd = [sys.executable, "-m", "vip_perception.cli", "evaluate", "deadline", "--bank", quick_bank,
           "--deadline-scale", "1.5", "--background-load", "0", "--load-pattern", "constant", "--frames", "15",
           "--fps", "200", "--reference-runs", "10", "--json", str(js), "--plot", str(png)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rep = json.loads(js.read_text())
    check_report(rep, 15)
    assert png.stat().st_size > 10_000
    assert "adaptive" in proc.stdout and "points over all frames: adaptive " in proc.stdout


def test_summary_says_the_lead_over_best_fixed_and_the_oracles_bound():
    from vip_perception.evaluation.report import lead_line

    report = {"policies": {"adaptive": {"accuracy_all_frames": 0.9167}, "oracle": {"accuracy_all_frames": 0.9211}},
              "best_fixed_in_hindsight": {"policy": "fixed_vgg_xl.vip01@1", "accuracy_all_frames": 0.9078}}
    assert lead_line(report) == ("points over all frames: adaptive +0.9 vs best fixed; oracle +1.3 vs best fixed "
                                 "(the most any policy could lead it by); adaptive 0.4 behind the oracle")
