"""Engine: bank + selector + slowdown estimate; one frame in, a result and its timing record out.

The deadline is measured from the frame's capture time, so time already lost in transport and
queueing counts: remaining = capture_time + deadline - now - margin, with ``now`` read after
preprocessing (its cost is known exactly by then). The margin covers what follows the model
(post-processing, publishing).

Threading: ``torch.set_num_threads`` is process-wide and concurrent inferences would invalidate
each other's latency predictions, so every engine in the process runs one frame at a time under
a module-level lock (time waiting for it counts against the frame, as it should). A bank swap
or config update builds the new state outside that lock and publishes it as one immutable
``_State``; a frame reads the state once at its start, so each result comes from one bank and
one config, and the switch happens between frames.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from ..backends.torch_backend import run_torch
from ..bank import BankError, load_bank
from ..results import FrameResult, TimingRecord
from ..roi import clip_roi, crop
from ..tasks import get_task
from .calibration import CalibrationReport, calibrate
from .cpu_load import CpuLoad
from .miss_rate import MissRates
from .selector import NO_FIT_POLICIES, QUANTILES, Selector
from .slowdown import SlowdownEstimator

_RUN_LOCK = threading.Lock()  # one inference at a time per process (torch threads are global)


@dataclass(frozen=True)
class EngineConfig:
    """Per-frame deadline policy. Validated on construction and by ``Engine.update_config``."""

    deadline_ms: float  # from capture to result, > 0
    margin_ms: float = 1.0  # reserved after the model (post-processing, publishing), >= 0
    latency_quantile: str = "p95"  # profiled quantile used as the base prediction
    on_no_fit: str = "fastest"  # "fastest": run the fastest option anyway; "skip": drop the frame
    threads: int = 0  # 0 = selector chooses among profiled thread counts; N = force N
    top_k: int = 5  # classification banks: hypotheses ranked per frame (FrameResult.top), >= 1
    sense_cpu_load: bool = True  # with threads=0: no thread count needing cores other processes hold (runtime.cpu_load)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad parameter and why. The one rule for an engine
        configuration: the ROS parameter layer and the deadline harness call it too."""
        d, m = self.deadline_ms, self.margin_ms
        if not _is_real(d) or not math.isfinite(d) or d <= 0:
            raise ValueError(f"deadline_ms must be a finite number > 0, got {d!r}")
        if not _is_real(m) or not math.isfinite(m) or m < 0:
            raise ValueError(f"margin_ms must be a finite number >= 0, got {m!r}")
        if m >= d:
            raise ValueError(f"margin_ms ({m}) must be smaller than deadline_ms ({d}): no time would be left")
        if self.latency_quantile not in QUANTILES:
            raise ValueError(f"latency_quantile must be one of {list(QUANTILES)}, got {self.latency_quantile!r}")
        if self.on_no_fit not in NO_FIT_POLICIES:
            raise ValueError(f"on_no_fit must be one of {list(NO_FIT_POLICIES)}, got {self.on_no_fit!r}")
        t = self.threads
        if not isinstance(t, (int, np.integer)) or isinstance(t, bool) or t < 0:
            raise ValueError(f"threads must be an integer >= 0 (0 = automatic), got {t!r}")
        k = self.top_k
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"top_k must be an integer >= 1, got {k!r}")
        if not isinstance(self.sense_cpu_load, (bool, np.bool_)):
            raise ValueError(f"sense_cpu_load must be true or false, got {self.sense_cpu_load!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def _is_real(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


@dataclass(frozen=True)
class _State:
    bank: object
    config: EngineConfig
    selector: Selector
    calibration: CalibrationReport | None = None  # the last one, for this bank


class Engine:
    """Runs one frame at a time with the most accurate member predicted to meet its deadline.

    bank: a loaded ``vip_perception.bank.Bank`` (or anything with ``members``, ``preprocess``,
        ``class_names``). clock: seconds, in the same timebase as ``capture_time``.
    estimator: slowdown state; its thread-count factors are kept across bank swaps because
        they describe the machine, not the models (ratios are relative to each member's own
        profile); its per-option records are dropped with the bank they were about.
    cpu_load: other processes' use of the cores (``runtime.cpu_load``), read at most every
        0.1 s at a frame's start when ``config.sense_cpu_load`` and ``threads == 0``: thread
        counts needing the cores they hold are not chosen, and when they free them the
        estimator forgets the load (``SlowdownEstimator.forget_load``).
    miss_rates: each option's recent share of runs that overran the time left for them
        (``runtime.miss_rate``); the selector ranks the options that fit by accuracy x (1 -
        that share). Forgotten when the load leaves and when another bank is served.
    """

    def __init__(
        self,
        bank,
        config: EngineConfig,
        clock: Callable[[], float] = time.time,
        estimator: SlowdownEstimator | None = None,
        cpu_load: CpuLoad | None = None,
    ) -> None:
        config.validate()
        self._clock = clock
        self.estimator = estimator if estimator is not None else SlowdownEstimator()
        self.cpu_load = cpu_load if cpu_load is not None else CpuLoad()
        self.miss_rates = MissRates()  # options that fit are ranked by accuracy x (1 - miss rate)
        self._state = _State(bank, config, self._make_selector(bank, config))
        self._update_lock = threading.Lock()  # serialises swap_bank / update_config

    @staticmethod
    def _make_selector(bank, config: EngineConfig) -> Selector:
        members = getattr(bank, "members", None)
        if not members:
            raise ValueError(f"bank {getattr(bank, 'path', bank)!s} has no members")
        return Selector(members, config.latency_quantile, int(config.threads), config.on_no_fit)

    @property
    def bank(self):
        return self._state.bank

    @property
    def config(self) -> EngineConfig:
        return self._state.config

    @property
    def selector(self) -> Selector:
        return self._state.selector

    @property
    def calibration(self) -> CalibrationReport | None:
        """The last calibration of the serving bank (None: not calibrated since it was loaded)."""
        return self._state.calibration

    def calibrate(self, budget_s: float = 5.0, runs_per_option: int = 3, gap_ms: float = 10.0,
                  clock: Callable[[], float] = time.perf_counter,
                  sleep: Callable[[float], None] = time.sleep) -> CalibrationReport:
        """Measure the serving bank's options on this machine and seed the slowdown estimate
        (``runtime.calibration.calibrate``, at most ``budget_s`` seconds; a thread count needing
        cores other processes held meanwhile is seeded as load, ``cpu_load``), under the run lock:
        frames wait, and no frame's timing mixes with a calibration run. The report is kept
        (``calibration``) and re-seeds the estimator when a quantile change resets it. Call it
        after ``warm_up`` so no run pays a first-call cost. ValueError for bad arguments."""
        with self._update_lock, _RUN_LOCK:
            state = self._state
            load = self.cpu_load if state.config.sense_cpu_load and not state.config.threads else None
            if load is not None:
                load.update()  # the reading after the runs then covers the calibration

            def free_threads() -> int | None:
                load.update()
                return load.max_threads()

            report = calibrate(state.bank, self.estimator, budget_s, runs_per_option, gap_ms,
                               state.config.latency_quantile, state.selector.thread_counts, clock, sleep,
                               max_threads=None if load is None else free_threads)
            self._fold_estimates(state.selector)
            self._state = _State(state.bank, state.config, state.selector, report)
        return report

    def update_config(self, config: EngineConfig) -> None:
        """Validate and apply between frames; ValueError (with the reason) leaves the old config."""
        if not isinstance(config, EngineConfig):
            raise ValueError(f"config must be an EngineConfig, got {type(config).__name__}")
        config.validate()
        with self._update_lock:
            old = self._state
            selector = self._make_selector(old.bank, config)  # may raise (e.g. threads not profiled)
            new = _State(old.bank, config, selector, old.calibration)
            with _RUN_LOCK:
                if config.latency_quantile != old.config.latency_quantile:
                    self.estimator.reset()  # ratios were relative to the old quantile; the
                    if old.calibration is not None:  # calibration's (against p50) still hold
                        self.estimator.seed(old.calibration.thread_factors, old.calibration.option_factors())
                # else same bank, same members: their own records still hold
                self._fold_estimates(selector)
                selector.set_miss_rates(self.miss_rates.rates(), self.miss_rates.prior)
                self._state = new

    def swap_bank(self, path_or_bank) -> None:
        """Load the new bank fully, then switch between frames.

        A path is loaded with ``load_bank`` (BankError names the problem); a bank that cannot
        serve the current config raises BankError too. In both cases the old bank keeps serving.
        """
        if isinstance(path_or_bank, (str, bytes)) or hasattr(path_or_bank, "__fspath__"):
            # on the backend the engine serves now; outside every lock: frames keep flowing meanwhile
            bank = load_bank(path_or_bank, backend=getattr(self._state.bank, "backend", "torch"))
            _materialise(bank)
        else:
            bank = path_or_bank
        with self._update_lock:
            config = self._state.config
            try:
                selector = self._make_selector(bank, config)
            except ValueError as exc:
                raise BankError(f"bank {getattr(bank, 'path', bank)!s} rejected: {exc}") from exc
            with _RUN_LOCK:  # the thread-count factors describe the machine and stay; the
                self.estimator.forget_options()  # per-option records were about the old models
                self.miss_rates.forget()
                self._state = _State(bank, config, selector)  # uncalibrated until calibrate()

    def warm_up(self, bank=None) -> int:
        """Run ``bank`` (default: the serving one) once end to end per member and profiled
        thread count on a blank input, so no frame pays a first-call cost (allocator, kernel
        selection, thread pools). Nothing is recorded: the slowdown estimator never sees these
        runs. Each run holds the run lock, so frames already flowing wait at most one run.
        Returns the number of runs; 0 for a bank without an ``input_spec``."""
        bank = self._state.bank if bank is None else bank
        spec = getattr(bank, "input_spec", None)
        if spec is None:
            return 0
        shape = (spec.height, spec.width) if spec.channels == 1 else (spec.height, spec.width, spec.channels)
        x = bank.preprocess(np.zeros(shape, np.uint8))  # (1, C, H, W) float32
        runs = 0
        for member in bank.members:
            for threads in sorted(getattr(member, "latency", None) or {1: None}):
                with _RUN_LOCK:
                    _postprocess(bank, _run(member, x, threads), (0, 0, spec.width, spec.height),
                                 self._state.config.top_k)
                runs += 1
        return runs

    def process(self, image: np.ndarray, capture_time: float, roi=None,
                origin: tuple[int, int] = (0, 0)) -> FrameResult:
        """Run one frame within its deadline (see the module docstring for the timing rules).

        image: (H, W) or (H, W, C) uint8, RGB. Either the full frame with ``roi`` = (x, y, w, h)
            (clipped to the frame with ``roi.clip_roi``; ValueError when nothing is left), or an
            already-cropped region with ``origin`` = its top-left (x, y) in the frame.
        capture_time: when the frame was captured, in the engine clock's timebase (seconds).
        Returns the result in full-frame pixels: ``FrameResult.roi`` is the region the model saw.
        Raises ValueError for a malformed image or roi (nothing is run).
        """
        image, region = _region(image, roi, origin)
        clock = self._clock
        with _RUN_LOCK:
            state = self._state  # one consistent bank + config for the whole frame
            start = clock()
            p0 = time.perf_counter()
            x = state.bank.preprocess(image)  # (1, C, H, W) float32
            preprocess_ms = (time.perf_counter() - p0) * 1e3
            cfg, selector, est = state.config, state.selector, self.estimator
            max_threads, others = self._sense_cpu_load(cfg, selector)
            now = clock()
            remaining_ms = (capture_time - now) * 1e3 + cfg.deadline_ms - cfg.margin_ms
            t0 = time.perf_counter()
            choice = selector.select(remaining_ms, est.factors(), max_threads)
            selection_us = (time.perf_counter() - t0) * 1e6
            queue_age_ms = (start - capture_time) * 1e3
            if choice.skipped:
                timing = TimingRecord(None, choice.threads, choice.predicted_ms, 0.0, remaining_ms, False,
                                      choice.factor, queue_age_ms, selection_us, (clock() - capture_time) * 1e3,
                                      preprocess_ms=preprocess_ms, calibrated=state.calibration is not None,
                                      max_threads=max_threads, others_cores=others)
                return FrameResult(None, None, None, True, timing, roi=region)
            member = selector.members[choice.index]
            r0 = clock()
            out = _run(member, x, choice.threads)  # the task's model output for this frame
            r1 = clock()
            q0 = time.perf_counter()
            fields = _postprocess(state.bank, out, region, cfg.top_k)
            postprocess_ms = (time.perf_counter() - q0) * 1e3
            end = clock()
            actual_ms = (r1 - r0) * 1e3
            est.observe(choice.threads, actual_ms, choice.base_ms, option=choice.index)
            self._fold_estimates(selector)  # for the next frame
            self.miss_rates.observe((choice.index, choice.threads), actual_ms > remaining_ms)
            selector.set_miss_rates(self.miss_rates.rates(), self.miss_rates.prior)
        e2e_ms = (end - capture_time) * 1e3
        timing = TimingRecord(member.name, choice.threads, choice.predicted_ms, actual_ms, remaining_ms,
                              e2e_ms <= cfg.deadline_ms, choice.factor, queue_age_ms, selection_us, e2e_ms,
                              preprocess_ms=preprocess_ms, postprocess_ms=postprocess_ms,
                              calibrated=state.calibration is not None, max_threads=max_threads,
                              others_cores=others)
        return FrameResult(skipped=False, timing=timing, roi=region, **fields)

    def _fold_estimates(self, selector: Selector) -> None:
        """Hand the estimator's per-option factors to ``selector`` (``Selector.set_option_factors``):
        options in use at their own factor, the others never below their own calibration."""
        est = self.estimator
        selector.set_option_factors(est.option_factors(), est.factors(), est.active_options(),
                                    floors=est.priors()[1])

    def _sense_cpu_load(self, cfg: EngineConfig, selector: Selector) -> tuple[int, float | None]:
        """(max_threads for the selector, 0 = no limit; others' cores at the last reading).
        Under the run lock, before the time left is read: the reading (about 30 us, at most
        every 0.1 s) is paid by the frame that takes it."""
        if not cfg.sense_cpu_load or cfg.threads:
            return 0, None
        load = self.cpu_load
        if load.update():  # cores other processes held are free again: what was learned under it is stale
            self.estimator.forget_load()
            self._fold_estimates(selector)
            self.miss_rates.forget()
            selector.set_miss_rates({}, self.miss_rates.prior)
        return load.max_threads() or 0, load.others_cores


_NO_OUTPUT = {"class_id": None, "class_name": None, "score": None, "detections": None, "top": None}


def _region(image: np.ndarray, roi, origin) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """(the image the model sees, its region (x, y, w, h) in frame pixels); ValueError names a
    malformed image, roi or origin."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(
            f"image must be a non-empty HxW or HxWxC numpy array, got "
            f"{type(image).__name__}{getattr(image, 'shape', '')}"
        )
    h, w = image.shape[:2]
    clipped = clip_roi(roi, (h, w)) if roi is not None else None  # None for an empty roi too
    if clipped is not None:
        return crop(image, clipped), clipped
    try:
        ox, oy = (int(v) for v in origin)
    except (TypeError, ValueError):
        raise ValueError(f"origin must be (x, y) integers, got {origin!r}") from None
    if ox < 0 or oy < 0:
        raise ValueError(f"origin {origin!r} must be non-negative frame pixels")
    return image, (ox, oy, w, h)


def _postprocess(bank, out, region: tuple[int, int, int, int], top_k: int) -> dict:
    """The bank's task turns the model output into FrameResult fields in frame pixels; a task
    that ranks hypotheses (``ranks_top_k``: classification) is asked for its ``top_k`` best."""
    s = getattr(bank, "input_spec", None)
    input_hw = (s.height, s.width) if s is not None else (region[3], region[2])
    task = get_task(getattr(bank, "task", "classification"))
    extra = {"top_k": top_k} if getattr(task, "ranks_top_k", False) else {}
    fields = task.postprocess(out, getattr(bank, "class_names", None) or [], input_hw, region,
                              **extra)
    return {**_NO_OUTPUT, **fields}


def _run(member, x, threads: int):
    """The member's own runner (``bank.Member.run``: the bank's backend at ``threads``); plain
    PyTorch for member-like objects without one."""
    run = getattr(member, "run", None)
    if run is not None:
        return run(x, threads)
    return run_torch(member.module, x, threads)


def _materialise(bank) -> None:
    """Touch every member's module so a lazily loading bank is fully in memory before the switch."""
    for m in bank.members:
        _ = m.module
