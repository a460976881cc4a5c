"""The deadline harness behind `vip-perception evaluate deadline`: replay Fashion-MNIST test
images as a timed frame stream under real CPU contention and compare deadline policies on the
same frames and the same load.

- ``adaptive`` is the deployed engine, run live on each frame the moment it arrives.
- Right after it, a measurement pass runs every option (member, threads) once on the same
  frame, each after ``gap_ms`` of idle time (as cold as a frame after the stream's idle gap),
  in a shuffled order within each thread count and thread counts ascending: a run that needs
  cores the background load holds (a 2-thread run beside one busy process on two cores)
  slows the runs after it on this machine for 100-200 ms, so it must not precede them. The
  static policies and the oracle are scored from these measurements (``evaluation.scoring``):
  an option meets the deadline when the frame's non-model time, as measured for the adaptive
  run, plus its model time is within the deadline.
- ``oracle``: the most accurate member among the options that met the deadline on the frame.
  ``static_largest`` / ``static_smallest``: the most accurate / fastest member at the bank's
  nominal thread count. ``static_best_fit``: the most accurate member whose profiled quantile
  fits the remaining time, with every slowdown factor 1. Every other fixed option is reported
  in ``extra_policies``; ``best_fixed_in_hindsight`` is the best of the fixed ones.
- Pacing: frame i+1 arrives 1/fps after frame i or, when the measurement pass overran that,
  half a period after the pass ended: no policy pays for the harness's measuring time. After
  a pass that ran an option needing more cores than the load leaves free, the next frame
  arrives no sooner than ``settle_ms`` after it, so the adaptive's next run does not inherit
  that disturbance either (``benchmarks/pass_interference.json`` measures it).

The deadline is ``deadline_scale`` x the most accurate member's p95 at the reference thread
count, re-measured without load at the start (the lowest of five batch p95s), or
``deadline_ms`` when given. The reasoning behind each choice is in docs/design.md.
"""
from __future__ import annotations

import gc
import os
import random
import time
from dataclasses import dataclass, field

import numpy as np

from vip_perception.bank.provenance import portable_path
from vip_perception.machine import machine_info
from vip_perception.quantiles import percentile

from . import scoring
from .load import BackgroundLoad
from .scoring import POLICIES, FrameRecord, Pick

__all__ = ["POLICIES", "EvalConfig", "evaluate"]

REFERENCE_BATCHES = 5
LOAD_PATTERNS = ("constant", "step")


@dataclass
class EvalConfig:
    """One scenario. Times in ms; ``frames`` at ``fps``; ``background_load`` busy processes,
    for the whole run (``constant``) or the middle third of the frames (``step``)."""

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
    calibrate: bool = True  # calibrate the adaptive engine on this machine before the stream
    calibration_budget_s: float = 5.0
    sense_cpu_load: bool = True  # the adaptive engine limits threads to the cores others leave free
    settle_ms: float = 250.0  # idle after a pass that oversubscribed the cores, before the next frame
    slowdown_window: int | None = None  # the adaptive engine's estimator; None = SlowdownEstimator's default
    slowdown_rank: int | None = None

    def validate(self) -> None:
        """Raise ValueError naming the first bad option (as its command-line flag).

        The engine's own settings (quantile, on_no_fit, margin against the deadline) are
        checked by ``EngineConfig.validate`` once the deadline is known."""
        if not self.deadline_scale > 0:
            raise ValueError(f"--deadline-scale must be > 0, got {self.deadline_scale}")
        if self.background_load < 0:
            raise ValueError(f"--background-load must be >= 0, got {self.background_load}")
        if self.load_pattern not in LOAD_PATTERNS:
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
        if not self.settle_ms >= 0:
            raise ValueError(f"--settle-ms must be >= 0, got {self.settle_ms}")
        if not self.calibration_budget_s > 0:
            raise ValueError(f"--calibration-budget-s must be > 0, got {self.calibration_budget_s}")
        try:
            self.slowdown_estimator()
        except ValueError as exc:
            raise ValueError(f"--slowdown-window/--slowdown-rank: {exc}") from None

    def slowdown_estimator(self):
        """The adaptive engine's slowdown estimator: the runtime's default, or the window and
        rank given (ValueError when they do not make one)."""
        from vip_perception.runtime.slowdown import SlowdownEstimator

        kw = {k: v for k, v in (("window", self.slowdown_window), ("rank", self.slowdown_rank)) if v is not None}
        return SlowdownEstimator(**kw)

    def engine_config(self, deadline_ms: float):
        """The engine's configuration for ``deadline_ms``, validated (ValueError otherwise)."""
        from vip_perception.runtime.engine import EngineConfig

        ec = EngineConfig(deadline_ms=deadline_ms, margin_ms=self.margin_ms,
                          latency_quantile=self.quantile, on_no_fit=self.on_no_fit,
                          sense_cpu_load=self.sense_cpu_load)
        ec.validate()
        return ec


@dataclass
class Setup:
    """Everything fixed before the first frame."""

    bank: object
    images: np.ndarray  # (F, H, W) uint8 frames
    labels: np.ndarray  # (F,) int
    names: list
    accuracy: np.ndarray  # (members,) validation accuracy
    ref: int  # reference member index
    ref_threads: int
    ref_batches: list
    deadline_ms: float
    engine: object
    options: list  # [(member index, threads)]
    static: dict  # the fixed policies of the comparison: name -> option
    extra: dict  # every other fixed option: name -> option
    lookup: object  # Selector at ref_threads: static_best_fit's profile lookup
    load_on: tuple  # [onset, offset) frames of the background load
    calibration: object = None  # the adaptive engine's CalibrationReport (None: not calibrated)
    started: float = field(default_factory=time.time)
    loadavg_start: list = field(default_factory=lambda: list(os.getloadavg()))


# ----------------------------------------------------------------------------- measurement


def time_forward(member, x, threads: int, runs: int, warmup: int = 5, gap_s: float = 0.0) -> np.ndarray:
    """Model ms of ``runs`` calls of ``member.run(x, threads)``, each after ``gap_s`` idle."""
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


def measure_options(members, options, x, label: int, gap_s: float = 0.0) -> tuple[dict, dict]:
    """Run each (member index, threads) once on ``x`` (1, C, H, W): ({option: model ms},
    {option: class right}). Each run follows ``gap_s`` idle, as cold as the adaptive's run."""
    run_ms, right = {}, {}
    for mi, t in options:
        if gap_s:
            time.sleep(gap_s)
        t0 = time.perf_counter()
        logits = members[mi].run(x, t)  # (1, classes)
        run_ms[(mi, t)] = (time.perf_counter() - t0) * 1e3
        right[(mi, t)] = int(logits.argmax(1)) == label
    return run_ms, right


def pass_order(options, shuffle: random.Random) -> list:
    """The measurement pass's order of ``options`` [(member index, threads)]: shuffled, then
    stably sorted by thread count, so no run follows one that used more threads."""
    todo = list(options)
    shuffle.shuffle(todo)
    todo.sort(key=lambda o: o[1])
    return todo


def free_cores(background_load: int, cores: int | None = None) -> int:
    """Cores of this process's affinity mask the background load leaves free (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if cores is None else cores
    return max(1, cores - background_load)


def arrival_after_pass(previous: float, period: float, now: float, settle: float = 0.0) -> float:
    """When the next frame arrives (seconds): ``period`` after the previous arrival, but no
    sooner than half a period after ``now`` (the end of the measurement pass), and no sooner
    than ``settle`` after it when the pass oversubscribed the cores."""
    return max(previous + period, now + 0.5 * period, now + settle)


def sleep_until(t_target: float, clock) -> None:
    """Sleep until ``clock()`` reaches ``t_target`` (seconds), finishing in short naps."""
    while True:
        left = t_target - clock()
        if left <= 0:
            return
        time.sleep(left if left > 0.002 else left / 2)


# ----------------------------------------------------------------------------- set-up


def _frames(cfg: EvalConfig, data) -> tuple[np.ndarray, np.ndarray]:
    """(images (F, H, W) uint8, labels (F,)): a seeded permutation, repeated past the set."""
    rng = np.random.default_rng(cfg.seed)
    order = np.resize(rng.permutation(len(data.labels)), cfg.frames)
    images, labels = data.images[order], data.labels[order]  # (F, 28, 28, 1), (F,)
    if images.shape[-1] == 1:
        images = images[..., 0]  # (F, 28, 28): grayscale HxW frames
    return images, labels


def _station_view(frames: tuple[np.ndarray, np.ndarray], spec) -> tuple[np.ndarray, np.ndarray]:
    """28x28 garments for a bank whose input is larger (a station-camera bank): each frame is
    the garment as the station camera shows it at the bank's input size (``render_station``,
    nominal), uint8 (F, S, S); other frames are returned as they are."""
    images, labels = frames
    if images.shape[1:] != (28, 28) or (spec.height, spec.width) == (28, 28) or spec.height != spec.width:
        return images, labels
    import torch

    from vip_perception.data.station_render import render_station

    views = [render_station(torch.as_tensor(images[i:i + 500]), spec.height)[:, 0].round().to(torch.uint8).numpy()
             for i in range(0, len(images), 500)]
    return np.concatenate(views), labels


def _reference(bank, accuracy) -> tuple[int, int, list]:
    """(reference member, reference threads, members profiled there): the most accurate member
    at the bank's nominal thread count (the frontier's, else the largest profiled <= 2)."""
    members = bank.members
    profiled = sorted({t for m in members for t in m.latency})
    nominal = (getattr(bank, "manifest", None) or {}).get("selection", {}).get("threads")
    ref_threads = nominal if nominal in profiled else max([t for t in profiled if t <= 2] or profiled[:1])
    with_ref = [i for i in range(len(members)) if ref_threads in members[i].latency]
    ref = max(with_ref, key=lambda i: (accuracy[i], members[i].quantile_ms(ref_threads, "p95")))
    return ref, ref_threads, with_ref


def _reference_p95(bank, x0, ref: int, ref_threads: int, cfg: EvalConfig) -> list:
    """Warm every option, then the reference member's p95 in ``REFERENCE_BATCHES`` batches."""
    for m in bank.members:
        for t in m.latency:
            time_forward(m, x0, t, runs=3, warmup=2)
    batches = []
    for _ in range(REFERENCE_BATCHES):
        ms = time_forward(bank.members[ref], x0, ref_threads, cfg.reference_runs, warmup=10,
                          gap_s=cfg.gap_ms / 1e3)
        batches.append(percentile(ms, 95))
        time.sleep(0.1)
    return batches


def _fixed_policies(selector, names, accuracy, with_ref, ref_threads) -> tuple[dict, dict]:
    """(static, extra): the comparison's fixed policies at the reference thread count, and
    every other fixed option (the largest member at other thread counts first)."""
    largest = max(with_ref, key=lambda i: (accuracy[i], -selector.base_ms(i, ref_threads)))
    smallest = min(with_ref, key=lambda i: (selector.base_ms(i, ref_threads), -accuracy[i]))
    static = {"static_largest": (largest, ref_threads), "static_smallest": (smallest, ref_threads)}
    options = selector.options()
    extra = {f"static_largest_at_{t}_threads": (largest, t) for t in selector.thread_counts
             if t != ref_threads and (largest, t) in set(options)}
    extra.update({f"fixed_{names[i]}@{t}": (i, t) for i, t in options
                  if (i, t) not in set(static.values()) | set(extra.values())})
    return static, extra


def prepare(cfg: EvalConfig, bank=None, data=None, clock=time.perf_counter) -> Setup:
    """Load the bank and frames, measure the reference p95, fix the deadline and the policies."""
    from vip_perception.bank import load_bank
    from vip_perception.data.fashion_mnist import load_fashion_mnist
    from vip_perception.runtime.engine import Engine
    from vip_perception.runtime.selector import Selector

    cfg.validate()
    started, loadavg = time.time(), list(os.getloadavg())  # other work on the machine, for the record
    bank = load_bank(cfg.bank, backend=cfg.backend) if bank is None else bank
    data = load_fashion_mnist("test", cfg.data_root or None) if data is None else data
    images, labels = _station_view(_frames(cfg, data), bank.input_spec)
    names = [m.name for m in bank.members]
    accuracy = np.array([m.val_accuracy for m in bank.members])
    ref, ref_threads, with_ref = _reference(bank, accuracy)
    batches = _reference_p95(bank, bank.preprocess(images[0]), ref, ref_threads, cfg)
    deadline_ms = cfg.deadline_scale * min(batches) if cfg.deadline_ms is None else float(cfg.deadline_ms)
    engine = Engine(bank, cfg.engine_config(deadline_ms), clock=clock, estimator=cfg.slowdown_estimator())
    # As the node does at start (calibrate_on_start): every option measured, paced like the
    # stream, and the adaptive engine's slowdown seeded from it. The other policies are scored
    # from measured times and do not predict, so only the adaptive one is affected.
    calibration = engine.calibrate(cfg.calibration_budget_s, gap_ms=cfg.gap_ms) if cfg.calibrate else None
    static, extra = _fixed_policies(engine.selector, names, accuracy, with_ref, ref_threads)
    F = cfg.frames
    load_on = (0, F) if cfg.load_pattern == "constant" else (F // 3, 2 * F // 3)
    return Setup(bank=bank, images=images, labels=labels, names=names, accuracy=accuracy, ref=ref,
                 ref_threads=ref_threads, ref_batches=batches, deadline_ms=deadline_ms, engine=engine,
                 options=engine.selector.options(), static=static, extra=extra,
                 lookup=Selector(bank.members, cfg.quantile, ref_threads, cfg.on_no_fit),
                 load_on=(0, 0) if cfg.background_load == 0 else load_on,
                 started=started, loadavg_start=loadavg, calibration=calibration)


# ----------------------------------------------------------------------------- frame loop


def _frame(s: Setup, i: int, capture: float, shuffle: random.Random, gap_s: float) -> tuple[FrameRecord, dict]:
    """Run frame ``i``: the adaptive engine live, then every option once; (record, trace row)."""
    img, label = s.images[i], int(s.labels[i])
    factors_before = dict(s.engine.estimator.factors())
    res = s.engine.process(img, capture)
    tm = res.timing
    run_ms, right = measure_options(s.bank.members, pass_order(s.options, shuffle), s.bank.preprocess(img),
                                    label, gap_s)
    a_idx = s.names.index(tm.member) if tm.member is not None else -1
    a_right = (not res.skipped) and res.class_id == label
    rec = FrameRecord(overhead_ms=tm.end_to_end_ms - tm.actual_ms, remaining_ms=tm.remaining_ms,
                      run_ms=run_ms, right=right,
                      adaptive=Pick(a_idx, tm.threads, tm.deadline_met, tm.deadline_met and a_right, a_right),
                      selection_us={"adaptive": tm.selection_us})
    scoring.decide(rec, s.options, s.accuracy, s.lookup, s.deadline_ms)
    fixed = {**s.static, **s.extra}
    for p in fixed:
        rec.selection_us[p] = scoring.fixed_selection_us(time.perf_counter, fixed, p)
    row = {"frame": i, "load": s.load_on[0] <= i < s.load_on[1],
           "remaining_ms": round(tm.remaining_ms, 4), "member": a_idx, "threads": tm.threads,
           "predicted_ms": round(tm.predicted_ms, 4), "actual_ms": round(tm.actual_ms, 4),
           "end_to_end_ms": round(tm.end_to_end_ms, 4), "met": tm.deadline_met, "skipped": res.skipped,
           "slowdown": {str(t): round(factors_before.get(t, 1.0), 4) for t in s.engine.selector.thread_counts},
           "max_threads": tm.max_threads,
           "others_cores": None if tm.others_cores is None else round(tm.others_cores, 3)}
    return rec, row


def run_frames(s: Setup, cfg: EvalConfig, clock=time.perf_counter) -> tuple[list, list]:
    """The paced frame loop under the scenario's load: (FrameRecords, trace rows)."""
    load = BackgroundLoad(cfg.background_load)
    period, gap_s = 1.0 / cfg.fps, cfg.gap_ms / 1e3
    shuffle = random.Random(cfg.seed)
    free = free_cores(cfg.background_load)
    widest = max(t for _, t in s.options)
    on, off = s.load_on
    records, trace = [], []
    gc.collect()
    gc.freeze()  # set-up objects out of the collector's way: GC pauses are not the selector's cost
    try:
        if on == 0 and off > 0:
            load.start()
        next_arrival = clock() + period
        for i in range(cfg.frames):
            if i == on and off > on and not load.running:
                load.start()
                next_arrival = max(next_arrival, clock() + period)
            if i == off and load.running:
                load.stop()
                next_arrival = max(next_arrival, clock() + period)
            sleep_until(next_arrival, clock)
            rec, row = _frame(s, i, clock(), shuffle, gap_s)
            records.append(rec)
            trace.append(row)
            settle = cfg.settle_ms / 1e3 if load.running and widest > free else 0.0
            next_arrival = arrival_after_pass(next_arrival, period, clock(), settle)
    finally:
        load.stop()
        gc.unfreeze()
    return records, trace


# ----------------------------------------------------------------------------- report


def _scenario(cfg: EvalConfig, s: Setup) -> dict:
    members, acc = s.bank.members, s.accuracy
    return {
        "bank": portable_path(cfg.bank) if cfg.bank else getattr(s.bank, "path", None),  # no machine paths
        "bank_name": getattr(s.bank, "name", None),
        "deadline_ms": s.deadline_ms,
        "deadline_scale": cfg.deadline_scale if cfg.deadline_ms is None else None,
        "deadline_fixed": cfg.deadline_ms is not None,
        "reference_member": s.names[s.ref],
        "reference_threads": s.ref_threads,
        "reference_p95_ms_measured": min(s.ref_batches),
        "reference_p95_ms_batches": s.ref_batches,
        "reference_runs_per_batch": cfg.reference_runs,
        "loadavg_at_start": s.loadavg_start,
        "loadavg_at_end": list(os.getloadavg()),
        "reference_p95_ms_profiled": members[s.ref].quantile_ms(s.ref_threads, "p95"),
        "profile_machine": (getattr(s.bank, "manifest", None) or {}).get("machine"),  # whose latencies
        "backend": getattr(s.bank, "backend", "torch"),
        "gap_ms": cfg.gap_ms,
        "settle_ms": cfg.settle_ms,
        "profile_gap_ms": {m.name: {str(t): getattr(p, "gap_ms", 0.0) for t, p in m.latency.items()}
                           for m in members},
        "calibrate": cfg.calibrate,
        "sense_cpu_load": cfg.sense_cpu_load and s.engine.cpu_load.available,
        "slowdown": {"window": s.engine.estimator.window, "rank": s.engine.estimator.rank,
                     "half_life_frames": s.engine.estimator.half_life},
        "miss_rates": {"prior": s.engine.miss_rates.prior, "strength_runs": s.engine.miss_rates.strength,
                       "half_life_frames": s.engine.miss_rates.half_life},
        "calibration": None if s.calibration is None else s.calibration.to_dict(),
        "margin_ms": cfg.margin_ms,
        "latency_quantile": cfg.quantile,
        "on_no_fit": cfg.on_no_fit,
        "frames": cfg.frames,
        "fps": cfg.fps,
        "background_load": cfg.background_load,
        "load_pattern": cfg.load_pattern,
        "load_frames": list(s.load_on),
        "seed": cfg.seed,
        "cpu": machine_info(),
        "threads": list(s.engine.selector.thread_counts),
        "members": [{"index": k, "name": n, "val_accuracy": float(acc[k]),
                     "profile_ms": {str(t): members[k].quantile_ms(t, cfg.quantile) for t in members[k].latency}}
                    for k, n in enumerate(s.names)],
        "static_choices": {p: {"member": s.names[o[0]], "threads": o[1]} for p, o in {**s.static, **s.extra}.items()},
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s.started)),
        "duration_s": round(time.time() - s.started, 1),
        "method": "adaptive runs live; statics and oracle are scored from a per-frame measurement pass "
                  "of every option (see vip_perception/evaluation/deadline.py)",
    }


def build_report(cfg: EvalConfig, s: Setup, records: list, trace: list) -> dict:
    """The report: scenario, per-policy summaries, best fixed option, recovery, frame trace."""
    scored = scoring.score(records, s.static, s.extra, s.names, s.deadline_ms)
    picks = scored.pop("picks")
    for k, row in enumerate(trace):
        oracle = records[k].decisions.get("oracle")
        row["oracle_member"] = -1 if oracle is None else oracle[0]
        row["oracle_threads"] = 0 if oracle is None else oracle[1]
        row["misses"] = {p: not picks[p][k].met for p in POLICIES}
    on, off = s.load_on
    recovery = None
    if 0 < on < off < cfg.frames:
        recovery = scoring.recovery([t["met"] for t in trace], [(t["member"], t["threads"]) for t in trace],
                                    s.load_on)
    return {"scenario": _scenario(cfg, s), **scored, "adaptive_recovery": recovery, "frames_trace": trace}


def evaluate(cfg: EvalConfig, bank=None, data=None) -> dict:
    """Run the scenario and return the report (scenario, policies, per-frame trace).

    ``bank`` / ``data`` (an object with ``images`` (N, H, W[, 1]) uint8 and ``labels`` (N,))
    may be given directly; otherwise the bank is loaded from ``cfg.bank`` and the Fashion-MNIST
    test split from ``cfg.data_root``. Raises ValueError for a bad scenario.
    """
    setup = prepare(cfg, bank, data)
    records, trace = run_frames(setup, cfg)
    return build_report(cfg, setup, records, trace)
