"""`vip-perception bench node`: what the ROS node costs beyond inference, and what DDS delivers.

Three measurements, all with the synthetic camera as a separate process publishing 640x480
bgr8 frames (the setting the issue fixes):
  overhead     the node in this process with a preprocess-only engine (bank.preprocess, no
               model), so per-frame stage times are receive (deserialisation, timed apart with
               rclpy.serialization, + the callback), convert, preprocess and publish;
  end_to_end   the same with the real engine and bank: image stamp -> result published;
  delivery     frames sent vs received between two processes, with Fast DDS defaults and with
               the shipped shared-memory profile (config/fastdds_shm_profile.xml).
Only the node bench imports rclpy (it is the ROS layer's benchmark).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

OVERHEAD_TARGET_MS = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--bank", default=None, help="bank directory (default: the shipped one)")
    parser.add_argument("--frames", type=int, default=300, help="frames for the overhead run (default 300)")
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate for the overhead run, Hz (default 30)")
    parser.add_argument("--e2e-frames", type=int, default=150, help="frames for the end-to-end run (default 150)")
    parser.add_argument("--e2e-rate", type=float, default=15.0, help="camera rate for the end-to-end run (default 15)")
    parser.add_argument("--delivery-frames", type=int, default=90, help="frames per delivery run (default 90)")
    parser.add_argument("--delivery-rate", type=float, default=30.0, help="rate of the delivery runs (default 30)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def q(values, p) -> float | None:
    return float(np.percentile(values, p)) if len(values) else None


def stats(values) -> dict:
    return {"median": q(values, 50), "p99": q(values, 99), "n": len(values)}


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

    def process(self, image, capture_time, roi=None):
        from vip_perception.runtime import FrameResult, TimingRecord
        start = self.clock()
        self.bank.preprocess(image)  # (1, C, H, W) float32, discarded
        now = self.clock()
        timing = TimingRecord("preprocess_only", 1, 0.0, 0.0,
                              (capture_time - now) * 1e3 + self.config.deadline_ms, True, 1.0,
                              (start - capture_time) * 1e3)
        return FrameResult(0, self.bank.class_names[0], 1.0, False, timing)


def deserialize_cost(width: int, height: int, repeats: int = 200) -> dict:
    """Time rclpy's deserialisation of one bgr8 frame: the part of 'receive' that happens in
    the executor before the callback runs."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    from vip_perception.ros.convert import array_to_image
    msg = array_to_image(np.zeros((height, width, 3), np.uint8), "bgr8")
    raw = serialize_message(msg)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        deserialize_message(raw, Image)
        times.append((time.perf_counter() - t0) * 1e3)
    return stats(times)


def camera_cmd(frames: int, rate: float, width: int, height: int, wait_subs: int = 1) -> list[str]:
    return [sys.executable, "-m", "vip_perception.ros.camera_source", "--ros-args",
            "-p", f"rate_hz:={float(rate)}", "-p", f"max_frames:={frames}",
            "-p", f"width:={width}", "-p", f"height:={height}", "-p", "encoding:=bgr8",
            "-p", f"wait_for_subscribers:={wait_subs}"]


def run_node_against_camera(ctx, bank: str, engine_factory, frames: int, rate: float,
                            width: int, height: int, env: dict, roi=None, name="vip_perception"):
    """Start the node here and the camera as a process; return (node summary, stage log)."""
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from vip_perception.ros.node import VipPerceptionNode

    overrides = [Parameter("bank", value=bank), Parameter("deadline_ms", value=50.0)]
    if roi:
        overrides.append(Parameter("roi", value=list(roi)))
    node = VipPerceptionNode(name=name, context=ctx, parameter_overrides=overrides,
                             engine_factory=engine_factory, record_stages=True)
    executor = MultiThreadedExecutor(num_threads=2, context=ctx)
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
    counter = subprocess.Popen([sys.executable, "-m", "vip_perception.bench.node_bench",
                                "count", str(seconds), str(frames)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cam = subprocess.run(camera_cmd(frames, rate, width, height), env=env, capture_output=True,
                         text=True, timeout=seconds + 30)
    out, err = counter.communicate(timeout=seconds + 30)
    if cam.returncode != 0 or counter.returncode != 0:
        raise RuntimeError(f"delivery run failed:\n{cam.stderr[-1500:]}\n{err[-1500:]}")
    received = json.loads(out.strip().splitlines()[-1])["received"]
    return {"sent": frames, "received": received, "rate_hz": rate}


def run(args) -> int:
    from vip_perception.ros.demo import resolve_bank
    from vip_perception.ros.transport import PROFILE_VARS, dds_env

    bank = resolve_bank(args.bank)
    base_env = dict(os.environ)
    base_env.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 200)))
    base_env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    base_env["OMP_NUM_THREADS"] = base_env.get("OMP_NUM_THREADS", "1")
    extra, dds_note = dds_env(base_env)
    env = dict(base_env, **extra)
    default_env = {k: v for k, v in base_env.items() if k not in PROFILE_VARS}
    os.environ.update(env)  # this process's participant uses the profile too

    import rclpy
    import torch
    torch.set_num_threads(1)
    print(f"node bench: {args.width}x{args.height} bgr8, bank {bank}\n  {dds_note}\n  CPU: {cpu_name()}")
    deser = deserialize_cost(args.width, args.height)

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        print(f"overhead run: {args.frames} frames at {args.rate:g} Hz, preprocess-only engine ...")
        sent, cam, stages = run_node_against_camera(
            ctx, bank, PreprocessOnlyEngine, args.frames, args.rate, args.width, args.height, env)
        stage_stats = {k: stats([s[k] for s in stages]) for k in
                       ("callback_ms", "convert_ms", "engine_ms", "publish_ms")}
        per_frame = [s["callback_ms"] + s["convert_ms"] + s["engine_ms"] + s["publish_ms"]
                     for s in stages]
        total = [v + deser["median"] for v in per_frame]
        overhead = {
            "frames_sent": sent, "frames_received": cam["received"],
            "frames_processed": cam["processed"],
            "stages_ms": {"deserialize": deser, "callback": stage_stats["callback_ms"],
                          "convert": stage_stats["convert_ms"],
                          "preprocess": stage_stats["engine_ms"],
                          "publish": stage_stats["publish_ms"]},
            "node_overhead_ms": stats(total),
            "note": "node_overhead = deserialize (median, timed apart) + callback + convert + "
                    "preprocess + publish (classification + timing JSON), per frame",
        }
        print(f"e2e run: {args.e2e_frames} frames at {args.e2e_rate:g} Hz, real engine ...")
        side = min(args.width, args.height)
        roi = ((args.width - side) // 2, (args.height - side) // 2, side, side)
        sent2, cam2, stages2 = run_node_against_camera(
            ctx, bank, None, args.e2e_frames, args.e2e_rate, args.width, args.height, env,
            roi=roi, name="vip_perception_e2e")
        e2e = {"frames_sent": sent2, "frames_received": cam2["received"],
               "frames_processed": cam2["processed"], "roi": list(roi),
               "latency_stamp_to_published_ms": stats([s["latency_ms"] for s in stages2]),
               "engine_ms": stats([s["engine_ms"] for s in stages2]),
               "deadline_ms": 50.0, "deadline_misses": cam2["deadline_misses"],
               "member_usage": cam2["member_usage"]}
    finally:
        rclpy.try_shutdown(context=ctx)

    print(f"delivery runs: {args.delivery_frames} frames at {args.delivery_rate:g} Hz, "
          "Fast DDS defaults vs profile ...")
    deliv = {"fastdds_defaults": delivery(args.delivery_frames, args.delivery_rate, args.width,
                                          args.height, dict(default_env)),
             "fastdds_shm_profile": delivery(args.delivery_frames, args.delivery_rate,
                                             args.width, args.height, env)}
    med = overhead["node_overhead_ms"]["median"]
    result = {
        "benchmark": "node", "cpu": cpu_name(), "python": platform.python_version(),
        "torch_threads": 1, "load_average": os.getloadavg(), "bank": bank,
        "image": {"width": args.width, "height": args.height, "encoding": "bgr8"},
        "dds": dds_note, "rmw": os.environ.get("RMW_IMPLEMENTATION", "default (rmw_fastrtps_cpp)"),
        "overhead": overhead, "end_to_end": e2e, "delivery": deliv,
        "target": {"node_overhead_median_ms_max": OVERHEAD_TARGET_MS,
                   "met": med is not None and med <= OVERHEAD_TARGET_MS},
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(format_result(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def format_result(r: dict) -> str:
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
        "delivery between two processes (best effort):",
        *(f"  {k:<20} {v['received']}/{v['sent']} at {v['rate_hz']:g} Hz" for k, v in d.items()),
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # `python -m vip_perception.bench.node_bench count SECONDS N`
    if len(sys.argv) == 4 and sys.argv[1] == "count":
        print(json.dumps({"received": count_frames(float(sys.argv[2]), int(sys.argv[3]))}))
        sys.exit(0)
    sys.exit("usage: vip-perception bench node --json PATH  (count SECONDS N is internal)")
