"""Shared pytest fixtures.

``quick_bank``: one small real bank for the whole session, built once with
``vip-perception bank build --quick --out <tmp>`` (set VIP_QUICK_BANK=DIR to reuse a bank
built earlier, e.g. while iterating on one test file).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

BUILD_TIMEOUT_S = 900


def pytest_configure(config):
    # Tests bound themselves with pytest.mark.timeout (pytest-timeout, from requirements-dev);
    # registered here too so a run without the plugin does not warn about an unknown mark.
    config.addinivalue_line("markers", "timeout(seconds): fail the test after this many seconds")


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
    """A private rclpy context per test module (one torch thread: DDS callbacks need the other core)."""
    import rclpy
    import torch

    torch.set_num_threads(1)
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)
