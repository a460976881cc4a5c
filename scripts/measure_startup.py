#!/usr/bin/env python3
"""Seconds from `ros2 launch vip_perception vip_perception.launch.py` to the first published
result, after a fresh `colcon build`, for the classifier and the detector preset.

    python scripts/measure_startup.py [--out benchmarks/startup_launch.json] [--timeout 180]

Needs the real ROS 2 tooling (colcon, launch_ros, ros2cli, vision_msgs: scripts/test builds it
into .venv) and AMENT_PREFIX_PATH naming where it is installed. The package is colcon-built
from this checkout into a new temporary workspace (the first launch after a fresh build is the
case measured); each preset is then launched with its params file, a subscriber in this process
waits for the first message on the result topic (`classifications` or `detections`), and the
launch is stopped with SIGINT. The JSON names the machine, the seconds to the first result per
preset, the nodes' log lines up to the first result with their seconds since the launch (the
node's start-up phases, where it logs them) and the native-kernel status.

test/test_ros2_launch.py uses the same helpers (colcon_build, LaunchRun), so the measured path is
the tested one.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "vip_perception"
LAUNCH_FILE = "vip_perception.launch.py"
PYVER = f"python{sys.version_info[0]}.{sys.version_info[1]}"
# preset -> (params file under share/<pkg>/config, result topic, result kind)
PRESETS = {
    "classifier": ("vip_perception.yaml", "classifications", "classification"),
    "detector": ("vip_perception_detector.yaml", "detections", "detection"),
}
STARTUP_LINE = re.compile(r"\bstart-?up\b|\bphases?\b", re.IGNORECASE)
ROS_STAMP = re.compile(r"\[(\d{9,}\.\d+)\]")  # a ROS log line's wall-clock time


def _tool(name: str) -> str:
    """A venv console script (colcon, ros2) next to this Python, else from PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def colcon_list(root: Path = ROOT) -> str:
    """colcon's line for the package, e.g. 'vip_perception\\t/path\\t(ros.ament_python)'."""
    out = subprocess.run([_tool("colcon"), "--log-base", os.devnull, "list", "--base-paths", str(root)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    lines = [ln for ln in out.splitlines() if ln.split("\t", 1)[0] == PACKAGE]
    if not lines:
        raise RuntimeError(f"colcon list --base-paths {root} does not find {PACKAGE}:\n{out}")
    return lines[0]


def colcon_build(ws: Path, root: Path = ROOT, timeout: float = 600) -> Path:
    """`colcon build` of the package from ``root`` into workspace ``ws``; returns the install
    prefix (ws/install/vip_perception). RuntimeError with the log's tail when it fails."""
    ws.mkdir(parents=True, exist_ok=True)
    cmd = [_tool("colcon"), "--log-base", str(ws / "log"), "build", "--base-paths", str(root),
           "--packages-select", PACKAGE, "--build-base", str(ws / "build"),
           "--install-base", str(ws / "install")]
    proc = subprocess.run(cmd, cwd=ws, capture_output=True, text=True, timeout=timeout)
    prefix = ws / "install" / PACKAGE
    if proc.returncode != 0 or not (prefix / "lib" / PACKAGE / "vip_perception_node").exists():
        raise RuntimeError(f"colcon build failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")
    return prefix


def launch_env(prefix: Path, environ=None) -> dict:
    """Environment for `ros2 launch` of the built package: the install prefix first on
    AMENT_PREFIX_PATH (share/, lib/<pkg>/ executables) and its site-packages on PYTHONPATH."""
    env = dict(os.environ if environ is None else environ)
    site = prefix / "lib" / PYVER / "site-packages"
    for var, path in (("AMENT_PREFIX_PATH", prefix), ("PYTHONPATH", site)):
        env[var] = os.pathsep.join([str(path)] + [p for p in env.get(var, "").split(os.pathsep) if p])
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "0")
    return env


def result_type(kind: str):
    """The message class the node publishes for ``kind`` (output_format auto): vision_msgs
    where it imports, else std_msgs/String (JSON)."""
    try:
        from vision_msgs.msg import Classification, Detection2DArray
    except ImportError:
        from std_msgs.msg import String

        return String
    return Classification if kind == "classification" else Detection2DArray


@dataclass
class LaunchRun:
    """One `ros2 launch` of the package, its output in ``log_path``; use as a context manager
    (leaving it stops the launch with SIGINT and, if anything is still alive after ``stop``'s
    bound, kills what it started)."""

    prefix: Path
    log_path: Path
    launch_args: tuple[str, ...] = ()
    proc: subprocess.Popen | None = None
    started: float = 0.0  # time.monotonic() at the launch
    wall_started: float = 0.0  # time.time() at the launch (ROS log lines carry wall time)
    seen: dict = field(default_factory=dict)  # pid -> psutil.Process of every descendant seen

    def __enter__(self) -> LaunchRun:
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in __exit__
        cmd = [_tool("ros2"), "launch", PACKAGE, LAUNCH_FILE, *self.launch_args]
        self.started, self.wall_started = time.monotonic(), time.time()
        self.proc = subprocess.Popen(cmd, env=launch_env(self.prefix), stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def note_children(self) -> list:
        """Record (and return) the launch's live descendants: the node processes."""
        import psutil

        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for k in kids:
            self.seen.setdefault(k.pid, k)
        return kids

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> tuple[int | None, list]:
        """SIGINT to `ros2 launch` (it forwards it to the nodes); returns its exit status (None
        if it did not exit within ``timeout``) and the descendants still alive then."""
        import psutil

        self.note_children()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
        _, alive = psutil.wait_procs(list(self.seen.values()), timeout=5)
        return rc, [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    def __exit__(self, *exc) -> None:
        try:
            if self.proc.poll() is None:
                self.stop(timeout=30)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the session this run started
                self.proc.wait()
            for p in self.seen.values():
                if p.is_running():
                    p.kill()
            self._log.close()


def wait_first_result(run: LaunchRun, topic: str, kind: str, timeout: float, context=None):
    """Seconds from the launch's start to the first message on ``topic`` received by a
    subscriber in this process, and that message. RuntimeError (with the launch output's tail)
    when the launch exits first or nothing arrives within ``timeout``."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    own = context is None
    if own:
        context = rclpy.Context()
        rclpy.init(context=context)
    node = rclpy.create_node(f"startup_probe_{os.getpid()}", context=context)
    got: list = []
    node.create_subscription(result_type(kind), topic,
                             lambda m: got or got.append((time.monotonic() - run.started, m)), 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        end = time.monotonic() + timeout
        while not got:
            run.note_children()
            if run.proc.poll() is not None:
                raise RuntimeError(f"ros2 launch exited ({run.proc.returncode}) before a result:\n"
                                   f"{run.output()[-4000:]}")
            if time.monotonic() > end:
                raise RuntimeError(f"no message on {topic} within {timeout} s:\n{run.output()[-4000:]}")
            executor.spin_once(timeout_sec=0.05)
        run.note_children()
        return got[0]
    finally:
        executor.shutdown()
        node.destroy_node()
        if own:
            rclpy.try_shutdown(context=context)


def node_log(text: str, wall_started: float) -> list[dict]:
    """The launch output's ROS log lines from the nodes, each with the seconds since the launch
    (from the line's own wall-clock stamp); lines about start-up are flagged ``startup``."""
    lines = []
    for ln in text.splitlines():
        stamp = ROS_STAMP.search(ln)
        if stamp and ln.startswith("[vip_perception"):
            lines.append({"s": round(float(stamp.group(1)) - wall_started, 3), "line": ln.strip(),
                          "startup": bool(STARTUP_LINE.search(ln))})
    return lines


def measure(prefix: Path, preset: str, work: Path, timeout: float) -> dict:
    params_file, topic, kind = PRESETS[preset]
    params = prefix / "share" / PACKAGE / "config" / params_file
    with LaunchRun(prefix, work / f"launch_{preset}.log", (f"params_file:={params}",)) as run:
        seconds, _ = wait_first_result(run, topic, kind, timeout)
        rc, alive = run.stop()
        text = run.output()
    return {"params_file": f"config/{params_file}", "topic": topic,
            "seconds_to_first_result": round(seconds, 3), "launch_exit": rc,
            "left_running_after_sigint": [p.pid for p in alive],
            "node_log_before_first_result": [
                entry for entry in node_log(text, run.wall_started) if entry["s"] <= seconds]}


def scrub(value, replacements: dict[str, str]):
    """``value`` with build-machine paths replaced by names (records hold no absolute paths)."""
    if isinstance(value, dict):
        return {k: scrub(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, replacements) for v in value]
    if isinstance(value, str):
        for path, name in replacements.items():
            value = value.replace(path, name)
    return value


def command_line(argv: list[str] | None) -> str:
    """How this run was started, with the kernel-cache override if one was set."""
    cache = os.environ.get("VIP_PERCEPTION_KERNEL_CACHE")
    words = ([f"VIP_PERCEPTION_KERNEL_CACHE={cache}"] if cache else []) + ["python", "scripts/measure_startup.py"]
    return " ".join(words + list(sys.argv[1:] if argv is None else argv))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "startup_launch.json"))
    ap.add_argument("--timeout", type=float, default=180.0, help="bound per preset, seconds")
    ap.add_argument("--workspace", help="colcon workspace to build into (default: a new temp dir)")
    args = ap.parse_args(argv)

    from vip_perception.fused.native import native_status
    from vip_perception.jsonfile import write_json
    from vip_perception.machine import machine_info

    t0 = time.monotonic()
    native = native_status()  # what scripts/env.sh does at install: the kernel cache is warm
    native_s = time.monotonic() - t0
    with tempfile.TemporaryDirectory(prefix="vip_startup_") as tmp:
        ws = Path(args.workspace or tmp) / "ws"
        t0 = time.monotonic()
        prefix = colcon_build(ws)
        build_s = time.monotonic() - t0
        print(f"colcon build: {build_s:.1f} s ({colcon_list()})", file=sys.stderr)
        presets = {}
        for preset in PRESETS:
            presets[preset] = measure(prefix, preset, Path(tmp), args.timeout)
            print(f"{preset}: first result {presets[preset]['seconds_to_first_result']} s after "
                  "ros2 launch", file=sys.stderr)
    record = {
        "what": "Seconds from `ros2 launch vip_perception vip_perception.launch.py params_file:=...` "
                "to the first result a subscriber in another process receives, on the first launch "
                "after a fresh colcon build",
        "command": command_line(argv),
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "native_kernels": native,
        "native_kernels_load_s": round(native_s, 2),
        "kernel_cache": os.environ.get("VIP_PERCEPTION_KERNEL_CACHE", "~/.cache/vip_perception/kernels"),
        "colcon_build_s": round(build_s, 1),
        "rmw": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp (default)"),
        "presets": presets,
    }
    cache = os.environ.get("VIP_PERCEPTION_KERNEL_CACHE")
    names = {**({cache: "<private kernel cache>"} if cache else {}), tmp: "<tmp>", str(ROOT): "<checkout>",
             **({args.workspace: "<workspace>"} if args.workspace else {}),
             os.path.expanduser("~"): "~"}
    write_json(args.out, scrub(record, names))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
