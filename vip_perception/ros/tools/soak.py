"""`vip-perception soak`: camera source + node over DDS for minutes, with parameter changes and
bank swaps every few seconds; reports crashes, frame accounting, RSS/fd growth and latency.

Why as processes: a leak, a stuck worker or a crash shows up in the process a user runs
(``vip_perception_node``), not in an in-process test; the demo's setup is reused (Fast DDS
shared-memory profile, a DDS domain of its own). This process is only the observer: it counts
the results it receives, changes parameters through the node's parameter services (and times
each answer), samples the node's RSS and open file descriptors with psutil, and at the end
compares the node's own final summary with what it saw ("every processed frame published").
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .demo import CONFIG_REL, _stop, child_env, resolve_bank

NODE_NAME = "vip_perception"
SUMMARY_RE = re.compile(
    r"^\s+(?P<topic>\S+): received (?P<received>\d+), processed (?P<processed>\d+), deadline "
    r"misses (?P<misses>\d+), dropped stale (?P<dropped_stale>\d+), replaced (?P<replaced>\d+), "
    r"malformed (?P<malformed>\d+), skipped (?P<skipped>\d+), errors (?P<errors>\d+)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=30.0, help="run length (default 30)")
    parser.add_argument("--json", default=None, metavar="PATH", help="write the report here")
    parser.add_argument("--plot", default=None, metavar="PNG", help="RSS and latency over time")
    parser.add_argument("--bank", default=None, help="bank directory (default: the shipped one)")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--deadline-ms", type=float, default=50.0)
    parser.add_argument("--change-s", type=float, default=5.0,
                        help="seconds between parameter changes (default 5)")
    parser.add_argument("--swap-every", type=int, default=3,
                        help="every Nth change is a bank swap (default 3)")
    parser.add_argument("--sample-s", type=float, default=10.0,
                        help="seconds between RSS / fd samples (default 10)")
    parser.add_argument("--warmup-s", type=float, default=None,
                        help="RSS growth is measured from here (default: 120 s, at most a "
                             "quarter of the run)")
    parser.add_argument("--logs", default=None, help="directory for the processes' logs")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


@dataclass
class Change:
    """One parameter request and its answer."""
    t: float
    params: dict
    expect_ok: bool
    answered: bool = False
    ok: bool | None = None
    reason: str = ""
    answer_ms: float | None = None


@dataclass
class Observer:
    """Everything the soak sees from outside the node."""
    results: int = 0             # classifications received (published by the node)
    skipped_timing: int = 0      # timing records of frames the engine skipped
    timing: int = 0
    window: list = field(default_factory=list)   # stamp -> result latencies since the last sample
    diag: dict = field(default_factory=dict)     # the node's latest camera diagnostics

    def on_result(self, _msg) -> None:
        self.results += 1

    def on_timing(self, msg) -> None:
        d = json.loads(msg.data)
        self.timing += 1
        if d.get("skipped"):
            self.skipped_timing += 1
            return
        self.window.append(float(d.get("latency_ms", 0.0)))

    def on_diag(self, msg) -> None:
        for st in msg.status:
            if st.name.startswith(NODE_NAME + ": camera"):
                level = st.level[0] if isinstance(st.level, bytes) else int(st.level)
                self.diag = {kv.key: kv.value for kv in st.values} | {"level": level}

    def diag_counters(self) -> dict:
        d = self.diag
        return {"diag_level": d.get("level"), **{f"node_{k}": int(d[k]) for k in (
            "received", "processed", "deadline_misses", "dropped_stale") if k in d}}


def change_plan(bank_a: str, bank_b: str, swap_every: int, width: int, height: int):
    """An endless cycle of parameter requests: deadline, quantile, ROI and margin changes, a
    wrong value that must be rejected, and every ``swap_every``-th one a bank swap A <-> B."""
    side = min(width, height)
    roi_square = [(width - side) // 2, (height - side) // 2, side, side]
    others = [({"deadline_ms": 40.0}, True), ({"latency_quantile": "p99"}, True),
              ({"roi": [0, 0, width, height]}, True), ({"deadline_ms": -1.0}, False),
              ({"margin_ms": 2.0}, True), ({"latency_quantile": "p95"}, True),
              ({"roi": roi_square}, True), ({"deadline_ms": 50.0}, True),
              ({"margin_ms": 1.0}, True), ({"bank": "/nonexistent/bank"}, False)]
    banks = [bank_b, bank_a]
    i = j = k = 0
    while True:
        i += 1
        if swap_every > 0 and i % swap_every == 0:
            yield {"bank": banks[k % 2]}, True
            k += 1
        else:
            yield others[j % len(others)]
            j += 1


def collect_answers(pending: list, give_up_s: float = 30.0) -> None:
    """Record the answers that arrived; forget requests older than ``give_up_s``."""
    for item in list(pending):
        change, fut, sent = item
        if fut.done():
            pending.remove(item)
            change.answered, change.answer_ms = True, (time.monotonic() - sent) * 1e3
            res = fut.result().results[0]
            change.ok, change.reason = bool(res.successful), res.reason
        elif time.monotonic() - sent > give_up_s:
            pending.remove(item)  # unanswered: counted in the report


def sample_process(pid: int) -> dict:
    import psutil
    p = psutil.Process(pid)
    with p.oneshot():
        return {"rss_mb": p.memory_info().rss / 2**20, "fds": p.num_fds(),
                "threads": p.num_threads(), "cpu_s": sum(p.cpu_times()[:2])}


def parse_summary(text: str) -> dict | None:
    """The node's final summary line for its camera (None when it printed none)."""
    for line in text.splitlines():
        m = SUMMARY_RE.match(line)
        if m:
            return {k: (v if k == "topic" else int(v)) for k, v in m.groupdict().items()}
    return None


def rss_growth(samples: list[dict], warmup_s: float) -> dict:
    """Growth of RSS after warm-up: last sample and peak against the first one past warm-up."""
    after = [s for s in samples if s["t"] >= warmup_s]
    if len(after) < 2:
        return {"ref_mb": None, "final_mb": None, "growth_mb": None, "growth_pct": None,
                "peak_growth_pct": None,
                "samples_after_warmup": len(after)}
    ref = after[0]["rss_mb"]
    return {"ref_mb": ref, "final_mb": after[-1]["rss_mb"],
            "growth_mb": after[-1]["rss_mb"] - ref,
            "growth_pct": 100.0 * (after[-1]["rss_mb"] - ref) / ref,
            "peak_growth_pct": 100.0 * (max(s["rss_mb"] for s in after) - ref) / ref,
            "samples_after_warmup": len(after)}


def _quantile(values, q):
    import numpy as np
    return float(np.percentile(values, q)) if len(values) else None


def run(args) -> int:
    report = soak(args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    if args.plot:
        plot(report, args.plot)
    print(format_report(report))
    return 0 if report["passed"] else 1


def soak(args) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    from std_msgs.msg import String

    from vip_perception.share import share_path

    say = (lambda *_: None) if args.quiet else (lambda s: print(s, flush=True))
    duration = args.minutes * 60.0
    warmup = args.warmup_s if args.warmup_s is not None else min(120.0, duration / 4)
    config = share_path(CONFIG_REL)
    source_bank = str(Path(resolve_bank(args.bank, say)).resolve())
    logs = Path(args.logs or tempfile.mkdtemp(prefix="vip_soak_"))
    logs.mkdir(parents=True, exist_ok=True)
    # Two private copies: swapping A <-> B is a full load each time, and a rebuild of the
    # source bank during the run cannot turn a swap into a rejection.
    bank_a, bank_b = str(logs / "bank_a"), str(logs / "bank_b")
    for copy in (bank_a, bank_b):
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(source_bank, copy)
    env, dds_note = child_env()
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "1")
    os.environ.update({k: v for k, v in env.items() if k.startswith(("ROS_", "FAST"))})

    side = min(args.width, args.height)
    roi = f"[{(args.width - side) // 2}, {(args.height - side) // 2}, {side}, {side}]"
    node_cmd = [sys.executable, "-m", "vip_perception.ros.node", "--ros-args", "--params-file",
                str(config), "-p", f"bank:={bank_a}", "-p", f"roi:={roi}",
                "-p", f"deadline_ms:={float(args.deadline_ms)}"]
    cam_cmd = [sys.executable, "-m", "vip_perception.ros.camera_source", "--ros-args",
               "--params-file", str(config), "-p", f"rate_hz:={float(args.fps)}",
               "-p", f"width:={args.width}", "-p", f"height:={args.height}",
               "-p", "wait_for_subscribers:=1"]
    say(f"vip-perception soak: {args.minutes:g} min, {args.width}x{args.height} at {args.fps:g} "
        f"Hz, a parameter change every {args.change_s:g} s (a bank swap every "
        f"{args.swap_every} changes), RSS/fds every {args.sample_s:g} s, warm-up {warmup:g} s")
    say(f"  bank {source_bank} (copies A and B under the logs); DDS domain "
        f"{env['ROS_DOMAIN_ID']}, {dds_note}; logs {logs}")

    ctx = rclpy.Context()
    rclpy.init(context=ctx, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    mon = rclpy.create_node("vip_perception_soak", context=ctx)
    obs = Observer()
    mon.create_subscription(String, "classifications", obs.on_result, 100)
    mon.create_subscription(String, "timing", obs.on_timing, 100)
    mon.create_subscription(DiagnosticArray, "/diagnostics", obs.on_diag, 10)
    client = AsyncParameterClient(mon, NODE_NAME)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(mon)

    node_log, cam_log = open(logs / "node.log", "w"), open(logs / "camera.log", "w")
    node = subprocess.Popen(node_cmd, env=env, stdout=node_log, stderr=subprocess.STDOUT)
    # The camera starts once the node's result publisher is in the graph, so the first result
    # is not lost to discovery (the accounting below compares counts exactly).
    until = time.monotonic() + 120.0
    while (mon.count_publishers("/classifications") == 0 and node.poll() is None
           and time.monotonic() < until):
        executor.spin_once(timeout_sec=0.1)
    for _ in range(10):
        executor.spin_once(timeout_sec=0.1)
    camera = subprocess.Popen(cam_cmd, env=env, stdout=cam_log, stderr=subprocess.STDOUT)
    plan = change_plan(bank_a, bank_b, args.swap_every, args.width, args.height)
    changes: list[Change] = []
    pending: list[tuple[Change, object, float]] = []
    samples: list[dict] = []
    crashes: list[str] = []
    start = time.monotonic()
    first_result = None
    next_change = next_sample = None
    stopped_early = None
    last_loop, gaps = time.monotonic(), []  # a long gap = this whole machine stalled
    try:
        while True:
            executor.spin_once(timeout_sec=0.02)
            now = time.monotonic()
            if now - last_loop > 2.0:
                gaps.append({"t": round(now - start, 1), "seconds": round(now - last_loop, 1)})
            last_loop = now
            t = now - start
            for proc, name in ((node, "node"), (camera, "camera")):
                if proc.poll() is not None and stopped_early is None:
                    crashes.append(f"{name} exited with rc {proc.returncode} at {t:.1f} s")
                    stopped_early = name
            if stopped_early:
                break
            if first_result is None:
                if obs.results:
                    first_result = t
                    start_run = now  # the clock of the run starts at the first result
                    next_change, next_sample = now + args.change_s, now
                    say(f"[{t:6.1f} s] first result; soak clock starts")
                elif t > 120:
                    crashes.append("no result within 120 s of start")
                    break
                continue
            t = now - start_run
            collect_answers(pending)
            if now >= next_change and t < duration - 1.0 and client.services_are_ready():
                params, expect = next(plan)
                change = Change(round(t, 3), params, expect)
                fut = client.set_parameters([Parameter(k, value=v) for k, v in params.items()])
                changes.append(change)
                pending.append((change, fut, time.monotonic()))
                while next_change <= now:  # after a stall: resume the cadence, no burst
                    next_change += args.change_s
            if now >= next_sample:
                s = {"t": round(t, 2), **sample_process(node.pid),
                     "camera_rss_mb": sample_process(camera.pid)["rss_mb"],
                     "results": obs.results,
                     "latency_ms_p50": _quantile(obs.window, 50),
                     "latency_ms_p95": _quantile(obs.window, 95),
                     "latency_n": len(obs.window), **obs.diag_counters()}
                obs.window = []
                samples.append(s)
                say(f"[{t:6.1f} s] node RSS {s['rss_mb']:.1f} MB, fds {s['fds']}, threads "
                    f"{s['threads']}, results {obs.results}, latency p50 "
                    f"{s['latency_ms_p50'] or float('nan'):.1f} ms, changes {len(changes)}")
                while next_sample <= now:
                    next_sample += args.sample_s
            if t >= duration:
                break
    except KeyboardInterrupt:
        crashes.append("interrupted by the user")
    finally:
        run_s = (time.monotonic() - start_run) if first_result is not None else 0.0
        until = time.monotonic() + 10.0  # answers still in flight
        while pending and time.monotonic() < until and not stopped_early:
            executor.spin_once(timeout_sec=0.05)
            collect_answers(pending)
        _stop(camera)
        quiet_until = time.monotonic() + 2.0  # results still in flight
        while time.monotonic() < quiet_until:
            executor.spin_once(timeout_sec=0.05)
        final_sample = sample_process(node.pid) if node.poll() is None else None
        _stop(node, timeout=30.0)
        quiet_until = time.monotonic() + 0.5
        while time.monotonic() < quiet_until:
            executor.spin_once(timeout_sec=0.05)
        executor.shutdown()
        mon.destroy_node()
        ctx.try_shutdown()
        node_log.close()
        cam_log.close()
    report = build_report(args, logs, bank_a, bank_b, warmup, run_s, first_result, obs, changes,
                          samples, crashes, node, camera, final_sample)
    report["observer_stalls"] = gaps  # seconds this process did not run (machine busy)
    return report


def build_report(args, logs, bank_a, bank_b, warmup, run_s, first_result, obs, changes,
                 samples, crashes, node, camera, final_sample) -> dict:
    node_text = (logs / "node.log").read_text(errors="replace")
    cam_text = (logs / "camera.log").read_text(errors="replace")
    summary = parse_summary(node_text)
    published = re.findall(r"vip_perception_camera: published (\d+) frames", cam_text)
    tracebacks = node_text.count("Traceback") + cam_text.count("Traceback")
    if node.returncode not in (0, None) and not any(c.startswith("node") for c in crashes):
        crashes.append(f"node exited with rc {node.returncode} on SIGINT")
    if tracebacks:
        crashes.append(f"{tracebacks} traceback(s) in the logs")
    if summary is None:
        crashes.append("node printed no final summary")
    answered = [c for c in changes if c.answered]
    answer_ms = [c.answer_ms for c in answered]
    swaps = [c for c in changes if "bank" in c.params and c.expect_ok]
    wrong = [c for c in answered if c.ok != c.expect_ok]
    growth = rss_growth(samples, warmup)
    unanswered = [c for c in changes if not c.answered and c.t < run_s - 30.0]  # not in flight
    processed = summary["processed"] if summary else None
    every_published = processed is not None and processed == obs.results
    passed = (not crashes and every_published and growth["growth_pct"] is not None
              and growth["growth_pct"] <= 5.0 and not wrong and not unanswered)
    return {
        "command": "vip-perception soak " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["soak"]
                                                    else sys.argv[1:]),
        "config": {"minutes": args.minutes, "fps": args.fps, "width": args.width,
                   "height": args.height, "deadline_ms": args.deadline_ms,
                   "change_s": args.change_s, "swap_every": args.swap_every,
                   "sample_s": args.sample_s, "warmup_s": warmup, "bank": args.bank or "shipped",
                   "bank_a": bank_a,
                   "bank_b": bank_b, "logs": str(logs)},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "run_s": round(run_s, 1),
        "first_result_after_s": first_result,
        "crashes": len(crashes),
        "crash_details": crashes,
        "exit_codes": {"node": node.returncode, "camera": camera.returncode},
        "frames": {
            "camera_published": int(published[-1]) if published else None,
            "node_received": summary and summary["received"],
            "processed": processed,
            "results_received_by_soak": obs.results,
            "deadline_misses": summary and summary["misses"],
            "dropped_stale": summary and summary["dropped_stale"],
            "replaced_by_newer": summary and summary["replaced"],
            "malformed": summary and summary["malformed"],
            "skipped": summary and summary["skipped"],
            "errors": summary and summary["errors"],
        },
        "every_processed_frame_published": every_published,
        "parameter_changes": {
            "sent": len(changes), "answered": len(answered), "unanswered": len(unanswered),
            "accepted": sum(1 for c in answered if c.ok),
            "rejected_as_expected": sum(1 for c in answered if not c.ok and not c.expect_ok),
            "unexpected_outcomes": [asdict(c) for c in wrong][:20],
            "answer_ms_p50": _quantile(answer_ms, 50), "answer_ms_p95": _quantile(answer_ms, 95),
            "answer_ms_max": max(answer_ms) if answer_ms else None,
            "bank_swaps_sent": len(swaps),
            "bank_swaps_accepted": sum(1 for c in swaps if c.ok),
            "bank_swap_answer_ms_p50": _quantile([c.answer_ms for c in swaps if c.answered], 50),
            "other_answer_ms_p50": _quantile([c.answer_ms for c in answered
                                              if "bank" not in c.params], 50),
        },
        "rss": growth,
        "fds": {"first": samples[0]["fds"] if samples else None,
                "last": samples[-1]["fds"] if samples else None,
                "max": max((s["fds"] for s in samples), default=None)},
        "final_sample": final_sample,
        "samples": samples,
        "change_log": [{"t": c.t, "params": c.params, "ok": c.ok, "answer_ms": c.answer_ms}
                       for c in changes],
        "passed": bool(passed),
    }


def plot(report: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = report["samples"]
    t = [x["t"] / 60.0 for x in s]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    ax1.plot(t, [x["rss_mb"] for x in s], "o-", ms=3, label="node RSS")
    ref = report["rss"]["ref_mb"]
    if ref:
        ax1.axhline(ref * 1.05, color="r", ls=":", lw=1, label="+5% of RSS after warm-up")
    ax1.axvline(report["config"]["warmup_s"] / 60.0, color="gray", ls="--", lw=1,
                label="end of warm-up")
    ax1.set_ylabel("RSS (MB)")
    ax1b = ax1.twinx()
    ax1b.plot(t, [x["fds"] for x in s], color="tab:green", lw=1, label="open fds")
    ax1b.set_ylabel("open fds", color="tab:green")
    ax1.legend(loc="lower right", fontsize=8)
    nan = float("nan")
    ax2.plot(t, [nan if x["latency_ms_p50"] is None else x["latency_ms_p50"] for x in s],
             label="p50")
    ax2.plot(t, [nan if x["latency_ms_p95"] is None else x["latency_ms_p95"] for x in s],
             label="p95")
    for c in report["change_log"]:
        if "bank" in c["params"] and c["ok"]:
            ax2.axvline(c["t"] / 60.0, color="gray", lw=0.3, alpha=0.5)
    ax2.set_ylabel("stamp -> result (ms)")
    ax2.set_xlabel("minutes (grey lines: bank swaps)")
    ax2.legend(fontsize=8)
    f, growth = report["frames"], report["rss"]["growth_pct"]
    growth = "n/a" if growth is None else f"{growth:+.1f}%"
    fig.suptitle(f"soak {report['run_s'] / 60:.1f} min, {report['config']['width']}x"
                 f"{report['config']['height']} @ {report['config']['fps']:g} Hz: processed "
                 f"{f['processed']}, crashes {report['crashes']}, RSS growth after warm-up "
                 f"{growth}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_report(r: dict) -> str:
    f, p, g = r["frames"], r["parameter_changes"], r["rss"]
    pct = lambda v: "n/a" if v is None else f"{v:+.2f}%"  # noqa: E731
    ms = lambda v: "n/a" if v is None else f"{v:.0f} ms"  # noqa: E731
    return "\n".join([
        "", "=== soak summary ===",
        f"run                 : {r['run_s'] / 60:.1f} min after the first result",
        f"crashes             : {r['crashes']} {r['crash_details'] or ''}",
        f"frames              : camera {f['camera_published']}, node received "
        f"{f['node_received']}, processed {f['processed']}, results seen "
        f"{f['results_received_by_soak']}",
        f"                      deadline misses {f['deadline_misses']}, dropped stale "
        f"{f['dropped_stale']}, replaced {f['replaced_by_newer']}, errors {f['errors']}",
        f"every processed frame published: {r['every_processed_frame_published']}",
        f"parameter changes   : {p['sent']} sent, {p['answered']} answered, {p['accepted']} "
        f"accepted, {p['rejected_as_expected']} rejected as expected, "
        f"{len(p['unexpected_outcomes'])} unexpected; answer p50 {ms(p['answer_ms_p50'])}, "
        f"max {ms(p['answer_ms_max'])}",
        f"bank swaps          : {p['bank_swaps_accepted']}/{p['bank_swaps_sent']} accepted",
        f"RSS after warm-up   : {g['ref_mb'] and round(g['ref_mb'], 1)} MB -> "
        f"{g['final_mb'] and round(g['final_mb'], 1)} MB, growth {pct(g['growth_pct'])} "
        f"(peak {pct(g['peak_growth_pct'])})",
        f"open fds            : {r['fds']['first']} -> {r['fds']['last']} (max {r['fds']['max']})",
        f"observer stalls > 2s: {len(r.get('observer_stalls', []))} (longest "
        f"{max((g['seconds'] for g in r.get('observer_stalls', [])), default=0):.1f} s)",
        f"result              : {'PASS' if r['passed'] else 'FAIL'}",
    ])
