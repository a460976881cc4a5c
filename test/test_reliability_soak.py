"""The soak's mechanics: a 21-second run of `vip-perception soak` (camera + node processes
over DDS, parameter changes, bank swaps, RSS/fd samples, report and plot) and its pure parts.
The 30-minute figure is benchmarks/soak_30min.json; this run is short (and at 320x240, 15 Hz)
because the suite shares two cores: it checks that everything is counted, not how much."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("psutil")

from vip_perception.ros.tools import soak  # noqa: E402
from vip_perception.ros.transport import dds_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(180)


def test_summary_line_is_parsed():
    """The node's own final summary (counted by CameraStats, printed by format_summary) is
    what the soak parses: the counts come back exactly."""
    from vip_perception.ros.stats import CameraStats
    from vip_perception.ros.summary import format_summary

    st = CameraStats("image_raw")
    for k in range(9):
        st.on_received(float(k))
    for k in range(5):
        st.on_processed("vgg_m", met=k != 0, latency_ms=8.0 + k, overhead_ms=0.7, skipped=False)
    st.on_processed(None, met=False, latency_ms=0.0, overhead_ms=None, skipped=True)
    st.on_malformed("bad_step")
    st.count("dropped_stale", 2)
    st.count("replaced", 3)
    st.count("errors")
    summary = {"node": "vip_perception", "bank": {"name": "x", "path": "/b"}, "uptime_s": 32.8,
               "cameras": [st.summary()]}
    text = "[INFO] noise\n" + format_summary(summary) + "\n"
    assert soak.parse_summary(text) == {
        "topic": "image_raw", "received": 9, "processed": 5, "misses": 1,
        "dropped_stale": 2, "replaced": 3, "malformed": 1, "skipped": 1, "errors": 1}
    assert soak.parse_summary(text.replace("image_raw: received", "image_raw: got")) is None
    assert soak.parse_summary("no summary") is None


def test_rss_growth_is_measured_after_warm_up():
    samples = [{"t": t, "rss_mb": rss} for t, rss in
               [(0, 50.0), (10, 90.0), (20, 100.0), (30, 103.0), (40, 102.0)]]
    g = soak.rss_growth(samples, warmup_s=20)
    assert g["ref_mb"] == 100.0 and g["final_mb"] == 102.0
    assert g["growth_pct"] == pytest.approx(2.0) and g["peak_growth_pct"] == pytest.approx(3.0)
    assert soak.rss_growth(samples[:3], warmup_s=20)["growth_pct"] is None


def test_change_plan_alternates_banks_and_includes_wrong_values():
    plan = soak.change_plan("A", "B", swap_every=3, width=640, height=480)
    changes = [next(plan) for _ in range(30)]
    banks = [c["bank"] for c, ok in changes if "bank" in c and ok]
    assert banks[:4] == ["B", "A", "B", "A"]
    assert any(not ok for _, ok in changes)
    assert {"roi": [80, 0, 480, 480]} in [c for c, _ in changes]


def test_short_soak_run_counts_everything(tmp_path, request):
    shipped = ROOT / "config" / "banks" / "fashion_mnist"
    bank = str(shipped) if (shipped / "manifest.json").is_file() else \
        request.getfixturevalue("quick_bank")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.update(dds_env(env)[0])
    report_path, plot_path = tmp_path / "soak.json", tmp_path / "soak.png"
    proc = subprocess.run(
        [sys.executable, "-m", "vip_perception.cli", "soak", "--minutes", "0.25", "--fps", "15",
         "--width", "320", "--height", "240", "--change-s", "1.0", "--swap-every", "3",
         "--sample-s", "2.0", "--warmup-s", "5", "--bank", bank, "--json", str(report_path),
         "--plot", str(plot_path), "--logs", str(tmp_path / "logs"), "--quiet"],
        env=env, capture_output=True, text=True, timeout=170)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]  # 1: a criterion failed; see below
    assert "soak summary" in proc.stdout
    r = json.loads(report_path.read_text())
    assert r["crashes"] == 0, r["crash_details"]
    assert r["exit_codes"] == {"node": 0, "camera": 0}
    f = r["frames"]
    assert f["processed"] > 0 and f["errors"] == 0 and f["camera_published"] > 0
    assert r["every_processed_frame_published"], f
    p = r["parameter_changes"]
    assert p["sent"] >= 10 and p["unanswered"] == 0 and p["unexpected_outcomes"] == []
    assert p["rejected_as_expected"] >= 1
    assert p["bank_swaps_sent"] >= 3 and p["bank_swaps_accepted"] == p["bank_swaps_sent"]
    assert len(r["samples"]) >= 5
    assert all(s["rss_mb"] > 0 and s["fds"] > 0 for s in r["samples"])
    assert r["rss"]["growth_pct"] is not None
    assert plot_path.stat().st_size > 10_000
    assert "Traceback" not in proc.stderr
