"""The package as a ROS 2 user gets it: `colcon build` into a temporary workspace, then
`ros2 launch vip_perception vip_perception.launch.py` with the classifier and the detector
preset; results reach a subscriber in this process, SIGINT stops everything cleanly and no
process is left behind.

Real colcon, launch_ros and ros2 (required where the ROS 2 tooling's sources or a distribution
are at hand: required_groups.py); the build and launch helpers are scripts/measure_startup.py's,
so what the start-up benchmark measures is what is tested here.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("psutil")
pytest.importorskip("launch_ros", reason="launch_ros is missing: see the ros2cli/launch_ros test groups")

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("measure_startup", ROOT / "scripts" / "measure_startup.py")
ms = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = ms  # dataclasses resolve the module's annotations through sys.modules
_spec.loader.exec_module(ms)

FIRST_RESULT_TIMEOUT_S = 240  # a bound for a loaded machine, not a speed claim (that is the benchmark's)


@pytest.fixture(scope="session")
def colcon_install(tmp_path_factory) -> Path:
    """The install prefix of a colcon build of this checkout (ws/install/vip_perception)."""
    line = ms.colcon_list(ROOT)
    assert line.endswith("(ros.ament_python)"), (
        f"colcon identifies the package as {line!r}: without catkin_pkg, or with a package.xml "
        "it rejects, colcon builds a plain Python package with no ament index entry")
    return ms.colcon_build(tmp_path_factory.mktemp("colcon") / "ws", ROOT)


@pytest.mark.timeout(700)
def test_colcon_install_has_the_ament_layout(colcon_install):
    share = colcon_install / "share" / "vip_perception"
    for rel in ("package.xml", "launch/vip_perception.launch.py", "config/vip_perception.yaml",
                "config/vip_perception_detector.yaml", "config/fastdds_shm_profile.xml",
                "kernels/vip_upsample.cpp", "config/banks/fashion_mnist/manifest.json",
                "config/banks/conveyor_detector/manifest.json"):
        assert (share / rel).is_file(), rel
    assert (colcon_install / "share" / "ament_index" / "resource_index" / "packages" / "vip_perception").is_file()
    for exe in ("vip_perception_node", "vip_perception_lifecycle_node", "vip_perception_camera"):
        assert (colcon_install / "lib" / "vip_perception" / exe).is_file(), exe


def _check_result(kind: str, msg) -> None:
    if type(msg).__name__ == "String":  # no vision_msgs: the JSON output
        assert msg.data.startswith("{"), msg.data[:200]
        return
    assert msg.header.frame_id == "camera"
    if kind == "classification":
        assert msg.results and all(isinstance(r.class_id, str) and r.class_id for r in msg.results)
        scores = [r.score for r in msg.results]
        assert scores == sorted(scores, reverse=True)
    else:
        for det in msg.detections:
            assert det.header == msg.header and isinstance(det.results[0].hypothesis.class_id, str)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("preset", list(ms.PRESETS))
def test_ros2_launch_delivers_results_and_sigint_stops_every_process(colcon_install, ctx, tmp_path, preset):
    params_file, topic, kind = ms.PRESETS[preset]
    params = colcon_install / "share" / "vip_perception" / "config" / params_file
    with ms.LaunchRun(colcon_install, tmp_path / "launch.log", (f"params_file:={params}",)) as run:
        _, msg = ms.wait_first_result(run, topic, kind, FIRST_RESULT_TIMEOUT_S, context=ctx)
        _check_result(kind, msg)
        commands = [" ".join(p.cmdline()) for p in run.note_children()]
        for exe in ("lib/vip_perception/vip_perception_node", "lib/vip_perception/vip_perception_camera"):
            assert any(exe in c for c in commands), (exe, commands)  # launched from the workspace
        rc, alive = run.stop(timeout=60)
        out = run.output()
    assert rc == 0, f"ros2 launch exited with {rc} after SIGINT:\n{out[-4000:]}"
    assert alive == [], f"left running after SIGINT: {[p.cmdline() for p in alive]}\n{out[-3000:]}"
    assert len(run.seen) >= 2, run.seen  # the camera and the node were both seen, and both exited
    assert "Traceback" not in out, out[-4000:]
    assert "process has died" not in out, out[-4000:]


@pytest.mark.timeout(900)
def test_ros2_launch_arguments_start_a_managed_node_in_a_namespace_with_bank_deadline_and_topic(
        colcon_install, ctx, tmp_path):
    """`ros2 launch ... managed:=true namespace:=cell1 bank:=station deadline_ms:=33.0
    image_topic:=cam/image`: the lifecycle node, taken by launch through configure and activate
    (a result arrives only from an active node), and the camera, both under /cell1 with their
    parameters from the shipped params file (its sections match any namespace), publishing and
    subscribing on the one topic, the node serving the named shipped bank at that deadline; SIGINT
    ends everything with exit 0. (One launch for both features: each costs a node start-up.)"""
    args = ("managed:=true", "namespace:=cell1", "bank:=station", "deadline_ms:=33.0", "image_topic:=cam/image")
    with ms.LaunchRun(colcon_install, tmp_path / "launch.log", args) as run:
        _, msg = ms.wait_first_result(run, "/cell1/classifications", "classification", FIRST_RESULT_TIMEOUT_S,
                                      context=ctx)
        _check_result("classification", msg)
        commands = [" ".join(p.cmdline()) for p in run.note_children()]
        rc, alive = run.stop(timeout=60)
        out = run.output()
    assert any("lib/vip_perception/vip_perception_lifecycle_node" in c for c in commands), commands
    assert rc == 0 and alive == [], out[-4000:]
    assert "unconfigured; drive it with lifecycle transitions" in out, out[-4000:]
    started = [ln for ln in out.splitlines() if "[cell1.vip_perception]: bank " in ln]
    assert started, out[-4000:]
    assert "config/banks/station (station," in started[0] and "deadline 33.0 ms" in started[0], started[0]
    assert "subscribed to /cell1/cam/image" in out, out[-4000:]
    assert "Traceback" not in out and "process has died" not in out, out[-4000:]


@pytest.mark.timeout(900)
def test_a_fresh_install_reuses_the_kernels_built_from_the_checkout(colcon_install, tmp_path):
    """The kernel cache is keyed by source and CPU, not install path: kernels built from the
    checkout (what scripts/env.sh does at install) load unchanged from the colcon install, so
    its first start compiles nothing (the built library is not rewritten). Both use the cache
    this run uses (VIP_PERCEPTION_KERNEL_CACHE or the user cache, where the suite's native
    kernels already are): a build of its own would only add a compile to the suite."""
    env = ms.launch_env(colcon_install)
    checkout = dict(os.environ, PYTHONPATH=str(ROOT))
    probe = ("from vip_perception.fused.native import kernel_build_dir, kernel_source, native_status; "
             "print(kernel_source()); print(native_status()); print(kernel_build_dir())")
    runs = []
    for run_env in (checkout, env):
        proc = subprocess.run([sys.executable, "-c", probe], env=run_env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        source, status, cache = proc.stdout.strip().splitlines()[-3:]
        libs = sorted(Path(cache).rglob("*.so")) if cache != "None" else []
        runs.append((source, status, [(p, p.stat().st_mtime_ns) for p in libs]))
    (src_a, status_a, libs_a), (src_b, status_b, libs_b) = runs
    if not status_a.startswith("native:"):
        pytest.skip(f"no native kernels on this machine ({status_a})")
    assert src_a.startswith(str(ROOT)) and src_b.startswith(str(colcon_install)), (src_a, src_b)
    assert status_b.startswith("native:"), status_b
    assert status_a.rpartition("(")[2] == status_b.rpartition("(")[2], (status_a, status_b)  # one cache tag
    assert len(libs_a) == 1 and libs_b == libs_a, (libs_a, libs_b)  # same library, not rebuilt
