"""What the tools that start the node and camera processes share: the bank to run, the
environment both processes get (a DDS domain and the Fast DDS profile), their start and a clean
stop."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

CONFIG_REL = "config/vip_perception.yaml"


def quick_bank_cache() -> Path:
    """Where the fallback quick bank is built once: $XDG_CACHE_HOME/vip_perception/quick_bank."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "vip_perception" / "quick_bank"


def resolve_bank(requested: str | None, say=print) -> str:
    """The bank directory to use: ``requested`` (a directory, or a shipped bank's name as the
    node's ``bank`` parameter takes it; SystemExit when it holds no manifest.json), else the
    shipped bank, else (saying so) a quick bank built once into the cache."""
    from vip_perception.ros.bank_checks import default_bank_path
    from vip_perception.share import bank_directory

    if requested:
        requested = bank_directory(requested)
        if not (Path(requested) / "manifest.json").is_file():
            raise SystemExit(f"error: --bank {requested}: no manifest.json there")
        return requested
    shipped = default_bank_path()
    if (Path(shipped) / "manifest.json").is_file():
        return shipped
    cache = quick_bank_cache()
    say(f"note: the shipped bank {shipped} is missing (build it with `vip-perception bank "
        f"build --out {shipped}`); using a quick bank instead: {cache}")
    if not (cache / "manifest.json").is_file():
        say("      building the quick bank once (about a minute)...")
        proc = subprocess.run([sys.executable, "-m", "vip_perception.cli", "bank", "build",
                               "--quick", "--no-progress", "--out", str(cache),
                               "--work", str(cache) + ".work"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"error: quick bank build failed:\n{proc.stderr[-3000:]}")
    return str(cache)


def child_env() -> tuple[dict, str]:
    """(environment, note): this environment plus a DDS domain (kept when set), localhost
    discovery, the Fast DDS profile and unbuffered output; the note says which profile."""
    from vip_perception.ros.transport import dds_env

    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 200)))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    extra, why = dds_env(env)
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env, why


def sigint_reaches_children() -> None:
    """Undo an inherited "ignore SIGINT" in this process, so that the processes it starts take
    the SIGINT ``stop_process`` sends them (their final summary) instead of being killed.

    Why: a shell without job control (a script's ``cmd &``, many CI steps) starts background
    commands with SIGINT ignored, and an ignored signal stays ignored across exec; a handled one
    is reset to the default. So the process that starts the children handles SIGINT (Python's
    default: KeyboardInterrupt) and theirs is the default again. Only possible from the main
    thread (``signal.signal``); elsewhere it does nothing."""
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        signal.signal(signal.SIGINT, signal.default_int_handler)


def start_process(cmd: list[str], env: dict, log) -> subprocess.Popen:
    """Start a node or camera process, its stdout and stderr to the open file ``log``, able to
    take ``stop_process``'s SIGINT (``sigint_reaches_children``)."""
    sigint_reaches_children()
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGINT (the node prints its final summary), then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
