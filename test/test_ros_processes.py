"""The executables as users run them: camera and node as two processes over DDS (with the
shipped Fast DDS profile), results carrying the camera's headers, a quiet shutdown with a
final summary on SIGINT and SIGTERM, and the demo end to end."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from vip_perception.ros.transport import dds_env  # noqa: E402

pytestmark = pytest.mark.timeout(150)


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(dds_env(env)[0])
    return env


def _py(module, *ros_args):
    return [sys.executable, "-m", module, "--ros-args", *ros_args]


@pytest.fixture(scope="module")
def ctx():
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_two_processes_headers_and_clean_shutdown(ctx, quick_bank, tmp_path, sig):
    topic = f"proc_cam_{sig.name.lower()}"
    env = _env()
    node = subprocess.Popen(_py("vip_perception.ros.node", "-p", f"bank:={quick_bank}",
                                "-p", f"image_topics:=['{topic}']", "-p", "deadline_ms:=5000.0",
                                "-p", "output_format:=json"),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cam = subprocess.Popen(_py("vip_perception.ros.camera_source", "-p", f"topic:={topic}",
                               "-p", "rate_hz:=10.0", "-p", "width:=320", "-p", "height:=240"),
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    probe = rclpy.create_node(f"proc_probe_{sig.name.lower()}", context=ctx)
    results, truths = [], {}
    probe.create_subscription(String, "classifications", lambda m: results.append(json.loads(m.data)), 50)
    probe.create_subscription(String, "ground_truth", lambda m: truths.setdefault(
        tuple(json.loads(m.data)["stamp"].values()), json.loads(m.data)), 50)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(probe)
    try:
        end = time.monotonic() + 90
        def enough():  # 5 results, at least one of them after the ground-truth topic matched
            mine = [r for r in results if r["camera"] == topic]
            return len(mine) >= 5 and any(tuple(r["header"]["stamp"].values()) in truths for r in mine)

        while not enough():
            assert node.poll() is None, node.communicate()[1][-3000:]
            assert cam.poll() is None, cam.communicate()[1][-3000:]
            assert time.monotonic() < end, "no results from the node process"
            ex.spin_once(timeout_sec=0.1)
        mine = [r for r in results if r["camera"] == topic]
        for r in mine:
            assert r["header"]["frame_id"] == "camera"
        matched = [r for r in mine if tuple(r["header"]["stamp"].values()) in truths]
        assert matched, "result stamps must be the camera's image stamps"
    finally:
        ex.shutdown()
        probe.destroy_node()
        node.send_signal(sig)
        cam.send_signal(sig)
        node_out, node_err = node.communicate(timeout=30)
        cam_out, cam_err = cam.communicate(timeout=30)
    assert node.returncode == 0, node_err[-3000:]
    assert cam.returncode == 0, cam_err[-3000:]
    assert "final summary" in node_out and "processed" in node_out
    assert "published" in cam_out
    assert "Traceback" not in node_err + cam_err


def test_bad_bank_is_a_message_not_a_traceback(tmp_path):
    proc = subprocess.run(_py("vip_perception.ros.node", "-p", f"bank:={tmp_path / 'missing'}"),
                          env=_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "cannot start" in proc.stderr and "missing" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_demo_runs_end_to_end(quick_bank, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vip_perception.cli", "demo", "--seconds", "3",
                           "--fps", "10", "--bank", quick_bank, "--logs", str(tmp_path)],
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "demo summary" in out and "accuracy at the station" in out and "member mix" in out
    received = int(out.split("results received by this demo")[1].split(":")[1].split()[0])
    assert received > 0, out
    assert "note: this bank was trained on dataset images" in out  # the quick bank: plain Fashion-MNIST
    assert "Traceback" not in proc.stderr


def test_only_a_bank_trained_on_station_frames_is_judged_by_the_station_accuracy(quick_bank, tmp_path):
    from vip_perception.ros.tools.demo import trained_on_station_frames
    from vip_perception.share import bank_directory

    assert trained_on_station_frames(bank_directory("station"))
    assert not trained_on_station_frames(bank_directory("fashion_mnist"))
    assert not trained_on_station_frames(quick_bank)
    assert not trained_on_station_frames(str(tmp_path))  # no manifest: no claim


def test_demo_detection_mode_end_to_end(tmp_path):
    """--task detection: belt scene, the shipped detector bank, detections scored live."""
    proc = subprocess.run([sys.executable, "-m", "vip_perception.cli", "demo", "--task", "detection",
                           "--seconds", "3", "--fps", "5", "--deadline-ms", "2000",
                           "--logs", str(tmp_path)],
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "belt scene" in out and "conveyor_detector" in out and "(detection)" in out
    assert "precision / recall at IoU 0.5" in out and "mean best IoU" in out
    assert "accuracy at the station" not in out
    scored = int(out.split("detections per frame")[1].split(" in ")[1].split()[0])
    assert scored > 0, out
    assert "Traceback" not in proc.stderr


def test_demo_plays_a_video_without_calibration_and_writes_json(quick_bank, tmp_path):
    """--video: the camera plays the file at its size; --no-calibrate reaches the node; --load
    splits the member mix by phase; --json holds the summary's figures."""
    from vip_perception.data.scene_video import write_scene_video

    video = str(tmp_path / "station.avi")
    write_scene_video(video, "station", 320, 240, 10.0, 40)
    out_json = tmp_path / "demo.json"
    proc = subprocess.run([sys.executable, "-m", "vip_perception.cli", "demo", "--seconds", "3", "--fps", "10",
                           "--bank", quick_bank, "--video", video, "--no-calibrate", "--load", "1",
                           "--json", str(out_json), "--logs", str(tmp_path / "logs")],
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert f"video {video}" in out and "320x240" in out and "start-up calibration off" in out
    d = json.loads(out_json.read_text())
    assert d["options"]["video"] == video and d["options"]["calibrate"] is False
    assert d["frame"] == [320, 240] and d["task"] == "classification"
    assert d["results"] > 0 and d["results"] == sum(p["results"] for p in d["phases"].values())
    assert d["phases"]["quiet"]["results"] > 0
    assert abs(sum(d["phases"]["quiet"]["member_share"].values()) - 1.0) < 1e-9
    assert d["station_accuracy"] is None  # a video has no ground truth
    assert d["command"].startswith("vip-perception ") and "machine" in d
    if d["phases"]["loaded"]["results"]:
        assert "under load" in out and "without load" in out
    assert "Traceback" not in proc.stderr


_REPORT_CHILD_SIGINT = """
import subprocess, sys
from vip_perception.ros.tools.processes import start_process
child = [sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)"]
if sys.argv[1] == "tool":
    proc = start_process(child, {}, sys.stdout)
else:  # what a plain Popen passes on, for comparison
    proc = subprocess.Popen(child)
proc.wait()
"""


@pytest.mark.parametrize("how", ["tool", "plain"])
def test_processes_started_from_a_background_job_still_take_sigint(how):
    """A shell without job control starts `cmd &` with SIGINT ignored, and exec keeps it ignored:
    the node and camera would then ignore the SIGINT that asks for their final summary.
    ``start_process`` hands them the default again; a plain Popen does not (the control)."""
    script = f"trap '' INT; exec {sys.executable} -c '{_REPORT_CHILD_SIGINT}' {how}"
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert out.returncode == 0, out.stderr[-2000:]
    ignored = out.stdout.strip()
    assert ignored == ("False" if how == "tool" else "True"), out.stdout + out.stderr[-2000:]
