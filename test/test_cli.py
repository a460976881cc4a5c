"""`vip-perception` gives help for every subcommand and clear errors."""
from __future__ import annotations

import subprocess
import sys

import pytest

from vip_perception import cli


def _run(*args):
    return subprocess.run([sys.executable, "-m", "vip_perception.cli", *args],
                          capture_output=True, text=True, timeout=120)


def test_top_level_help_lists_groups():
    out = _run("--help")
    assert out.returncode == 0
    for word in ("bench", "bank", "evaluate", "demo"):
        assert word in out.stdout


@pytest.mark.parametrize("group,name", [k for k in cli.COMMANDS])
def test_every_subcommand_has_help(group, name):
    args = ([group] if group else []) + [name, "--help"]
    out = _run(*args)
    assert out.returncode == 0, out.stderr
    assert "usage: vip-perception" in out.stdout


def test_group_without_subcommand_prints_help_and_fails():
    out = _run("bank")
    assert out.returncode == 2
    assert "build" in out.stdout and "show" in out.stdout


def test_unknown_command_is_an_error():
    out = _run("frobnicate")
    assert out.returncode == 2
    assert "invalid choice" in out.stderr
