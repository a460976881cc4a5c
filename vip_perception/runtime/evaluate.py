"""`vip-perception evaluate deadline`: replay Fashion-MNIST test images as a timed frame stream
under real CPU contention and compare deadline policies on the same frames and the same load.

How the comparison is made fair (and what it cannot do):
- One stream, one load. Frames arrive at ``--fps``; N background processes do real matrix
  multiplies for the whole run (``constant``) or for the middle third of the frames (``step``).
- ``adaptive`` is the deployed engine, run live on each frame the moment it arrives, with its
  feedback loop: it sees only its own observations.
- Right after it, a measurement pass runs every option (every member at every thread count
  the selector may use) once on the same frame, in a freshly shuffled order, and records each
  one's model time and whether it classified the frame correctly. The static policies and the
  oracle are scored from these measurements: an option meets the deadline when the frame's
  non-model time (queueing, preprocessing, decision, post-processing, as measured for the
  adaptive run of that frame) plus its measured model time is within the deadline. So every
  policy pays the same overheads and meets the same load, a few milliseconds apart.
- ``oracle`` knows each frame's measured latencies (not its label): it takes the most
  accurate member (by validation accuracy) among the options that met the deadline on that
  frame. It is an upper bound for any policy that must decide before running.
- ``static_largest`` / ``static_smallest``: the most accurate / the fastest member at the bank's
  nominal thread count (the one its frontier was selected at, 2 by default: seed paper 2 has no
  thread dimension). ``static_best_fit``: seed paper 2's lookup, the most accurate member whose
  profiled quantile at that thread count fits the time remaining (the same remaining the
  adaptive saw), with no online adaptation (slowdown fixed at 1). ``extra_policies`` reports,
  outside the comparison, every other fixed (member, threads) choice, such as the largest
  member pinned to 1 thread: static choices that suit a load known in advance.
- Cold like the stream: a frame arrives after the stream's idle gap, and the first inference
  after a few milliseconds of idling runs far slower than a back-to-back one (measured here:
  a 0.23 ms model takes 0.65 ms after a 3-30 ms gap, a 1.4 ms one 2.4 ms). So every measured
  run (each option of the measurement pass, and the reference runs that set the deadline) is
  preceded by ``--gap-ms`` of idle time (10 ms; 3 ms already saturates the effect here), and
  banks are profiled the same way (``bank profile --gap-ms``). Without it the oracle was scored
  on warm times that no live frame can have.
- What it cannot do: two runs cannot happen at the same instant, so the oracle's and the
  statics' times are measured samples of the same conditions, not the adaptive's own run.
  The oracle also sees each frame's luck (a run that happened to dodge a scheduler slice):
  ``best_fixed_in_hindsight`` reports the best single (member, threads) choice over the run,
  which is what a policy that cannot see latencies before running could at most have had by
  a fixed choice.
- Pacing: frame i+1 arrives 1/fps after frame i, or, when the measurement pass overran that,
  half a period after the pass ended (a keep-latest camera queue would deliver a fresh frame
  then): no policy is charged for the harness's own measuring time.

The deadline is ``--deadline-scale`` x the most accurate member's p95 at the reference thread
count (2, or the largest profiled below it), re-measured on this machine without load at the
start, paced by ``--gap-ms`` like the stream (five batches of ``--reference-runs``; the lowest
batch p95 counts, so a burst of unrelated work during one batch does not stretch the
deadline), so scenarios mean the same on any machine. ``--deadline-ms`` fixes it instead, to
run one scenario on two backends (``--backend torch|onnxruntime``).
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

POLICIES = ("adaptive", "static_largest", "static_smallest", "static_best_fit", "oracle")
REFERENCE_BATCHES = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bank", required=True, help="bank directory (holds manifest.json)")
    parser.add_argument("--deadline-scale", type=float, default=1.2,
                        help="deadline = S x the most accurate member's p95 at 2 threads, measured at start")
    parser.add_argument("--deadline-ms", type=float, default=None,
                        help="a fixed deadline in ms instead of --deadline-scale (to compare backends on one scenario)")
    parser.add_argument("--background-load", type=int, default=1, help="number of busy background processes")
    parser.add_argument("--load-pattern", choices=("constant", "step"), default="constant",
                        help="load for the whole run, or only for the middle third of the frames")
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--json", dest="json_path", default=None, help="write the results here")
    parser.add_argument("--plot", default=None, help="write the over-frames plot here (PNG)")
    parser.add_argument("--margin-ms", type=float, default=0.2,
                        help="engine margin after the model (post-processing); default 0.2")
    parser.add_argument("--quantile", choices=("p50", "p95", "p99"), default="p95")
    parser.add_argument("--on-no-fit", choices=("fastest", "skip"), default="fastest")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-runs", type=int, default=50,
                        help="runs to re-measure the reference member's p95 at start")
    parser.add_argument("--data-root", default=None, help="Fashion-MNIST IDX directory (default: Debian's)")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"),
                        help="execution backend of every policy (the bank needs a profile for it)")
    parser.add_argument("--gap-ms", type=float, default=10.0,
                        help="idle time before every measured run (reference and measurement pass), so they run "
                             "as cold as a frame after the stream's idle gap does (default 10; >= 3 saturates here)")


@dataclass
class EvalConfig:
    bank: str
    deadline_scale: float = 1.2
    background_load: int = 1
    load_pattern: str = "constant"  # "constant" | "step"
    frames: int = 500
    fps: float = 30.0
    margin_ms: float = 0.2
    quantile: str = "p95"
    on_no_fit: str = "fastest"
    seed: int = 0
    reference_runs: int = 50
    data_root: str | None = None
    backend: str = "torch"
    gap_ms: float = 10.0
    deadline_ms: float | None = None  # fixed deadline; None = deadline_scale x the reference p95

    def validate(self) -> None:
        if not self.deadline_scale > 0:
            raise ValueError(f"--deadline-scale must be > 0, got {self.deadline_scale}")
        if self.background_load < 0:
            raise ValueError(f"--background-load must be >= 0, got {self.background_load}")
        if self.load_pattern not in ("constant", "step"):
            raise ValueError(f"--load-pattern must be constant or step, got {self.load_pattern!r}")
        if self.frames < 1:
            raise ValueError(f"--frames must be >= 1, got {self.frames}")
        if not self.fps > 0:
            raise ValueError(f"--fps must be > 0, got {self.fps}")
        if self.reference_runs < 5:
            raise ValueError(f"--reference-runs must be >= 5, got {self.reference_runs}")
        if self.deadline_ms is not None and not self.deadline_ms > 0:
            raise ValueError(f"--deadline-ms must be > 0, got {self.deadline_ms}")
        if not self.gap_ms >= 0:
            raise ValueError(f"--gap-ms must be >= 0, got {self.gap_ms}")


def run(args: argparse.Namespace) -> int:
    cfg = EvalConfig(
        bank=args.bank, deadline_scale=args.deadline_scale, background_load=args.background_load,
        load_pattern=args.load_pattern, frames=args.frames, fps=args.fps, margin_ms=args.margin_ms,
        quantile=args.quantile, on_no_fit=args.on_no_fit, seed=args.seed,
        reference_runs=args.reference_runs, data_root=args.data_root, backend=args.backend, gap_ms=args.gap_ms,
        deadline_ms=args.deadline_ms,
    )
    from vip_perception.bank import BankError

    try:
        cfg.validate()
        report = evaluate(cfg)
    except (ValueError, BankError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report["scenario"]["command"] = "vip-perception " + " ".join(sys.argv[1:]) if sys.argv else ""
    from .report import plot, summary, write_json

    if args.json_path:
        write_json(args.json_path, report)
    if args.plot:
        plot(report, args.plot)
    print(summary(report))
    return 0


# ----------------------------------------------------------------------------- measurement


def cpu_info() -> dict:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import torch

    return {"model": model, "logical_cores": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version()}


def _time_forward(member, x, threads: int, runs: int, warmup: int = 5, gap_s: float = 0.0) -> np.ndarray:
    """Model ms of ``runs`` calls on the bank's backend, each after ``gap_s`` idle (if > 0)."""
    out = np.empty(runs)
    for _ in range(warmup):
        member.run(x, threads)
    for k in range(runs):
        if gap_s:
            time.sleep(gap_s)
        t0 = time.perf_counter()
        member.run(x, threads)
        out[k] = (time.perf_counter() - t0) * 1e3
    return out


def _pct(values, q):
    return float(np.percentile(np.asarray(values, float), q)) if len(values) else None


def evaluate(cfg: EvalConfig, bank=None, data=None) -> dict:
    """Run the scenario and return the report (scenario, policies, per-frame trace).

    ``bank`` / ``data`` (an ArrayDataset) may be given directly (tests, notebooks); otherwise
    the bank is loaded from ``cfg.bank`` and the Fashion-MNIST test split from ``cfg.data_root``.
    """
    from vip_perception.bank import load_bank
    from vip_perception.data.fashion_mnist import DEFAULT_ROOT, load_fashion_mnist

    from .engine import Engine, EngineConfig
    from .load import BackgroundLoad
    from .selector import Selector

    cfg.validate()
    started = time.time()
    loadavg_start = list(os.getloadavg())  # other work on the machine, for the record
    bank = load_bank(cfg.bank, backend=cfg.backend) if bank is None else bank
    gap_s = cfg.gap_ms / 1e3
    data = load_fashion_mnist("test", cfg.data_root or DEFAULT_ROOT) if data is None else data
    rng = np.random.default_rng(cfg.seed)
    shuffle = random.Random(cfg.seed)
    n = len(data.labels)
    order = np.resize(rng.permutation(n), cfg.frames)  # repeats only when frames > test set size
    images = data.images[order]  # (F, 28, 28, 1) uint8
    labels = data.labels[order]  # (F,)
    if images.shape[-1] == 1:
        images = images[..., 0]  # (F, 28, 28): grayscale HxW frames

    members = bank.members
    names = [m.name for m in members]
    acc = np.array([m.val_accuracy for m in members])
    profiled = sorted({t for m in members for t in m.latency})
    # The bank's nominal thread count: the one its frontier was selected at (2 by default).
    nominal = (getattr(bank, "manifest", None) or {}).get("selection", {}).get("threads")
    ref_threads = nominal if nominal in profiled else max([t for t in profiled if t <= 2] or profiled[:1])
    with_ref = [i for i in range(len(members)) if ref_threads in members[i].latency]
    # "largest" = the most accurate member (the bank's slowest; ties -> the slower profile)
    ref = max(with_ref, key=lambda i: (acc[i], members[i].quantile_ms(ref_threads, "p95")))

    # Warm every option, then re-measure the reference p95 without load.
    x0 = bank.preprocess(images[0])  # (1, C, H, W)
    for m in members:
        for t in m.latency:
            _time_forward(m, x0, t, runs=3, warmup=2)
    # Several batches, the least disturbed one counts: the deadline should describe this machine
    # unloaded, not whatever else happened to run during one batch (all are reported).
    ref_batches = []
    for _ in range(REFERENCE_BATCHES):
        ref_batches.append(_pct(_time_forward(members[ref], x0, ref_threads, cfg.reference_runs, warmup=10,
                                              gap_s=gap_s), 95))
        time.sleep(0.1)
    ref_p95 = min(ref_batches)
    deadline_ms = cfg.deadline_scale * ref_p95 if cfg.deadline_ms is None else float(cfg.deadline_ms)
    if cfg.margin_ms >= deadline_ms:
        raise ValueError(f"--margin-ms {cfg.margin_ms} leaves no time in a {deadline_ms:.3f} ms deadline")

    clock = time.perf_counter
    engine = Engine(bank, EngineConfig(deadline_ms=deadline_ms, margin_ms=cfg.margin_ms,
                                       latency_quantile=cfg.quantile, on_no_fit=cfg.on_no_fit), clock=clock)
    selector = engine.selector
    options = selector.options()  # [(member index, threads)]
    # Baselines live at the bank's nominal thread count: seed paper 2 has no thread dimension.
    largest = max(with_ref, key=lambda i: (acc[i], -selector.base_ms(i, ref_threads)))
    smallest = min(with_ref, key=lambda i: (selector.base_ms(i, ref_threads), -acc[i]))
    static = {"static_largest": (largest, ref_threads), "static_smallest": (smallest, ref_threads)}
    lookup = Selector(members, cfg.quantile, ref_threads, cfg.on_no_fit)  # profile only, no adaptation
    # Not a policy of the comparison, reported for transparency: the largest member pinned to
    # each other thread count (a static choice that happens to suit a known, constant load).
    extra = {f"static_largest_at_{t}_threads": (largest, t) for t in selector.thread_counts
             if t != ref_threads and (largest, t) in set(options)}
    # Every other fixed option too: the best of them in hindsight is what any policy that
    # cannot see a frame's latency before running it could have had by luck of the draw.
    extra.update({f"fixed_{names[i]}@{t}": (i, t) for i, t in options
                  if (i, t) not in set(static.values()) | set(extra.values())})

    F = cfg.frames
    load_on = (0, F) if cfg.load_pattern == "constant" else (F // 3, 2 * F // 3)
    if cfg.background_load == 0:
        load_on = (0, 0)
    load = BackgroundLoad(cfg.background_load)
    period = 1.0 / cfg.fps

    trace = []
    picks = {p: [] for p in (*POLICIES, *extra)}  # per frame: (index | -1, threads, met, met and correct, correct)
    sel_us = {p: [] for p in (*POLICIES, *extra)}
    import gc

    gc.collect()
    gc.freeze()  # setup objects out of the collector's way: GC pauses are not the selector's cost
    try:
        if load_on[0] == 0 and load_on[1] > 0:
            load.start()
        next_arrival = clock() + period
        for i in range(F):
            if i == load_on[0] and load_on[1] > load_on[0] and not load.running:
                load.start()
                next_arrival = max(next_arrival, clock() + period)
            if i == load_on[1] and load.running:
                load.stop()
                next_arrival = max(next_arrival, clock() + period)
            _sleep_until(next_arrival, clock)
            capture = clock()
            img, label = images[i], int(labels[i])
            factors_before = dict(engine.estimator.factors())

            res = engine.process(img, capture)  # adaptive, live
            tm = res.timing
            overhead_ms = tm.end_to_end_ms - tm.actual_ms  # non-model time this frame paid

            todo = list(options)
            shuffle.shuffle(todo)
            run_ms, right = _measure_options(members, todo, bank.preprocess(img), label, gap_s)
            pass_end = clock()

            def score(option):
                if option is None:
                    return (-1, 0, False, False)
                met = overhead_ms + run_ms[option] <= deadline_ms
                return (option[0], option[1], met, met and right[option])

            # picks: (member index | -1, threads, met, met and correct, correct)
            a_idx = names.index(tm.member) if tm.member is not None else -1
            a_right = (not res.skipped) and res.class_id == label
            picks["adaptive"].append((a_idx, tm.threads, tm.deadline_met, tm.deadline_met and a_right, a_right))
            sel_us["adaptive"].append(tm.selection_us)
            for p in (*static, *extra):
                t0 = time.perf_counter()
                chosen = static.get(p) or extra[p]  # a static policy's decision is a constant
                sel_us[p].append((time.perf_counter() - t0) * 1e6)
                picks[p].append(score(chosen) + (right[chosen],))
            t0 = time.perf_counter()
            c = lookup.select(tm.remaining_ms, {})
            sel_us["static_best_fit"].append((time.perf_counter() - t0) * 1e6)
            bf = None if c.skipped else (c.index, c.threads)
            picks["static_best_fit"].append(score(bf) + ((bf is not None) and right[bf],))
            t0 = time.perf_counter()
            met_opts = [o for o in options if overhead_ms + run_ms[o] <= deadline_ms]
            oracle = max(met_opts, key=lambda o: (acc[o[0]], -run_ms[o])) if met_opts else None
            sel_us["oracle"].append((time.perf_counter() - t0) * 1e6)
            picks["oracle"].append(score(oracle) + ((oracle is not None) and right[oracle],))

            trace.append({
                "frame": i,
                "load": load_on[0] <= i < load_on[1],
                "remaining_ms": round(tm.remaining_ms, 4),
                "member": a_idx,
                "threads": tm.threads,
                "predicted_ms": round(tm.predicted_ms, 4),
                "actual_ms": round(tm.actual_ms, 4),
                "end_to_end_ms": round(tm.end_to_end_ms, 4),
                "met": tm.deadline_met,
                "skipped": res.skipped,
                "slowdown": {str(t): round(factors_before.get(t, 1.0), 4) for t in selector.thread_counts},
                "oracle_member": -1 if oracle is None else oracle[0],
                "oracle_threads": 0 if oracle is None else oracle[1],
                "misses": {p: not picks[p][-1][2] for p in POLICIES},
            })
            next_arrival = max(next_arrival + period, pass_end + 0.5 * period)
    finally:
        load.stop()
        gc.unfreeze()

    policies = {p: _policy_summary(picks[p], sel_us[p], names, F) for p in POLICIES}
    extra_policies = {p: _policy_summary(picks[p], sel_us[p], names, F) for p in extra}
    fixed = {p: v for p, v in {**{k: policies[k] for k in static}, **extra_policies}.items()}
    best_fixed = max(fixed, key=lambda p: fixed[p]["accuracy_all_frames"]) if fixed else None
    report = {
        "scenario": {
            "bank": os.path.abspath(cfg.bank) if cfg.bank else getattr(bank, "path", None),
            "bank_name": getattr(bank, "name", None),
            "deadline_ms": deadline_ms,
            "deadline_scale": cfg.deadline_scale if cfg.deadline_ms is None else None,
            "deadline_fixed": cfg.deadline_ms is not None,
            "reference_member": names[ref],
            "reference_threads": ref_threads,
            "reference_p95_ms_measured": ref_p95,
            "reference_p95_ms_batches": ref_batches,
            "reference_runs_per_batch": cfg.reference_runs,
            "loadavg_at_start": loadavg_start,
            "loadavg_at_end": list(os.getloadavg()),
            "reference_p95_ms_profiled": members[ref].quantile_ms(ref_threads, "p95"),
            "backend": getattr(bank, "backend", "torch"),
            "gap_ms": cfg.gap_ms,
            "profile_gap_ms": {m.name: {str(t): getattr(p, "gap_ms", 0.0) for t, p in m.latency.items()} for m in members},
            "margin_ms": cfg.margin_ms,
            "latency_quantile": cfg.quantile,
            "on_no_fit": cfg.on_no_fit,
            "frames": F,
            "fps": cfg.fps,
            "background_load": cfg.background_load,
            "load_pattern": cfg.load_pattern,
            "load_frames": list(load_on),
            "seed": cfg.seed,
            "cpu": cpu_info(),
            "threads": list(selector.thread_counts),
            "members": [{"index": k, "name": n, "val_accuracy": float(acc[k]),
                         "profile_ms": {str(t): members[k].quantile_ms(t, cfg.quantile) for t in members[k].latency}}
                        for k, n in enumerate(names)],
            "static_choices": {p: {"member": names[o[0]], "threads": o[1]} for p, o in {**static, **extra}.items()},
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "duration_s": round(time.time() - started, 1),
            "method": "adaptive runs live; statics and oracle are scored from a per-frame measurement pass "
                      "of every option (see vip_perception/runtime/evaluate.py docstring)",
        },
        "policies": policies,
        "extra_policies": extra_policies,
        "best_fixed_in_hindsight": None if best_fixed is None else {
            "policy": best_fixed, "accuracy_all_frames": fixed[best_fixed]["accuracy_all_frames"],
            "miss_ratio": fixed[best_fixed]["miss_ratio"]},
        "adaptive_recovery": _recovery(trace, load_on) if 0 < load_on[0] < load_on[1] < F else None,
        "frames_trace": trace,
    }
    return report


def _measure_options(members, options, x, label: int, gap_s: float = 0.0) -> tuple[dict, dict]:
    """Run each (member index, threads) once on ``x`` (1, C, H, W): model ms and correctness.

    Each run follows ``gap_s`` of idle time, so it starts as cold as the adaptive's run did
    after the stream's idle gap (a run right after another one is up to 2x faster here).
    """
    run_ms, right = {}, {}
    for mi, t in options:
        if gap_s:
            time.sleep(gap_s)
        t0 = time.perf_counter()
        logits = members[mi].run(x, t)  # (1, classes)
        run_ms[(mi, t)] = (time.perf_counter() - t0) * 1e3
        right[(mi, t)] = int(logits.argmax(1)) == label
    return run_ms, right


def _sleep_until(t_target: float, clock) -> None:
    while True:
        left = t_target - clock()
        if left <= 0:
            return
        time.sleep(left if left > 0.002 else left / 2)


def _policy_summary(picks, sel_us, names, frames) -> dict:
    processed = [p for p in picks if p[0] >= 0]
    misses = sum(1 for p in picks if not p[2])
    usage = Counter(f"{names[p[0]]}@{p[1]}" for p in processed)
    return {
        "miss_ratio": misses / frames,
        "misses": misses,
        "skipped": frames - len(processed),
        "accuracy_all_frames": sum(1 for p in picks if p[3]) / frames,
        "accuracy_processed": (sum(1 for p in processed if p[4]) / len(processed)) if processed else None,
        "selection_us_p50": _pct(sel_us, 50),
        "selection_us_p99": _pct(sel_us, 99),
        "member_usage": dict(sorted(usage.items())),
        "member_counts": dict(sorted(Counter(names[p[0]] for p in processed).items())),
    }


def _recovery(trace, load_on, streak: int = 10) -> dict:
    """How fast the adaptive policy settles after each load change (frames)."""
    met = [t["met"] for t in trace]
    members = [(t["member"], t["threads"]) for t in trace]

    def settle(start):
        for k in range(start, len(met) - streak + 1):
            if all(met[k : k + streak]):
                return k - start
        return None

    on, off = load_on
    before = Counter(members[max(0, on - 50) : on]).most_common(1)
    pre_choice = before[0][0] if before else None
    back = next((k - off for k in range(off, len(members)) if members[k] == pre_choice), None)
    return {
        "streak": streak,
        "onset_frame": on,
        "offset_frame": off,
        "frames_to_settle_after_onset": settle(on),
        "misses_in_10_after_onset": sum(1 for m in met[on : on + 10] if not m),
        "misses_under_load_after_10": sum(1 for m in met[on + 10 : off] if not m),
        "frames_to_settle_after_offset": settle(off),
        "misses_in_10_after_offset": sum(1 for m in met[off : off + 10] if not m),
        "frames_to_return_to_preload_choice": back,
        "preload_choice": None if pre_choice is None else {"member": pre_choice[0], "threads": pre_choice[1]},
    }
