"""Scoring of the deadline evaluation: pure functions over recorded per-frame outcomes.

The harness (``evaluation.deadline``) records, for every frame, the adaptive engine's own run
and a measurement of every option (member index, threads) on the same frame. Everything here
works on those records only, with no clock and no model, so a test can feed recorded or
invented outcomes and get exact results.

An option "meets" a frame's deadline when the frame's non-model time (``overhead_ms``, what
the adaptive run of that frame paid besides its model) plus the option's measured model time
is within the deadline. A policy's pick of a frame is a :class:`Pick`.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping, NamedTuple, Sequence

from vip_perception.quantiles import percentile

Option = tuple[int, int]  # (member index, threads)

POLICIES = ("adaptive", "static_largest", "static_smallest", "static_best_fit", "oracle")


class Pick(NamedTuple):
    """What one policy did on one frame."""

    index: int  # member index, -1 when the frame was skipped
    threads: int  # 0 when skipped
    met: bool  # the deadline was met (a skip counts as a miss)
    met_and_correct: bool  # met and the class was right
    correct: bool  # the class was right, whatever the time


@dataclass
class FrameRecord:
    """Measured outcome of one frame.

    ``run_ms`` / ``right``: model milliseconds and correctness of every option's run on this
    frame. ``remaining_ms``: time left at the adaptive's decision. ``decisions``: the option
    each decided policy (static_best_fit, oracle) chose (None = skipped), and ``selection_us``
    the microseconds each decision took, adaptive included.
    """

    overhead_ms: float
    remaining_ms: float
    run_ms: Mapping[Option, float]
    right: Mapping[Option, bool]
    adaptive: Pick
    decisions: dict = field(default_factory=dict)
    selection_us: dict = field(default_factory=dict)


def meets(option: Option, rec: FrameRecord, deadline_ms: float) -> bool:
    """True when ``option``'s measured run on this frame fits the deadline."""
    return rec.overhead_ms + rec.run_ms[option] <= deadline_ms


def score_option(option: Option | None, rec: FrameRecord, deadline_ms: float) -> Pick:
    """The :class:`Pick` of a policy that chose ``option`` (None = skipped) on ``rec``."""
    if option is None:
        return Pick(-1, 0, False, False, False)
    met = meets(option, rec, deadline_ms)
    right = bool(rec.right[option])
    return Pick(option[0], option[1], met, met and right, right)


def oracle_choice(options: Sequence[Option], rec: FrameRecord, accuracy: Sequence[float],
                  deadline_ms: float) -> Option | None:
    """The most accurate member (by validation ``accuracy``, ties to the faster run) among the
    options that met the deadline on this frame; None when none did. It knows each frame's
    measured latencies (not its label): an upper bound for a policy that decides before running."""
    met = [o for o in options if meets(o, rec, deadline_ms)]
    return max(met, key=lambda o: (accuracy[o[0]], -rec.run_ms[o])) if met else None


def best_fit_choice(lookup, remaining_ms: float) -> Option | None:
    """The profile lookup with no online adaptation: ``lookup.select`` (a runtime Selector)
    with every slowdown factor 1; None when it skips."""
    c = lookup.select(remaining_ms, {})
    return None if c.skipped else (c.index, c.threads)


def decide(rec: FrameRecord, options: Sequence[Option], accuracy: Sequence[float], lookup,
           deadline_ms: float, timer: Callable[[], float] = time.perf_counter) -> None:
    """Fill ``rec.decisions`` / ``rec.selection_us`` for static_best_fit and the oracle, timing
    each decision with ``timer`` (seconds)."""
    t0 = timer()
    rec.decisions["static_best_fit"] = best_fit_choice(lookup, rec.remaining_ms)
    t1 = timer()
    rec.decisions["oracle"] = oracle_choice(options, rec, accuracy, deadline_ms)
    t2 = timer()
    rec.selection_us["static_best_fit"] = (t1 - t0) * 1e6
    rec.selection_us["oracle"] = (t2 - t1) * 1e6


def fixed_selection_us(timer: Callable[[], float], fixed: Mapping[str, Option], name: str) -> float:
    """Microseconds a fixed policy takes to decide: looking up its constant."""
    t0 = timer()
    fixed[name]
    return (timer() - t0) * 1e6


def picks_of(records: Sequence[FrameRecord], fixed: Mapping[str, Option],
             deadline_ms: float) -> dict[str, list[Pick]]:
    """Per policy, its pick of every frame: the adaptive's own, each fixed option scored on the
    measurements, and the decided policies (static_best_fit, oracle) scored likewise."""
    out: dict[str, list[Pick]] = {"adaptive": [r.adaptive for r in records]}
    for name, option in fixed.items():
        out[name] = [score_option(option, r, deadline_ms) for r in records]
    for name in ("static_best_fit", "oracle"):
        out[name] = [score_option(r.decisions.get(name), r, deadline_ms) for r in records]
    return out


def policy_summary(picks: Sequence[Pick], selection_us: Sequence[float], names: Sequence[str]) -> dict:
    """Miss ratio, accuracy over all frames (a miss or skip counts as wrong) and over the
    processed ones, selection cost, and the (member@threads) usage of one policy."""
    frames = len(picks)
    processed = [p for p in picks if p.index >= 0]
    misses = sum(1 for p in picks if not p.met)
    usage = Counter(f"{names[p.index]}@{p.threads}" for p in processed)
    return {
        "miss_ratio": misses / frames if frames else 0.0,
        "misses": misses,
        "skipped": frames - len(processed),
        "accuracy_all_frames": sum(1 for p in picks if p.met_and_correct) / frames if frames else 0.0,
        "accuracy_processed": (sum(1 for p in processed if p.correct) / len(processed)) if processed else None,
        "selection_us_p50": percentile(selection_us, 50),
        "selection_us_p99": percentile(selection_us, 99),
        "member_usage": dict(sorted(usage.items())),
        "member_counts": dict(sorted(Counter(names[p.index] for p in processed).items())),
    }


def best_fixed_in_hindsight(summaries: Mapping[str, dict]) -> dict | None:
    """The fixed policy with the highest ``accuracy_all_frames`` (first one on ties): what a
    policy that cannot see a frame's latency before running could at most have had by a fixed
    choice. None when there is no fixed policy."""
    if not summaries:
        return None
    best = max(summaries, key=lambda p: summaries[p]["accuracy_all_frames"])
    return {"policy": best, "accuracy_all_frames": summaries[best]["accuracy_all_frames"],
            "miss_ratio": summaries[best]["miss_ratio"]}


def score(records: Sequence[FrameRecord], static: Mapping[str, Option], extra: Mapping[str, Option],
          names: Sequence[str], deadline_ms: float) -> dict:
    """{"policies", "extra_policies", "best_fixed_in_hindsight", "picks"} of a run.

    ``static``: the fixed policies of the comparison (static_largest, static_smallest);
    ``extra``: every other fixed option, reported outside the comparison.
    """
    fixed = {**static, **extra}
    picks = picks_of(records, fixed, deadline_ms)
    sel = {p: [r.selection_us.get(p, 0.0) for r in records] for p in picks}
    policies = {p: policy_summary(picks[p], sel[p], names) for p in POLICIES if p in picks}
    extra_policies = {p: policy_summary(picks[p], sel[p], names) for p in extra}
    fixed_summaries = {p: (policies[p] if p in policies else extra_policies[p]) for p in fixed}
    return {"policies": policies, "extra_policies": extra_policies,
            "best_fixed_in_hindsight": best_fixed_in_hindsight(fixed_summaries), "picks": picks}


def recovery(met: Sequence[bool], choices: Sequence[Option], load_on: tuple[int, int],
             streak: int = 10) -> dict:
    """How fast the adaptive policy settles after each load change, in frames.

    ``met`` / ``choices``: the adaptive's per-frame deadline outcome and (member, threads);
    ``load_on``: the [onset, offset) frames of the load.
    """
    def settle(start):
        for k in range(start, len(met) - streak + 1):
            if all(met[k : k + streak]):
                return k - start
        return None

    on, off = load_on
    before = Counter(choices[max(0, on - 50) : on]).most_common(1)
    pre_choice = before[0][0] if before else None
    back = next((k - off for k in range(off, len(choices)) if choices[k] == pre_choice), None)
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
