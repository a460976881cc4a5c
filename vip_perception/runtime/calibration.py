"""Start-up calibration: how fast this machine runs the bank's options, before the first frame.

Why: a bank's latency profile describes the machine it was profiled on. Served on another
machine kind (an AVX-512 profile on an AVX2 host), every prediction is off by the same kind of
ratio, and the slowdown estimator would learn it only from the misses of the first frames, one
option at a time. Calibration runs every (member, threads) option a few times through the
member's own runner (``member.run``, the bank's backend) on a blank frame of the bank's input
size, each run after ``gap_ms`` of idle time as the paced profiles were taken
(``bank profile --gap-ms``), and seeds the estimator (``SlowdownEstimator.seed``) with:

- per option: observed median / profiled p50. Like with like: three runs estimate a median,
  not a p95; the ratio scales the whole profiled distribution, so the engine's quantile times
  the factor predicts that quantile here. The median of three also discards one first-call or
  scheduler outlier.
- per thread count: the median of its options' ratios (the typical option). Each option's own
  ratio counts too: a slower one is held back by it, and one that runs faster than its profile
  is predicted from it before it has run live (``selector.Selector.set_option_factors``).

Budget: options run fastest first (by profiled p50) and a run starts only when its predicted
cost (gap + profiled p50 x the largest ratio of one run seen so far at its thread count, or at
fewer threads) still fits ``budget_s``; an option that gets no run is reported as skipped (it
starts from its thread count's prior) and the next, maybe at another thread count, is tried. A
thread count measured while a neighbour loads the cores shows ratios of 30-200x (2 threads on
the shared 2-core development VM); the estimator keeps such a seed as load that ages away, not
as the machine's speed (``SlowdownEstimator.seed``). Pure apart from the member runs: clock and sleep are passed
in, so the tests use fake ones. Not locked: ``Engine.calibrate`` holds the run lock around it.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class OptionCalibration:
    """One (member, threads) option as measured. Times in ms."""

    member: str
    index: int  # the member's position in the bank (the estimator's option key)
    threads: int
    profiled_ms: float  # the profiled quantile the engine predicts with
    profiled_p50_ms: float  # the profiled median the ratio is taken against
    observed_ms: float  # median of the runs here
    ratio: float  # observed_ms / profiled_p50_ms
    runs: int


@dataclass
class CalibrationReport:
    """What ``calibrate`` measured and seeded. ``seconds``: wall time spent (clock); ``skipped``:
    (member, threads) options not measured because the budget ran out; ``thread_factors``: the
    per-thread-count priors seeded (absent: nothing measured at that count)."""

    options: list[OptionCalibration] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)
    seconds: float = 0.0
    budget_s: float = 0.0
    quantile: str = "p95"
    thread_factors: dict[int, float] = field(default_factory=dict)
    note: str = ""  # why nothing was measured, when nothing was
    loaded_threads: list[int] = field(default_factory=list)  # measured while others held their cores

    def option_factors(self) -> dict[tuple[int, int], float]:
        """{(member index, threads): ratio} of the measured options."""
        return {(o.index, o.threads): o.ratio for o in self.options}

    def median_ratio(self) -> float | None:
        """Median observed / profiled ratio over the measured options; None when none was."""
        return statistics.median(o.ratio for o in self.options) if self.options else None

    def describe(self) -> str:
        """One log line: 'calibration 1.20 s: 12 options, median ratio 1.90 (observed/profiled)'."""
        head = f"calibration {self.seconds:.2f} s: {len(self.options)} options"
        if not self.options:
            return f"{head} ({self.note or 'nothing measured'})"
        factors = ", ".join(f"{t} thr x{f:.2f}" for t, f in sorted(self.thread_factors.items()))
        skipped = f", {len(self.skipped)} skipped (budget {self.budget_s:g} s)" if self.skipped else ""
        loaded = (f"; {', '.join(map(str, self.loaded_threads))} thr measured beside a busy process: "
                  "kept as load, not as this machine's speed") if self.loaded_threads else ""
        return f"{head}, median ratio {self.median_ratio():.2f} (observed/profiled p50; {factors}){skipped}{loaded}"

    def to_dict(self) -> dict:
        return {"seconds": round(self.seconds, 4), "budget_s": self.budget_s, "quantile": self.quantile,
                "median_ratio": self.median_ratio(), "note": self.note, "loaded_threads": self.loaded_threads,
                "thread_factors": {str(t): f for t, f in sorted(self.thread_factors.items())},
                "options": [asdict(o) for o in self.options],
                "skipped": [{"member": m, "threads": t} for m, t in self.skipped]}


def blank_input(bank):
    """The bank's preprocessed blank frame (1, C, H, W), or None for a bank without ``input_spec``."""
    spec = getattr(bank, "input_spec", None)
    if spec is None:
        return None
    shape = (spec.height, spec.width) if spec.channels == 1 else (spec.height, spec.width, spec.channels)
    return bank.preprocess(np.zeros(shape, np.uint8))


def calibrate(bank, estimator, budget_s: float = 5.0, runs_per_option: int = 3, gap_ms: float = 10.0,
              quantile: str = "p95", thread_counts=None, clock: Callable[[], float] = time.perf_counter,
              sleep: Callable[[float], None] = time.sleep,
              max_threads: Callable[[], int | None] | None = None) -> CalibrationReport:
    """Measure ``bank``'s options within ``budget_s`` seconds and seed ``estimator`` (see the
    module docstring). ``thread_counts``: the ones the selector may use (default: every profiled
    one); ``quantile``: the engine's (reported as ``profiled_ms``). ``clock``: seconds.
    ``max_threads``: called once after the runs, the most threads the cores other processes
    left free during them allowed (``CpuLoad.max_threads``; None or 0: unknown); ratios at more
    threads are seeded as load (``loaded_threads``), not as this machine's speed.
    ValueError for a non-positive budget or run count, or a negative gap."""
    if not budget_s > 0:
        raise ValueError(f"calibration budget_s must be > 0, got {budget_s!r}")
    if int(runs_per_option) < 1:
        raise ValueError(f"calibration runs_per_option must be >= 1, got {runs_per_option!r}")
    if not gap_ms >= 0:
        raise ValueError(f"calibration gap_ms must be >= 0, got {gap_ms!r}")
    start = clock()
    todo = sorted((m.quantile_ms(t, "p50"), i, t) for i, m in enumerate(bank.members) for t in m.latency
                  if thread_counts is None or t in thread_counts)
    report = CalibrationReport(budget_s=float(budget_s), quantile=quantile)
    x = blank_input(bank)
    if x is None:
        report.note = "the bank has no input_spec to build a calibration frame"
        todo, left = [], todo
    else:
        left = _measure(bank, x, todo, report, start, budget_s, int(runs_per_option), gap_ms / 1e3, clock, sleep)
    report.skipped = [(bank.members[i].name, t) for _, i, t in left]
    by_threads: dict[int, list[float]] = {}
    for o in report.options:
        by_threads.setdefault(o.threads, []).append(o.ratio)
    report.thread_factors = {t: statistics.median(r) for t, r in sorted(by_threads.items())}
    limit = max_threads() if max_threads is not None else None
    report.loaded_threads = [t for t in report.thread_factors if limit and t > limit]
    estimator.seed(report.thread_factors, report.option_factors(), loaded_threads=report.loaded_threads)
    report.seconds = clock() - start
    return report


def _measure(bank, x, todo: list, report: CalibrationReport, start: float, budget_s: float, runs: int,
             gap_s: float, clock, sleep) -> list:
    """Run the options of ``todo`` ((p50, index, threads), fastest first) into ``report``, each
    run only while its predicted cost fits the budget; returns the options left unmeasured."""
    worst: dict[int, float] = {}  # threads -> largest ratio of one run: stretches the later ones
    left = []
    for p50, i, t in todo:
        member, times = bank.members[i], []
        for _ in range(runs):
            # unseen thread count: as slow as the slowest fewer-thread one (contention never
            # hurts more threads less), else the profile
            w = worst.get(t, max([v for tt, v in worst.items() if tt < t], default=1.0))
            if clock() - start + gap_s + p50 * w / 1e3 > budget_s:
                break
            sleep(gap_s)  # idle like the gap before a frame: the profiles were taken paced
            r0 = clock()
            member.run(x, t)  # the bank's backend at t threads, as the engine runs it
            times.append((clock() - r0) * 1e3)
            worst[t] = max(worst.get(t, 1.0), times[-1] / p50 if p50 > 0 else 1.0)
        if not times:
            left.append((p50, i, t))  # a faster option (another thread count) may still fit
            continue
        observed = statistics.median(times)
        ratio = max(observed, 1e-6) / p50 if p50 > 0 else 1.0
        report.options.append(OptionCalibration(member.name, i, int(t), float(member.quantile_ms(t, report.quantile)),
                                                float(p50), observed, ratio, len(times)))
    return left
