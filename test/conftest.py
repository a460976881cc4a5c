"""Shared pytest fixtures and the run's gates.

Before the first test, every required group (required_groups.py: rclpy + DDS, torch, cv2,
onnxruntime, the native kernels or their PyTorch fallback, Fashion-MNIST, the test tools, and the
real vision_msgs + launch_ros + ros2cli wherever their sources or a ROS 2 distribution are at
hand) is probed; one that cannot run stops the run with the reason and the fix, instead of letting its
tests skip. ``VIP_TEST_ALLOW_MISSING=group[,group]`` lets named groups go (reported, never a
default). The end of the run lists the groups as probed, the optional groups that skipped and
why, and every skip reason with its count.

``quick_bank``: one small real bank for the whole session, built once with
``vip-perception bank build --quick --out <tmp>`` (set VIP_QUICK_BANK=DIR to reuse a bank
built earlier, e.g. while iterating on one test file).

Every test leaves the process as it found it: torch's thread count, the environment
variables and the working directory are restored after each test.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

import required_groups

BUILD_TIMEOUT_S = 900
_GROUPS_KEY = pytest.StashKey[list]()


def pytest_configure(config):
    # Tests bound themselves with pytest.mark.timeout (pytest-timeout, from requirements-dev);
    # registered here too so a run without the plugin does not warn about an unknown mark.
    config.addinivalue_line("markers", "timeout(seconds): fail the test after this many seconds")


def pytest_sessionstart(session):
    # The ROS tests stop the processes they start (ros2 launch, nodes, cameras) with SIGINT; a
    # run started in the background by a shell without job control would pass them an ignored
    # SIGINT, and they would run on until killed.
    from vip_perception.ros.tools.processes import sigint_reaches_children

    sigint_reaches_children()
    try:
        allowed = required_groups.allowed_missing()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    results = required_groups.check(allowed=allowed)
    session.config.stash[_GROUPS_KEY] = results
    if required_groups.failures(results):
        sys.stderr.write(required_groups.failure_message(results) + "\n")
        pytest.exit("a required test group cannot run (above)", returncode=pytest.ExitCode.USAGE_ERROR)


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    results = config.stash.get(_GROUPS_KEY, None)
    if results is None:
        return
    terminalreporter.section("test groups")
    for line in required_groups.summary_lines(results):
        terminalreporter.write_line(line)
    reasons = Counter(_skip_reason(r) for r in terminalreporter.stats.get("skipped", []))
    if reasons:
        terminalreporter.write_line("skipped tests, by reason:")
        for reason, count in reasons.most_common():
            terminalreporter.write_line(f"  {count:4d}  {reason}")


@pytest.fixture(autouse=True)
def _restore_process_state():
    """Undo what a test changed in process-wide state: torch threads, os.environ, cwd."""
    torch = sys.modules.get("torch")  # never imported here for a test that does not use it
    threads = torch.get_num_threads() if torch is not None else None
    environ, cwd = dict(os.environ), os.getcwd()
    yield
    torch = sys.modules.get("torch")
    if torch is not None and threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if dict(os.environ) != environ:
        os.environ.clear()
        os.environ.update(environ)
    if os.getcwd() != cwd:
        os.chdir(cwd)


@pytest.fixture(scope="session")
def quick_bank(tmp_path_factory) -> str:
    """Path of a quick bank directory (manifest.json + weights), built once per session."""
    reuse = os.environ.get("VIP_QUICK_BANK")
    if reuse and os.path.isfile(os.path.join(reuse, "manifest.json")):
        return reuse
    base = tmp_path_factory.mktemp("quick_bank")
    out, work = str(base / "bank"), str(base / "work")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "vip_perception.cli", "bank", "build", "--quick",
                           "--no-progress", "--out", out, "--work", work],
                          capture_output=True, text=True, env=env, timeout=BUILD_TIMEOUT_S)
    if proc.returncode != 0 or not os.path.isfile(os.path.join(out, "manifest.json")):
        pytest.fail(f"quick bank build failed (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n"
                    f"{proc.stderr[-4000:]}")
    return out


@pytest.fixture(scope="module")
def ctx():
    """A private rclpy context per test module, with one torch thread while it lives (DDS
    callbacks need the other core); the thread count is restored when the module ends."""
    import rclpy
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)
        torch.set_num_threads(threads)
