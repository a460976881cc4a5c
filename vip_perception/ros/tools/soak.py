"""The soak (`vip-perception soak`): camera source + node over DDS for minutes, with parameter changes and
bank swaps every few seconds; reports crashes, frame accounting, RSS/fd growth and latency.

Why as processes: a leak, a stuck worker or a crash shows up in the process a user runs
(``vip_perception_node``), not in an in-process test; the demo's setup is reused (Fast DDS
shared-memory profile, a DDS domain of its own). This process is only the observer: it counts
the results it receives, changes parameters through the node's parameter services (and times
each answer), samples the node's RSS and open file descriptors with psutil, and at the end
compares the node's own final summary with what it saw ("every processed frame published").
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vip_perception.machine import machine_info
from vip_perception.quantiles import percentile
from vip_perception.share import share_path

from .processes import CONFIG_REL, child_env, resolve_bank, start_process, stop_process

NODE_NAME = "vip_perception"
# The per-camera line of the node's final summary (``ros.summary.format_summary``).
SUMMARY_RE = re.compile(
    r"^\s+(?P<topic>\S+): received (?P<received>\d+), processed (?P<processed>\d+), deadline "
    r"misses (?P<misses>\d+), dropped stale (?P<dropped_stale>\d+), replaced (?P<replaced>\d+), "
    r"malformed (?P<malformed>\d+), skipped (?P<skipped>\d+), errors (?P<errors>\d+)")


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
    """RSS (MB), open fds, threads and CPU seconds of process ``pid`` (psutil)."""
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


# ----------------------------------------------------------------------------- set-up


@dataclass
class SoakOptions:
    """A soak run: ``minutes`` after the first result; camera ``fps`` and size; the node's
    ``deadline_ms``; a parameter change every ``change_s`` (every ``swap_every``-th a bank
    swap); RSS / fd samples every ``sample_s``; RSS growth measured after ``warmup_s`` (None:
    120 s, at most a quarter of the run)."""

    minutes: float = 30.0
    bank: str | None = None
    fps: float = 30.0
    width: int = 640
    height: int = 480
    deadline_ms: float = 50.0
    change_s: float = 5.0
    swap_every: int = 3
    sample_s: float = 10.0
    warmup_s: float | None = None
    logs: str | None = None
    quiet: bool = False


@dataclass
class Setup:
    """Resolved run: bank copies A and B, logs, environment and both commands."""

    duration: float
    warmup: float
    source_bank: str
    bank_a: str
    bank_b: str
    logs: Path
    env: dict
    dds_note: str
    node_cmd: list
    cam_cmd: list


@dataclass
class Run:
    """What the loop accumulates."""

    changes: list = field(default_factory=list)
    pending: list = field(default_factory=list)  # (Change, future, sent monotonic time)
    samples: list = field(default_factory=list)
    crashes: list = field(default_factory=list)
    gaps: list = field(default_factory=list)  # seconds this observer did not run (machine busy)
    first_result: float | None = None
    start_run: float | None = None
    stopped_early: str | None = None
    final_sample: dict | None = None

    @property
    def run_s(self) -> float:
        return (time.monotonic() - self.start_run) if self.start_run is not None else 0.0


def prepare(opts: SoakOptions, say) -> Setup:
    """Copy the bank twice (a swap A <-> B is a full load each time, and a rebuild of the
    source bank during the run cannot turn a swap into a rejection); build both commands."""
    duration = opts.minutes * 60.0
    warmup = opts.warmup_s if opts.warmup_s is not None else min(120.0, duration / 4)
    config = share_path(CONFIG_REL)
    source_bank = str(Path(resolve_bank(opts.bank, say)).resolve())
    logs = Path(opts.logs or tempfile.mkdtemp(prefix="vip_soak_"))
    logs.mkdir(parents=True, exist_ok=True)
    bank_a, bank_b = str(logs / "bank_a"), str(logs / "bank_b")
    for copy in (bank_a, bank_b):
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(source_bank, copy)
    env, dds_note = child_env()
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "1")
    side = min(opts.width, opts.height)
    roi = f"[{(opts.width - side) // 2}, {(opts.height - side) // 2}, {side}, {side}]"
    node_cmd = [sys.executable, "-m", "vip_perception.ros.node", "--ros-args", "--params-file",
                str(config), "-p", f"bank:={bank_a}", "-p", f"roi:={roi}",
                "-p", f"deadline_ms:={float(opts.deadline_ms)}",
                "-p", "output_format:=json"]  # the monitor reads the JSON form
    cam_cmd = [sys.executable, "-m", "vip_perception.ros.camera_source", "--ros-args",
               "--params-file", str(config), "-p", f"rate_hz:={float(opts.fps)}",
               "-p", f"width:={opts.width}", "-p", f"height:={opts.height}",
               "-p", "wait_for_subscribers:=1"]
    say(f"vip-perception soak: {opts.minutes:g} min, {opts.width}x{opts.height} at {opts.fps:g} "
        f"Hz, a parameter change every {opts.change_s:g} s (a bank swap every "
        f"{opts.swap_every} changes), RSS/fds every {opts.sample_s:g} s, warm-up {warmup:g} s")
    say(f"  bank {source_bank} (copies A and B under the logs); DDS domain "
        f"{env['ROS_DOMAIN_ID']}, {dds_note}; logs {logs}")
    return Setup(duration, warmup, source_bank, bank_a, bank_b, logs, env, dds_note, node_cmd, cam_cmd)


class Monitor:
    """This process's ROS side: result, timing and diagnostics subscriptions and a parameter
    client of the node, spun by ``spin(timeout_s)``."""

    def __init__(self, env: dict, obs: Observer) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter_client import AsyncParameterClient
        from std_msgs.msg import String

        os.environ.update({k: v for k, v in env.items() if k.startswith(("ROS_", "FAST"))})
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        self.node = rclpy.create_node("vip_perception_soak", context=self.ctx)
        self.node.create_subscription(String, "classifications", obs.on_result, 100)
        self.node.create_subscription(String, "timing", obs.on_timing, 100)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", obs.on_diag, 10)
        self.client = AsyncParameterClient(self.node, NODE_NAME)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)

    def spin(self, timeout_s: float) -> None:
        self.executor.spin_once(timeout_sec=timeout_s)

    def spin_for(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.spin(0.05)

    def set_parameters(self, params: dict):
        from rclpy.parameter import Parameter

        return self.client.set_parameters([Parameter(k, value=v) for k, v in params.items()])

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.ctx.try_shutdown()


def start_processes(setup: Setup, mon: Monitor, logs: dict) -> dict:
    """Start the node, then the camera once the node's result publisher is in the graph (so
    the first result is not lost to discovery: the accounting compares counts exactly)."""
    node = start_process(setup.node_cmd, setup.env, logs["node"])
    until = time.monotonic() + 120.0
    while (mon.node.count_publishers("/classifications") == 0 and node.poll() is None
           and time.monotonic() < until):
        mon.spin(0.1)
    for _ in range(10):
        mon.spin(0.1)
    camera = start_process(setup.cam_cmd, setup.env, logs["camera"])
    return {"node": node, "camera": camera}


# ----------------------------------------------------------------------------- loop


def _take_sample(run: Run, procs: dict, obs: Observer, t: float) -> dict:
    s = {"t": round(t, 2), **sample_process(procs["node"].pid),
         "camera_rss_mb": sample_process(procs["camera"].pid)["rss_mb"],
         "results": obs.results,
         "latency_ms_p50": percentile(obs.window, 50),
         "latency_ms_p95": percentile(obs.window, 95),
         "latency_n": len(obs.window), **obs.diag_counters()}
    obs.window = []
    run.samples.append(s)
    return s


def _step(opts: SoakOptions, setup: Setup, run: Run, mon: Monitor, procs: dict, obs: Observer,
          plan, clock: dict, say) -> bool:
    """One pass of the loop after the first result; False when the run is over."""
    now = time.monotonic()
    t = now - run.start_run
    collect_answers(run.pending)
    if now >= clock["change"] and t < setup.duration - 1.0 and mon.client.services_are_ready():
        params, expect = next(plan)
        change = Change(round(t, 3), params, expect)
        run.changes.append(change)
        run.pending.append((change, mon.set_parameters(params), time.monotonic()))
        while clock["change"] <= now:  # after a stall: resume the cadence, no burst
            clock["change"] += opts.change_s
    if now >= clock["sample"]:
        s = _take_sample(run, procs, obs, t)
        say(f"[{t:6.1f} s] node RSS {s['rss_mb']:.1f} MB, fds {s['fds']}, threads "
            f"{s['threads']}, results {obs.results}, latency p50 "
            f"{s['latency_ms_p50'] or float('nan'):.1f} ms, changes {len(run.changes)}")
        while clock["sample"] <= now:
            clock["sample"] += opts.sample_s
    return t < setup.duration


def loop(opts: SoakOptions, setup: Setup, run: Run, mon: Monitor, procs: dict, obs: Observer, say) -> None:
    """Spin until ``duration`` after the first result, a process exits, or nothing arrives in
    120 s; parameter changes and samples on their cadences. Fills ``run``."""
    plan = change_plan(setup.bank_a, setup.bank_b, opts.swap_every, opts.width, opts.height)
    start = last_loop = time.monotonic()
    clock: dict = {}
    while True:
        mon.spin(0.02)
        now = time.monotonic()
        if now - last_loop > 2.0:
            run.gaps.append({"t": round(now - start, 1), "seconds": round(now - last_loop, 1)})
        last_loop = now
        for name, proc in procs.items():
            if proc.poll() is not None and run.stopped_early is None:
                run.crashes.append(f"{name} exited with rc {proc.returncode} at {now - start:.1f} s")
                run.stopped_early = name
        if run.stopped_early:
            return
        if run.first_result is None:
            if obs.results:
                run.first_result, run.start_run = now - start, now  # the soak clock starts here
                clock = {"change": now + opts.change_s, "sample": now}
                say(f"[{now - start:6.1f} s] first result; soak clock starts")
            elif now - start > 120:
                run.crashes.append("no result within 120 s of start")
                return
            continue
        if not _step(opts, setup, run, mon, procs, obs, plan, clock, say):
            return


def finish(run: Run, mon: Monitor, procs: dict) -> float:
    """Collect answers still in flight, stop camera then node (with results in flight
    received); returns the run's seconds after the first result."""
    run_s = run.run_s
    until = time.monotonic() + 10.0
    while run.pending and time.monotonic() < until and not run.stopped_early:
        mon.spin(0.05)
        collect_answers(run.pending)
    stop_process(procs["camera"])
    mon.spin_for(2.0)
    run.final_sample = sample_process(procs["node"].pid) if procs["node"].poll() is None else None
    stop_process(procs["node"], timeout=30.0)
    mon.spin_for(0.5)
    return run_s


def soak(opts: SoakOptions) -> dict:
    """Run the soak and return its report (see ``build_report``); ``report["passed"]`` says
    whether every criterion held."""
    say = (lambda *_: None) if opts.quiet else (lambda s: print(s, flush=True))
    setup = prepare(opts, say)
    obs, run = Observer(), Run()
    mon = Monitor(setup.env, obs)
    logs = {name: open(setup.logs / f"{name}.log", "w") for name in ("node", "camera")}  # noqa: SIM115
    procs = start_processes(setup, mon, logs)
    try:
        loop(opts, setup, run, mon, procs, obs, say)
    except KeyboardInterrupt:
        run.crashes.append("interrupted by the user")
    finally:
        run_s = finish(run, mon, procs)
        mon.close()
        for fh in logs.values():
            fh.close()
    report = build_report(opts, setup, run, run_s, obs, procs)
    report["observer_stalls"] = run.gaps
    return report


# ----------------------------------------------------------------------------- report


def _frames(summary: dict | None, published: list, obs: Observer) -> dict:
    def node(key):
        return summary and summary[key]

    return {"camera_published": int(published[-1]) if published else None,
            "node_received": node("received"), "processed": node("processed"),
            "results_received_by_soak": obs.results, "deadline_misses": node("misses"),
            "dropped_stale": node("dropped_stale"), "replaced_by_newer": node("replaced"),
            "malformed": node("malformed"), "skipped": node("skipped"), "errors": node("errors")}


def _parameter_changes(changes: list, run_s: float) -> tuple[dict, list, list]:
    """(section, wrong outcomes, unanswered requests that are no longer in flight)."""
    answered = [c for c in changes if c.answered]
    answer_ms = [c.answer_ms for c in answered]
    swaps = [c for c in changes if "bank" in c.params and c.expect_ok]
    wrong = [c for c in answered if c.ok != c.expect_ok]
    unanswered = [c for c in changes if not c.answered and c.t < run_s - 30.0]
    return {
        "sent": len(changes), "answered": len(answered), "unanswered": len(unanswered),
        "accepted": sum(1 for c in answered if c.ok),
        "rejected_as_expected": sum(1 for c in answered if not c.ok and not c.expect_ok),
        "unexpected_outcomes": [asdict(c) for c in wrong][:20],
        "answer_ms_p50": percentile(answer_ms, 50), "answer_ms_p95": percentile(answer_ms, 95),
        "answer_ms_max": max(answer_ms) if answer_ms else None,
        "bank_swaps_sent": len(swaps),
        "bank_swaps_accepted": sum(1 for c in swaps if c.ok),
        "bank_swap_answer_ms_p50": percentile([c.answer_ms for c in swaps if c.answered], 50),
        "other_answer_ms_p50": percentile([c.answer_ms for c in answered if "bank" not in c.params], 50),
    }, wrong, unanswered


def build_report(opts: SoakOptions, setup: Setup, run: Run, run_s: float, obs: Observer, procs: dict) -> dict:
    """The JSON-ready report. Passed: no crash or traceback, every processed frame published
    (the node's count equals the results seen), RSS growth after warm-up <= 5%, every
    parameter change answered with the expected outcome."""
    node_text = (setup.logs / "node.log").read_text(errors="replace")
    cam_text = (setup.logs / "camera.log").read_text(errors="replace")
    summary = parse_summary(node_text)
    published = re.findall(r"vip_perception_camera: published (\d+) frames", cam_text)
    tracebacks = node_text.count("Traceback") + cam_text.count("Traceback")
    crashes, node, samples = run.crashes, procs["node"], run.samples
    if node.returncode not in (0, None) and not any(c.startswith("node") for c in crashes):
        crashes.append(f"node exited with rc {node.returncode} on SIGINT")
    if tracebacks:
        crashes.append(f"{tracebacks} traceback(s) in the logs")
    if summary is None:
        crashes.append("node printed no final summary")
    changes, wrong, unanswered = _parameter_changes(run.changes, run_s)
    growth = rss_growth(samples, setup.warmup)
    every_published = summary is not None and summary["processed"] == obs.results
    passed = (not crashes and every_published and growth["growth_pct"] is not None
              and growth["growth_pct"] <= 5.0 and not wrong and not unanswered)
    return {
        "config": {"minutes": opts.minutes, "fps": opts.fps, "width": opts.width,
                   "height": opts.height, "deadline_ms": opts.deadline_ms,
                   "change_s": opts.change_s, "swap_every": opts.swap_every,
                   "sample_s": opts.sample_s, "warmup_s": setup.warmup, "bank": opts.bank or "shipped",
                   "bank_a": setup.bank_a, "bank_b": setup.bank_b, "logs": str(setup.logs)},
        "machine": machine_info(),
        "run_s": round(run_s, 1),
        "first_result_after_s": run.first_result,
        "crashes": len(crashes),
        "crash_details": crashes,
        "exit_codes": {"node": node.returncode, "camera": procs["camera"].returncode},
        "frames": _frames(summary, published, obs),
        "every_processed_frame_published": every_published,
        "parameter_changes": changes,
        "rss": growth,
        "fds": {"first": samples[0]["fds"] if samples else None,
                "last": samples[-1]["fds"] if samples else None,
                "max": max((s["fds"] for s in samples), default=None)},
        "final_sample": run.final_sample,
        "samples": samples,
        "change_log": [{"t": c.t, "params": c.params, "ok": c.ok, "answer_ms": c.answer_ms}
                       for c in run.changes],
        "passed": bool(passed),
    }


def plot(report: dict, path: str) -> None:
    """RSS and open fds over time (top), stamp -> result latency with bank swaps (bottom)."""
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
    """The one-screen summary printed at the end."""
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
