"""Faults while the node runs, over real DDS: a malformed-message flood from another process,
the bank directory deleted or corrupted, the camera going silent and coming back, a CPU hog,
SIGTERM in the middle of inference, and `bank` values that are not a valid bank.

Every wait is bounded; nothing asserts on speed except one generous bound on parameter
answers under a CPU hog (the measured figures are printed: run with -s to see them).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
torch = pytest.importorskip("torch")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.duration import Duration  # noqa: E402
from rclpy.exceptions import ParameterUninitializedException  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from vip_perception.ros import convert  # noqa: E402
from vip_perception.ros.node import VipPerceptionNode  # noqa: E402
from vip_perception.ros.transport import dds_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 30.0
pytestmark = pytest.mark.timeout(150)


@pytest.fixture(scope="module")
def bank_dir(request, tmp_path_factory) -> str:
    """A private copy of the shipped bank (or the session's quick bank when none is built)."""
    from vip_perception.bank import BankError, load_bank
    shipped = ROOT / "config" / "banks" / "fashion_mnist"
    if (shipped / "manifest.json").is_file():
        copy = tmp_path_factory.mktemp("rel_bank") / "bank"
        shutil.copytree(shipped, copy)
        try:
            load_bank(str(copy))
            return str(copy)
        except BankError:  # caught mid-rebuild: use the quick bank
            pass
    return request.getfixturevalue("quick_bank")


def member_files(bank: Path) -> list[Path]:
    manifest = json.loads((bank / "manifest.json").read_text())
    return [bank / m["file"] for m in manifest["members"]]


class Rig:
    """The node in this process, a probe that publishes frames and records outputs."""

    def __init__(self, ctx, bank: str, topic: str, name: str, **params):
        self.topic = topic
        overrides = [Parameter("bank", value=bank), Parameter("image_topics", value=[topic]),
                     Parameter("output_format", value="json"),
                     Parameter("deadline_ms", value=params.pop("deadline_ms", 2000.0))]
        overrides += [Parameter(k, value=v) for k, v in params.items()]
        self.node = VipPerceptionNode(name=name, context=ctx, parameter_overrides=overrides)
        self.probe = rclpy.create_node(f"probe_{name}", context=ctx)
        self.pub = self.probe.create_publisher(Image, topic, QoSProfile(
            depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        self.results, self.diags = [], []
        self.cond = threading.Condition()
        self.probe.create_subscription(String, "classifications", self._keep, 100)
        self.probe.create_subscription(DiagnosticArray, "/diagnostics", self._keep_diag, 50)
        self.params = AsyncParameterClient(self.probe, name)
        self.executor = MultiThreadedExecutor(num_threads=3, context=ctx)
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.wait(lambda: self.pub.get_subscription_count() > 0, "node subscription")
        self.wait(lambda: self.params.services_are_ready(), "parameter services")
        self._stop = threading.Event()
        self._feeder = None
        self.sent = 0

    def _keep(self, msg):
        d = json.loads(msg.data)
        with self.cond:
            if d.get("camera") == self.topic:
                self.results.append(d)
            self.cond.notify_all()

    def _keep_diag(self, msg):
        with self.cond:
            for st in msg.status:
                if st.name == f"{self.node.get_name()}: camera {self.topic}":
                    self.diags.append((time.monotonic(), st))
            self.cond.notify_all()

    def wait(self, pred, what, timeout=WAIT_S):
        end = time.monotonic() + timeout
        with self.cond:
            while not pred():
                if time.monotonic() > end:
                    raise AssertionError(f"timed out waiting for {what}")
                self.cond.wait(0.05)

    def frame(self, frame_id: str, age_ms: float = 0.0):
        """A valid frame stamped ``age_ms`` before now."""
        msg = convert.array_to_image(np.full((48, 64, 3), 120, np.uint8), "bgr8")
        msg.header.frame_id = frame_id
        stamp = self.probe.get_clock().now() - Duration(nanoseconds=int(age_ms * 1e6))
        msg.header.stamp = stamp.to_msg()
        return msg

    def feed(self, hz: float = 20.0, prefix: str = "valid", late_every: int = 0, late_ms: float = 0.0):
        """Valid frames in the background until stop_feed(); every ``late_every``-th one
        stamped ``late_ms`` in the past."""
        self._stop.clear()

        def loop():
            while not self._stop.is_set():
                late = late_every and self.sent % late_every == 0
                self.pub.publish(self.frame(f"{prefix}_{self.sent}", late_ms if late else 0.0))
                self.sent += 1
                time.sleep(1.0 / hz)
        self._feeder = threading.Thread(target=loop, daemon=True)
        self._feeder.start()

    def stop_feed(self):
        self._stop.set()
        if self._feeder is not None:
            self._feeder.join(timeout=5)

    def set(self, timeout=WAIT_S, **values):
        """Set parameters; returns (results, seconds until the answer)."""
        t0 = time.monotonic()
        fut = self.params.set_parameters([Parameter(k, value=v) for k, v in values.items()])
        while not fut.done():
            assert time.monotonic() - t0 < timeout, f"parameter service did not answer {values}"
            time.sleep(0.002)
        return fut.result().results, time.monotonic() - t0

    @property
    def cam(self):
        return self.node.perception.cameras[self.topic]

    def close(self):
        self.stop_feed()
        summary = self.node.close()
        self.executor.shutdown(timeout_sec=2.0)
        self.thread.join(timeout=5.0)
        self.probe.destroy_node()
        self.node.destroy_node()
        return summary


@pytest.fixture(scope="module")
def _module_rig(ctx, bank_dir):
    # Faults, not calibration, are under test here (test_ros_node covers calibration at start
    # and after a swap), and skipping it saves about a second per accepted bank swap.
    r = Rig(ctx, bank_dir, "rel_cam", "vip_rel", diagnostics_period_s=0.2, stale_after_s=0.6,
            calibrate_on_start=False)
    yield r
    r.close()


@pytest.fixture
def rig(_module_rig):
    """The module's rig, its writable parameters put back after each test (one request, so
    pairs such as margin_ms < deadline_ms are checked together)."""
    from vip_perception.ros.parameters import SPECS

    def values():  # the writable parameters that hold a value (an unset roi holds none)
        node, out = _module_rig.node, {}
        for spec in SPECS:
            if not spec.read_only:
                try:
                    out[spec.name] = node.get_parameter(spec.name).value
                except ParameterUninitializedException:
                    pass
        return out

    before = values()
    yield _module_rig
    _module_rig.stop_feed()
    now = values()
    changed = {k: v for k, v in before.items() if now.get(k) != v}
    if changed:
        res, _ = _module_rig.set(**changed)
        assert all(r.successful for r in res), [r.reason for r in res]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(dds_env(env)[0])
    return env


# ---- flood -----------------------------------------------------------------------------
def test_malformed_flood_from_another_process_valid_frames_keep_flowing(rig):
    """A second process publishes malformed images back to back on the camera's topic while
    valid frames arrive at 20 Hz; parameter changes are answered throughout."""
    before = rig.cam.snapshot(0)
    flood = subprocess.Popen([sys.executable, "-m", "vip_perception.ros.tools.flood", "--topic",
                              "rel_cam", "--seconds", "6"], env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + WAIT_S
        while rig.cam.malformed == before.malformed:  # the flood has reached the node
            assert flood.poll() is None or rig.cam.malformed > before.malformed, flood.stderr.read()
            assert time.monotonic() < end, "no malformed message reached the node"
            time.sleep(0.05)
        n_res, sent0 = len(rig.results), rig.sent
        rig.feed(hz=20.0, prefix="valid")
        answers = []
        for i in range(4):
            time.sleep(1.0)
            res, dt = rig.set(deadline_ms=2000.0 - i)
            assert res[0].successful, res[0].reason
            answers.append(dt * 1e3)
        out, err = flood.communicate(timeout=30)
    finally:
        if flood.poll() is None:
            flood.kill()
        rig.stop_feed()
    valid_sent = rig.sent - sent0
    time.sleep(0.5)
    valid = [r for r in rig.results[n_res:] if r["header"]["frame_id"].startswith("valid_")]
    malformed = rig.cam.malformed - before.malformed
    share = len(valid) / max(1, valid_sent)
    print(f"\nflood: {out.strip()}; node counted {malformed} malformed "
          f"({dict(rig.cam.malformed_reasons)}); valid frames served {len(valid)}/{valid_sent} "
          f"= {share:.0%}; parameter answers during the flood {[round(a) for a in answers]} ms")
    assert flood.returncode == 0 and "Traceback" not in err, err[-2000:]
    assert malformed > 100
    assert set(rig.cam.malformed_reasons) == {"bad_step", "size_mismatch", "unknown_encoding",
                                              "zero_size", "too_large", "bad_endianness"}
    assert valid, "no valid frame was served during the flood"
    assert all(r["header"]["frame_id"] != "malformed" for r in rig.results)
    assert rig.cam.errors == 0 and rig.node.perception._worker.is_alive()
    # After the flood, every valid frame is served again.
    n = len(rig.results)
    for i in range(3):
        rig.pub.publish(rig.frame(f"after_{i}"))
        rig.wait(lambda: len(rig.results) > n + i, "a result after the flood")
        time.sleep(0.1)


# ---- bank faults -----------------------------------------------------------------------
def test_bank_deleted_or_corrupted_while_running(rig, bank_dir, tmp_path):
    a, corrupt, bad_schema = tmp_path / "bank_a", tmp_path / "corrupt", tmp_path / "bad_schema"
    for d in (a, corrupt, bad_schema):
        shutil.copytree(bank_dir, d)
    weights = member_files(corrupt)[0]
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    manifest = json.loads((bad_schema / "manifest.json").read_text())
    manifest["members"][0].pop("file")
    (bad_schema / "manifest.json").write_text(json.dumps(manifest))
    res, _ = rig.set(bank=str(a))
    assert res[0].successful, res[0].reason
    rig.feed(hz=20.0, prefix="bank")
    try:
        rig.wait(lambda: rig.node.perception.engine.bank.path == str(a), "swap to bank A")
        # 1. The directory of the bank in use disappears: it keeps serving from memory.
        shutil.rmtree(a)
        n = len(rig.results)
        rig.wait(lambda: len(rig.results) >= n + 5, "results after the bank directory vanished")
        rejects = {}
        for why, path in (("deleted", a), ("corrupted weights", corrupt),
                          ("schema", bad_schema), ("a file", corrupt / "manifest.json"),
                          ("no manifest", tmp_path)):
            res, _ = rig.set(bank=str(path))
            assert not res[0].successful, why
            rejects[why] = res[0].reason
        assert "not a directory" in rejects["deleted"]
        assert weights.name in rejects["corrupted weights"] and "sha256" in rejects["corrupted weights"]
        assert "schema" in rejects["schema"] and "file" in rejects["schema"]
        assert "not a directory" in rejects["a file"]
        assert "no manifest.json" in rejects["no manifest"]
        assert rig.node.get_parameter("bank").value == str(a)
        assert rig.node.perception.engine.bank.path == str(a)
        n = len(rig.results)
        rig.wait(lambda: len(rig.results) >= n + 5, "results after the rejected swaps")
        # 2. A weight file of the bank in use is corrupted: reloading it is refused too.
        shutil.copytree(bank_dir, a)
        res, _ = rig.set(bank=str(a))
        assert res[0].successful  # same path, valid again
        w = member_files(a)[-1]
        w.write_bytes(b"\0" * w.stat().st_size)
        res, _ = rig.set(bank=str(a))
        assert not res[0].successful and w.name in res[0].reason
        n = len(rig.results)
        rig.wait(lambda: len(rig.results) >= n + 5, "results with the in-memory bank")
    finally:
        rig.stop_feed()
        rig.set(bank=bank_dir)
    assert rig.cam.errors == 0


def test_engine_swap_rejects_a_corrupted_bank_and_keeps_serving(bank_dir, tmp_path):
    """The same guarantee one layer down, without ROS."""
    from vip_perception.bank import BankError, load_bank
    from vip_perception.runtime import Engine, EngineConfig
    engine = Engine(load_bank(bank_dir), EngineConfig(deadline_ms=1000.0))
    bad = tmp_path / "bad"
    shutil.copytree(bank_dir, bad)
    w = member_files(bad)[0]
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(BankError) as err:
        engine.swap_bank(str(bad))
    assert w.name in str(err.value)
    with pytest.raises(BankError):
        engine.swap_bank(str(tmp_path / "gone"))
    assert engine.bank.path == bank_dir
    r = engine.process(np.zeros((28, 28), np.uint8), time.time())
    assert r.class_id is not None


# ---- camera silence --------------------------------------------------------------------
def test_camera_stops_and_comes_back_diagnostics_go_stale_and_back_to_ok(rig):
    OK, STALE = DiagnosticStatus.OK, DiagnosticStatus.STALE
    rig.set(stale_after_s=0.6)
    rig.feed(hz=20.0, prefix="live")
    try:
        t0 = time.monotonic()
        rig.wait(lambda: any(t > t0 + 0.5 and st.level == OK for t, st in rig.diags),
                 "diagnostics OK while the camera runs")
    finally:
        rig.stop_feed()
    t1 = time.monotonic()
    rig.wait(lambda: any(t > t1 and st.level == STALE for t, st in rig.diags),
             "diagnostics STALE after the camera stopped")
    stale = next(st for t, st in rig.diags if t > t1 and st.level == STALE)
    assert "no frame for" in stale.message
    rig.feed(hz=20.0, prefix="back")
    try:
        t2 = time.monotonic()
        rig.wait(lambda: any(t > t2 + 0.5 and st.level == OK for t, st in rig.diags),
                 "diagnostics OK again once the camera is back")
        n = len(rig.results)
        rig.wait(lambda: len(rig.results) > n + 3, "results once the camera is back")
    finally:
        rig.stop_feed()


# ---- CPU hog ---------------------------------------------------------------------------
def _late(st) -> int:
    """Frames a diagnostic status reports as late for their deadline: processed after it
    (deadline_misses) or already older than it when the worker got to them (dropped_stale)."""
    values = {kv.key: kv.value for kv in st.values}
    return int(values.get("deadline_misses", "0")) + int(values.get("dropped_stale", "0"))


def test_cpu_hog_misses_reported_parameter_services_answer(rig):
    """Three busy processes on this (shared) machine and a 1 ms deadline. First frames stamped
    when sent (late or not, depending on the load) while parameters change: every request is
    answered (the 200 ms target is printed, the assertion is a generous 5 s). Then frames
    stamped 1 ms before they are sent: each is past its deadline before it can reach the node,
    so late frames are guaranteed on any machine, however fast, and the node must report them
    in /diagnostics (waited for with a generous bound) with a WARN or ERROR level."""
    from vip_perception.evaluation.load import BackgroundLoad
    before = rig.cam.snapshot(0)
    answers = []
    with BackgroundLoad(3):
        for change in ({"margin_ms": 0.5}, {"deadline_ms": 1.0}):  # one at a time: margin < deadline
            res, _ = rig.set(**change)
            assert res[0].successful, res[0].reason
        t0 = time.monotonic()
        late_before = max((_late(st) for t, st in rig.diags), default=0)
        rig.feed(hz=20.0, prefix="hog")
        try:
            for i in range(10):
                time.sleep(0.3)
                res, dt = rig.set(margin_ms=0.5 if i % 2 else 0.4)
                assert res[0].successful, res[0].reason
                answers.append(dt * 1e3)
            rig.stop_feed()
            rig.feed(hz=20.0, prefix="hog_late", late_every=1, late_ms=1.0)
            rig.wait(lambda: any(t > t0 and _late(st) > late_before for t, st in rig.diags),
                     "late frames (deadline misses or stale drops) in /diagnostics", timeout=90.0)
            rig.wait(lambda: any(t > t0 and st.level in (DiagnosticStatus.WARN, DiagnosticStatus.ERROR)
                                 for t, st in rig.diags), "a WARN or ERROR diagnostic", timeout=90.0)
        finally:
            rig.stop_feed()
    cur = rig.cam.snapshot(0)
    late = (cur.misses - before.misses) + (cur.dropped_stale - before.dropped_stale)
    answers.sort()
    print(f"\nCPU hog (3 processes): parameter answers p50 {answers[len(answers) // 2]:.0f} ms, "
          f"max {answers[-1]:.0f} ms (target 200 ms); late frames {late} (misses "
          f"{cur.misses - before.misses}, dropped stale {cur.dropped_stale - before.dropped_stale})")
    assert late > 0
    assert max(answers) < 5000.0


# ---- SIGTERM during inference ----------------------------------------------------------
SLOW_NODE = r"""
import sys, time
import rclpy
from vip_perception.ros.node import VipPerceptionNode, spin_until_shutdown
from vip_perception.ros.bank_checks import default_engine_factory
from vip_perception.ros.summary import format_summary

class Slow:
    # The real engine, with each frame taking 0.5 s more: a signal lands mid-inference.
    def __init__(self, engine):
        self._engine = engine
    def __getattr__(self, name):
        return getattr(self._engine, name)
    def process(self, *a, **kw):
        print("INFERENCE_STARTED", flush=True)
        time.sleep(0.5)
        return self._engine.process(*a, **kw)

rclpy.init(args=sys.argv)
node = VipPerceptionNode(engine_factory=lambda b, s, c: Slow(default_engine_factory(b, s, c)))
sys.exit(spin_until_shutdown(node, lambda: format_summary(node.close())))
"""


def test_sigterm_during_inference_exits_cleanly_with_a_summary(rig, bank_dir):
    topic = "rel_sigterm_cam"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_NODE, "--ros-args", "-p",
                             f"bank:={bank_dir}", "-p", f"image_topics:=['{topic}']",
                             "-p", "deadline_ms:=60000.0", "-r", "__node:=vip_sigterm"],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    pub = rig.probe.create_publisher(Image, topic, 1)
    try:
        end = time.monotonic() + 60
        while not any("INFERENCE_STARTED" in ln for ln in lines):
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < end, "the node never started inference"
            pub.publish(rig.frame("sig"))
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)  # within the 0.5 s the frame takes
        rest, err = proc.communicate(timeout=30)  # also reads stdout: keep what it got
    finally:
        if proc.poll() is None:
            proc.kill()
        rig.probe.destroy_publisher(pub)
    reader.join(timeout=5)
    out = "".join(lines) + (rest or "")
    assert proc.returncode == 0, err[-3000:]
    assert "final summary" in out and f"{topic}: received" in out
    assert "Traceback" not in err + out, err[-3000:]
