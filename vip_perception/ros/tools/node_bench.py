"""The node benchmark (`vip-perception bench node`): what the ROS node costs beyond
inference, and what DDS delivers.

Three measurements, all with the synthetic camera as a separate process publishing 640x480
bgr8 frames (by default), the node spun by the executor the node executables use
(``ros.executor.make_executor``):
  overhead     the node in this process with a preprocess-only engine (bank.preprocess, no
               model): per-frame convert (CDR parse + validation in the callback, crop and
               colour in the worker), preprocess and publish;
  end_to_end   the same with the real engine and bank: image stamp -> result published, broken
               down per stage (``ros.frame_timing.STAGES``: DDS delivery, slot wait, convert,
               preprocess, selection, model, post-processing, publish) and the non-model time
               (stamp -> published minus the model), the figure the node is judged by;
  delivery     frames sent vs received between two processes, with Fast DDS defaults and with
               the shipped shared-memory profile (config/fastdds_shm_profile.xml).
It lives with the ROS tools because it starts and subscribes to nodes (rclpy).
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from vip_perception.machine import machine_info
from vip_perception.quantiles import percentile

OVERHEAD_TARGET_MS = 2.0
NON_MODEL_TARGET_MS = 3.0  # stamp -> result published minus model time, p50


def stats(values) -> dict:
    """{"median", "p99", "n"} of ``values`` (ms); None quantiles when empty."""
    return {"median": percentile(values, 50), "p99": percentile(values, 99), "n": len(values)}


class PreprocessOnlyEngine:
    """The Engine's interface with inference taken out: the node's overhead is what remains."""

    def __init__(self, bank, settings, clock):
        from vip_perception.ros.parameters import engine_config
        self.bank = bank
        self.config = engine_config(settings)
        self.clock = clock

    def update_config(self, config):
        self.config = config

    def swap_bank(self, bank):
        self.bank = bank

    def process(self, image, capture_time, roi=None, origin=(0, 0)):
        from vip_perception.results import FrameResult, TimingRecord
        start = self.clock()
        p0 = time.perf_counter()
        self.bank.preprocess(image)  # (1, C, H, W) float32, discarded
        preprocess_ms = (time.perf_counter() - p0) * 1e3
        now = self.clock()
        timing = TimingRecord("preprocess_only", 1, 0.0, 0.0,
                              (capture_time - now) * 1e3 + self.config.deadline_ms, True, 1.0,
                              (start - capture_time) * 1e3, preprocess_ms=preprocess_ms)
        return FrameResult(0, self.bank.class_names[0], 1.0, False, timing)


def camera_cmd(frames: int, rate: float, width: int, height: int, wait_subs: int = 1) -> list[str]:
    return [sys.executable, "-m", "vip_perception.ros.camera_source", "--ros-args",
            "-p", f"rate_hz:={float(rate)}", "-p", f"max_frames:={frames}",
            "-p", f"width:={width}", "-p", f"height:={height}", "-p", "encoding:=bgr8",
            "-p", f"wait_for_subscribers:={wait_subs}"]


def run_node_against_camera(ctx, bank: str, engine_factory, frames: int, rate: float,
                            width: int, height: int, env: dict, roi=None, name="vip_perception"):
    """Start the node here and the camera as a process; return (node summary, stage log)."""
    from rclpy.parameter import Parameter

    from vip_perception.ros.executor import make_executor
    from vip_perception.ros.node import VipPerceptionNode

    overrides = [Parameter("bank", value=bank), Parameter("deadline_ms", value=50.0)]
    if roi:
        overrides.append(Parameter("roi", value=list(roi)))
    node = VipPerceptionNode(name=name, context=ctx, parameter_overrides=overrides,
                             engine_factory=engine_factory, record_stages=True)
    executor = make_executor(context=ctx)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    cam = subprocess.run(camera_cmd(frames, rate, width, height), env=env, capture_output=True,
                         text=True, timeout=60 + 3 * frames / rate)
    time.sleep(1.0)  # frames still in flight
    summary = node.close()
    executor.shutdown(timeout_sec=2.0)
    spinner.join(timeout=5.0)
    stages = list(node.perception.stage_log)
    node.destroy_node()
    if cam.returncode != 0:
        raise RuntimeError(f"camera process failed:\n{cam.stdout[-2000:]}\n{cam.stderr[-2000:]}")
    return frames, summary["cameras"][0], stages


def count_frames(seconds: float, expected: int, topic: str = "image_raw") -> int:
    """Subscriber side of a delivery run (its own process): frames received until all
    ``expected`` arrived, 2 s passed without one, or ``seconds`` ran out."""
    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from vip_perception.ros.qos import subscription_qos
    rclpy.init()
    node = Node("vip_bench_counter")
    state = {"n": 0, "last": None}

    def on_image(_msg) -> None:
        state["n"] += 1
        state["last"] = time.monotonic()

    node.create_subscription(Image, topic, on_image, subscription_qos())
    end = time.monotonic() + seconds
    while time.monotonic() < end and state["n"] < expected:
        rclpy.spin_once(node, timeout_sec=0.05)
        if state["last"] is not None and time.monotonic() - state["last"] > 2.0:
            break
    node.destroy_node()
    rclpy.try_shutdown()
    return state["n"]


def delivery(frames: int, rate: float, width: int, height: int, env: dict) -> dict:
    """Two fresh processes (camera, counting subscriber) with the given environment."""
    seconds = 8.0 + frames / rate
    counter = subprocess.Popen([sys.executable, "-m", "vip_perception.ros.tools.node_bench",
                                "count", str(seconds), str(frames)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cam = subprocess.run(camera_cmd(frames, rate, width, height), env=env, capture_output=True,
                         text=True, timeout=seconds + 30)
    out, err = counter.communicate(timeout=seconds + 30)
    if cam.returncode != 0 or counter.returncode != 0:
        raise RuntimeError(f"delivery run failed:\n{cam.stderr[-1500:]}\n{err[-1500:]}")
    received = json.loads(out.strip().splitlines()[-1])["received"]
    return {"sent": frames, "received": received, "rate_hz": rate}


@dataclass
class NodeBenchOptions:
    """Frames and camera rates of the three runs, the frame size and the bank (None: shipped)."""

    bank: str | None = None
    frames: int = 300
    rate: float = 30.0
    e2e_frames: int = 150
    e2e_rate: float = 15.0
    delivery_frames: int = 90
    delivery_rate: float = 30.0
    width: int = 640
    height: int = 480


def _environments() -> tuple[dict, dict, str]:
    """(environment with the Fast DDS profile, the same without it, note). This process's
    own participant uses the profile too."""
    from vip_perception.ros.transport import PROFILE_VARS, dds_env

    base_env = dict(os.environ)
    base_env.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 200)))
    base_env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    base_env["OMP_NUM_THREADS"] = base_env.get("OMP_NUM_THREADS", "1")
    extra, dds_note = dds_env(base_env)
    env = dict(base_env, **extra)
    os.environ.update(env)
    return env, {k: v for k, v in base_env.items() if k not in PROFILE_VARS}, dds_note


def _overhead_run(ctx, bank: str, o: NodeBenchOptions, env: dict) -> dict:
    """The node with a preprocess-only engine: per-stage cost of everything but inference."""
    sent, cam, stages = run_node_against_camera(
        ctx, bank, PreprocessOnlyEngine, o.frames, o.rate, o.width, o.height, env)
    keys = ("convert_ms", "preprocess_ms", "publish_ms", "timing_publish_ms")
    return {
        "frames_sent": sent, "frames_received": cam["received"], "frames_processed": cam["processed"],
        "stages_ms": {k[:-3]: stats([s[k] for s in stages]) for k in keys},
        "node_overhead_ms": stats([sum(s[k] for k in keys) for s in stages]),
        "note": "node_overhead = convert (CDR parse + validation in the callback, crop + colour in the "
                "worker) + preprocess + publish (classification) + timing_publish (timing JSON), per frame",
    }


def breakdown(stages: list[dict]) -> dict:
    """Per-stage stats (``frame_timing.STAGES`` and the rest) of end-to-end rows, and the
    non-model time: stamp -> result published minus the model's own time."""
    from vip_perception.ros.frame_timing import STAGES

    out = {k[:-3]: stats([s[k] for s in stages]) for k in (*STAGES, "unaccounted_ms")}
    out["latency_minus_model"] = stats([s["latency_ms"] - s["actual_ms"] for s in stages])
    return out


def _e2e_run(ctx, bank: str, o: NodeBenchOptions, env: dict) -> dict:
    """The node with the real engine on the station square: image stamp -> result published."""
    side = min(o.width, o.height)
    roi = ((o.width - side) // 2, (o.height - side) // 2, side, side)
    sent, cam, stages = run_node_against_camera(
        ctx, bank, None, o.e2e_frames, o.e2e_rate, o.width, o.height, env, roi=roi, name="vip_perception_e2e")
    return {"frames_sent": sent, "frames_received": cam["received"],
            "frames_processed": cam["processed"], "roi": list(roi),
            "latency_stamp_to_published_ms": stats([s["latency_ms"] for s in stages]),
            "engine_ms": stats([s["preprocess_ms"] + s["selection_ms"] + s["actual_ms"] + s["postprocess_ms"]
                                for s in stages]),
            "stages_ms": breakdown(stages),
            "deadline_ms": 50.0, "deadline_misses": cam["deadline_misses"],
            "member_usage": cam["member_usage"]}


def node_benchmark(o: NodeBenchOptions, say=print) -> dict:
    """Overhead run, end-to-end run, delivery runs (Fast DDS defaults vs the profile); the
    JSON-ready result."""
    from vip_perception.bank.provenance import portable_path
    from vip_perception.ros.executor import executor_kind
    from vip_perception.ros.tools.processes import resolve_bank
    from vip_perception.ros.transport import profile_path

    bank = resolve_bank(o.bank)
    env, default_env, dds_note = _environments()
    import rclpy
    import torch

    torch.set_num_threads(1)
    say(f"node bench: {o.width}x{o.height} bgr8, bank {bank}\n  {dds_note}\n  CPU: {machine_info()['cpu']}")
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        say(f"overhead run: {o.frames} frames at {o.rate:g} Hz, preprocess-only engine ...")
        overhead = _overhead_run(ctx, bank, o, env)
        say(f"e2e run: {o.e2e_frames} frames at {o.e2e_rate:g} Hz, real engine ...")
        e2e = _e2e_run(ctx, bank, o, env)
    finally:
        rclpy.try_shutdown(context=ctx)
    say(f"delivery runs: {o.delivery_frames} frames at {o.delivery_rate:g} Hz, Fast DDS defaults vs profile ...")
    deliv = {"fastdds_defaults": delivery(o.delivery_frames, o.delivery_rate, o.width, o.height, dict(default_env)),
             "fastdds_shm_profile": delivery(o.delivery_frames, o.delivery_rate, o.width, o.height, env)}
    med = overhead["node_overhead_ms"]["median"]
    profile = profile_path()
    dds_note = dds_note.replace(profile, portable_path(profile)) if profile else dds_note  # no machine paths
    non_model = e2e["stages_ms"]["latency_minus_model"]["median"]
    info = machine_info(threads=1)
    return {
        "benchmark": "node", "cpu": info["cpu"], "python": info["python"],
        "vector": info.get("vector"), "torch_threads": 1, "load_average": os.getloadavg(),
        "bank": portable_path(bank),
        "image": {"width": o.width, "height": o.height, "encoding": "bgr8"},
        "dds": dds_note, "rmw": os.environ.get("RMW_IMPLEMENTATION", "default (rmw_fastrtps_cpp)"),
        "overhead": overhead, "end_to_end": e2e, "delivery": deliv,
        "executor": executor_kind(),
        "target": {"node_overhead_median_ms_max": OVERHEAD_TARGET_MS,
                   "met": med is not None and med <= OVERHEAD_TARGET_MS,
                   "latency_minus_model_median_ms_max": NON_MODEL_TARGET_MS,
                   "latency_minus_model_met": non_model is not None and non_model <= NON_MODEL_TARGET_MS},
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def format_result(r: dict) -> str:
    """The printed summary of a ``node_benchmark`` result."""
    o, e, d = r["overhead"], r["end_to_end"], r["delivery"]
    s = o["stages_ms"]
    f = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    lines = [
        f"CPU {r['cpu']}, load {', '.join(f'{v:.2f}' for v in r['load_average'])}",
        "per-frame node overhead (no inference), ms  median / p99:",
        *(f"  {k:<12} {f(v['median'])} / {f(v['p99'])}" for k, v in s.items()),
        f"  {'total':<12} {f(o['node_overhead_ms']['median'])} / {f(o['node_overhead_ms']['p99'])}"
        f"   (target median <= {OVERHEAD_TARGET_MS} ms: {'met' if r['target']['met'] else 'NOT met'})",
        f"  frames: sent {o['frames_sent']}, received {o['frames_received']}, processed {o['frames_processed']}",
        "end to end with the real engine (image stamp -> result published), ms median / p99:",
        f"  {f(e['latency_stamp_to_published_ms']['median'])} / {f(e['latency_stamp_to_published_ms']['p99'])}"
        f"  (engine {f(e['engine_ms']['median'])} / {f(e['engine_ms']['p99'])}); sent {e['frames_sent']}, "
        f"processed {e['frames_processed']}, misses {e['deadline_misses']}, members {e['member_usage']}",
        "  per stage, ms median / p99:",
        *(f"    {k:<20} {f(v['median'])} / {f(v['p99'])}" for k, v in e["stages_ms"].items()),
        f"  stamp -> published minus model: target median <= {NON_MODEL_TARGET_MS} ms: "
        f"{'met' if r['target']['latency_minus_model_met'] else 'NOT met'} (executor {r['executor']})",
        "delivery between two processes (best effort):",
        *(f"  {k:<20} {v['received']}/{v['sent']} at {v['rate_hz']:g} Hz" for k, v in d.items()),
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # `python -m vip_perception.ros.tools.node_bench count SECONDS N`
    if len(sys.argv) == 4 and sys.argv[1] == "count":
        print(json.dumps({"received": count_frames(float(sys.argv[2]), int(sys.argv[3]))}))
        sys.exit(0)
    sys.exit("usage: vip-perception bench node --json PATH  (count SECONDS N is internal)")
