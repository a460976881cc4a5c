"""scripts/env.sh's install stamp: what decides whether `scripts/demo` and `scripts/test` run
pip again. Run on a copy of the script in a scratch repository whose `.venv/bin/python` is a
stand-in that records its arguments, so nothing is installed and each case takes milliseconds.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if shutil.which("bash") is None:
    pytest.skip("bash is missing", allow_module_level=True)


@pytest.fixture
def repo(tmp_path):
    """A scratch checkout: env.sh, the files its stamp digests, and a stand-in venv python."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "env.sh", tmp_path / "scripts" / "env.sh")
    for name in ("setup.py", "requirements-ros.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text('#!/bin/sh\necho "$*" >> "$(dirname "$0")/../calls.log"\n')
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    return tmp_path


def source_env(repo: Path, dev: bool) -> tuple[str, list[str]]:
    """Source env.sh as scripts/demo (dev=False) or scripts/test (dev=True) do; its stderr and
    the pip commands the stand-in python was given."""
    log = repo / ".venv" / "calls.log"
    log.unlink(missing_ok=True)
    env = dict(os.environ, VIP_ENV_DEV="1" if dev else "0", VIP_FASHION_MNIST_DIR=str(repo),
               VIP_ROS2_TOOLING_DIR=str(repo / "no-tooling"))
    env.pop("ROS_DISTRO", None)
    proc = subprocess.run(["bash", "-c", f'source "{repo}/scripts/env.sh"'], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines() if log.exists() else []
    return proc.stderr, [c for c in calls if c.startswith("-m pip install")]


def test_a_fresh_venv_installs_and_a_second_run_does_not(repo):
    err, pips = source_env(repo, dev=False)
    assert "installing packages" in err and pips
    assert not any("requirements-dev.txt" in c for c in pips)  # the demo's set: no dev tools
    err, pips = source_env(repo, dev=False)
    assert "installing packages" not in err and pips == []


def test_the_demo_after_the_tests_reuses_their_install_and_back(repo):
    """A dev install holds everything the demo needs: alternating scripts/test and scripts/demo
    never runs pip again (each run reinstalled before: the stamps excluded each other)."""
    err, pips = source_env(repo, dev=True)
    assert "installing packages" in err and any("requirements-dev.txt" in c for c in pips)
    for dev in (False, True, False):
        err, pips = source_env(repo, dev=dev)
        assert "installing packages" not in err and pips == [], (dev, err)


def test_the_tests_after_the_demo_install_the_dev_tools(repo):
    source_env(repo, dev=False)
    err, pips = source_env(repo, dev=True)
    assert "installing packages" in err and any("requirements-dev.txt" in c for c in pips)


@pytest.mark.parametrize("changed", ["setup.py", "requirements-ros.txt", "requirements-dev.txt"])
def test_a_changed_requirement_installs_again(repo, changed):
    """The base files invalidate both installs; the dev requirements only the dev one."""
    source_env(repo, dev=True)
    with open(repo / changed, "a") as f:
        f.write("\n# changed\n")
    assert "installing packages" in source_env(repo, dev=True)[0]
    err, _ = source_env(repo, dev=False)
    assert "installing packages" not in err  # the install just made covers the demo
