"""The required-groups gate (required_groups.py, conftest.py): a missing group fails the run."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import required_groups as rg

ROOT = Path(__file__).resolve().parents[1]


def _ok() -> str:
    return "fine"


def _broken() -> str:
    raise ModuleNotFoundError("No module named 'nothing_here'")


FAKE = (rg.Group("good", True, _ok, "-"), rg.Group("bad", True, _broken, "install it"),
        rg.Group("extra", False, _broken, "needs a distribution"))


def test_a_failing_required_probe_is_a_failure_and_an_optional_one_is_not():
    results = rg.check(FAKE)
    assert [r.ok for r in results] == [True, False, False]
    assert [r.group.name for r in rg.failures(results)] == ["bad"]
    message = rg.failure_message(results)
    assert "bad: ModuleNotFoundError: No module named 'nothing_here'" in message and "install it" in message
    summary = "\n".join(rg.summary_lines(results))
    assert "required good: fine" in summary
    assert "optional extra: not available" in summary and "needs a distribution" in summary


def test_allowed_missing_lets_a_named_required_group_go_and_says_so():
    results = rg.check(FAKE, allowed={"bad"})
    assert rg.failures(results) == []
    assert any("required bad: MISSING, allowed by VIP_TEST_ALLOW_MISSING" in line
               for line in rg.summary_lines(results))


def test_allowed_missing_parses_names_and_rejects_unknown_ones():
    assert rg.allowed_missing({}) == set()
    assert rg.allowed_missing({rg.ALLOW_ENV: " torch, fashion-mnist ,"}) == {"torch", "fashion-mnist"}
    with pytest.raises(ValueError, match="unknown required group.*vision"):
        rg.allowed_missing({rg.ALLOW_ENV: "vision"})
    optional = [g.name for g in rg.GROUPS if not g.required]
    for name in optional:  # optional groups need no permission
        with pytest.raises(ValueError, match=name):
            rg.allowed_missing({rg.ALLOW_ENV: name})


def _tooling_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "src.tar.gz").write_bytes(b"")
    (path / "build.sh").write_text("")
    return path


def test_the_ros2_tooling_is_required_where_its_sources_or_a_distribution_are(tmp_path):
    folder = _tooling_folder(tmp_path / "ros2-tooling")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert rg.tooling_sources({rg.TOOLING_ENV: str(folder)}) == folder
    assert rg.tooling_required({rg.TOOLING_ENV: str(folder)})
    assert "scripts/test builds it from" in rg.tooling_hint({rg.TOOLING_ENV: str(folder)})
    assert rg.tooling_sources({rg.TOOLING_ENV: str(empty)}) is None
    assert not rg.tooling_required({rg.TOOLING_ENV: str(empty)})
    assert rg.TOOLING_ENV in rg.tooling_hint({rg.TOOLING_ENV: str(empty)})
    assert rg.tooling_required({rg.TOOLING_ENV: str(empty), "ROS_DISTRO": "kilted"})
    assert "kilted" in rg.tooling_hint({rg.TOOLING_ENV: str(empty), "ROS_DISTRO": "kilted"})


def test_the_tooling_groups_follow_this_checkout():
    """In CI (shared/ beside the clone) they are required, so their tests cannot skip there."""
    required = rg.tooling_required()
    assert {g.name: g.required for g in rg.GROUPS if g.name in ("vision_msgs", "launch_ros", "ros2cli")} == \
        dict.fromkeys(("vision_msgs", "launch_ros", "ros2cli"), required)


def test_every_group_has_a_unique_name_and_a_fix():
    assert len(set(rg.GROUP_NAMES)) == len(rg.GROUPS)
    assert all(g.fix for g in rg.GROUPS)
    assert {"torch", "rclpy", "cv2", "onnxruntime", "native-kernels", "fashion-mnist"} <= \
        {g.name for g in rg.GROUPS if g.required}


@pytest.mark.timeout(300)
def test_a_run_without_the_dataset_stops_before_any_test(tmp_path):
    """A real pytest run with the dataset pointed at an empty directory: exit 4, the group
    named, and no test run (nothing skipped quietly)."""
    env = {k: v for k, v in os.environ.items() if k != rg.ALLOW_ENV}
    env[rg.FASHION_MNIST_ENV] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "test/test_required_groups.py::test_every_group_has_a_unique_name_and_a_fix"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    out = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, out[-3000:]
    assert f"fashion-mnist: FileNotFoundError: {tmp_path}: missing" in out, out[-3000:]
    assert "passed" not in out and "skipped" not in out, out[-3000:]
