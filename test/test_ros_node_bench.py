"""`vip-perception bench node` runs end to end on a tiny frame count and writes its JSON
(figures are not asserted: speed depends on the machine and its load)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("rclpy")
pytestmark = pytest.mark.timeout(180)


def test_node_bench_smoke(quick_bank, tmp_path):
    out = tmp_path / "node.json"
    proc = subprocess.run(
        [sys.executable, "-m", "vip_perception.cli", "bench", "node", "--bank", quick_bank,
         "--frames", "10", "--rate", "20", "--e2e-frames", "5", "--e2e-rate", "10",
         "--delivery-frames", "5", "--delivery-rate", "10", "--width", "320", "--height", "240",
         "--json", str(out)],
        env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    o = r["overhead"]
    assert set(o["stages_ms"]) == {"convert", "preprocess", "publish", "timing_publish"}
    assert o["frames_processed"] > 0 and o["node_overhead_ms"]["median"] > 0
    e = r["end_to_end"]
    assert e["latency_stamp_to_published_ms"]["n"] > 0
    assert set(e["stages_ms"]) == {"receive", "slot_wait", "convert", "preprocess", "selection", "actual",
                                   "postprocess", "publish", "unaccounted", "latency_minus_model"}
    assert all(v["n"] == e["latency_stamp_to_published_ms"]["n"] for v in e["stages_ms"].values())
    assert e["stages_ms"]["actual"]["median"] > 0 and e["stages_ms"]["receive"]["median"] >= 0
    assert r["executor"] in ("SingleThreadedExecutor", "MultiThreadedExecutor")
    assert "latency_minus_model_met" in r["target"]
    assert set(r["delivery"]) == {"fastdds_defaults", "fastdds_shm_profile"}
    assert r["cpu"] and "target" in r
    assert "node overhead" in proc.stdout and "minus model" in proc.stdout
