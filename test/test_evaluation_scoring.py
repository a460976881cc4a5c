"""Scoring of the deadline evaluation on recorded outcomes with a fake clock: exact results, no
model runs, no wall-clock time."""
from __future__ import annotations

import random

import pytest

from test_runtime_fakes import FakeMember
from vip_perception.evaluation import scoring
from vip_perception.evaluation.scoring import FrameRecord, Pick
from vip_perception.runtime.selector import Selector

ACC = [0.70, 0.80, 0.90]  # members ordered by accuracy: 0 fastest, 2 most accurate
PROFILE = {0: {1: 1.0, 2: 0.7}, 1: {1: 2.0, 2: 1.3}, 2: {1: 4.0, 2: 2.5}}  # index -> threads -> ms
OPTIONS = [(i, t) for i in range(3) for t in (1, 2)]
NAMES = ["small", "medium", "large"]


class FakeTimer:
    """Seconds that advance by a fixed step on every read."""

    def __init__(self, step_s: float = 1e-6) -> None:
        self.t, self.step = 0.0, step_s

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def lookup(threads: int = 2) -> Selector:
    members = [FakeMember(NAMES[i], ACC[i], PROFILE[i]) for i in range(3)]
    return Selector(members, "p95", threads, "fastest")


def recorded_frames(n: int, seed: int, nested: bool) -> list[FrameRecord]:
    """Invented per-option outcomes. ``nested``: a member is right whenever a less accurate one
    is (so the most accurate member that met is also right whenever any option met and was right)."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        slow = rng.choice((1.0, 1.0, 2.5, 6.0))  # the frame's contention
        run_ms = {o: PROFILE[o[0]][o[1]] * slow * rng.uniform(0.8, 1.3) for o in OPTIONS}
        level = rng.randint(0, 3)  # members >= 3 - level are right
        right = {o: (o[0] >= 3 - level) if nested else rng.random() < ACC[o[0]] for o in OPTIONS}
        adaptive = Pick(2, 2, True, right[(2, 2)], right[(2, 2)])
        records.append(FrameRecord(overhead_ms=rng.uniform(0.1, 0.5), remaining_ms=rng.uniform(0.5, 5.0),
                                   run_ms=run_ms, right=right, adaptive=adaptive))
    return records


def decided(records, deadline_ms, timer=None):
    sel = lookup()
    for r in records:
        scoring.decide(r, OPTIONS, ACC, sel, deadline_ms, timer or FakeTimer())
    return records


FIXED = {f"fixed_{NAMES[i]}@{t}": (i, t) for i, t in OPTIONS}


@pytest.mark.parametrize("seed", range(5))
def test_oracle_misses_no_more_than_any_fixed_option(seed):
    records = decided(recorded_frames(200, seed, nested=False), deadline_ms=3.0)
    picks = scoring.picks_of(records, FIXED, 3.0)
    oracle_misses = sum(not p.met for p in picks["oracle"])
    for name in FIXED:
        assert oracle_misses <= sum(not p.met for p in picks[name]), name
    # the oracle misses exactly the frames where no option met the deadline
    assert oracle_misses == sum(not any(scoring.meets(o, r, 3.0) for o in OPTIONS) for r in records)


@pytest.mark.parametrize("seed", range(5))
def test_oracle_accuracy_at_least_every_fixed_option(seed):
    records = decided(recorded_frames(200, seed, nested=True), deadline_ms=3.0)
    out = scoring.score(records, {}, FIXED, NAMES, 3.0)
    oracle = out["policies"]["oracle"]["accuracy_all_frames"]
    for name, summary in out["extra_policies"].items():
        assert oracle >= summary["accuracy_all_frames"], name
    assert oracle >= out["best_fixed_in_hindsight"]["accuracy_all_frames"]


def test_oracle_picks_the_most_accurate_option_that_met():
    r = FrameRecord(overhead_ms=0.5, remaining_ms=3.0, adaptive=Pick(-1, 0, False, False, False),
                    run_ms={(0, 1): 1.0, (0, 2): 0.8, (1, 1): 2.4, (1, 2): 2.0, (2, 1): 5.0, (2, 2): 2.6},
                    right={o: True for o in OPTIONS})
    assert scoring.oracle_choice(OPTIONS, r, ACC, 3.0) == (1, 2)  # (2, 2): 0.5 + 2.6 > 3.0
    assert scoring.oracle_choice(OPTIONS, r, ACC, 3.1) == (2, 2)
    assert scoring.oracle_choice(OPTIONS, r, ACC, 1.0) is None


def test_static_best_fit_equals_a_factor_one_selector():
    records = decided(recorded_frames(300, 7, nested=False), deadline_ms=3.0)
    reference = lookup()
    for r in records:
        c = reference.select(r.remaining_ms, {1: 1.0, 2: 1.0})
        expected = None if c.skipped else (c.index, c.threads)
        assert r.decisions["static_best_fit"] == expected
    picks = scoring.picks_of(records, {}, 3.0)["static_best_fit"]
    assert [(p.index, p.threads) for p in picks] == [
        (-1, 0) if r.decisions["static_best_fit"] is None else r.decisions["static_best_fit"] for r in records]


def test_best_fixed_in_hindsight_is_the_maximum_over_fixed_options():
    records = decided(recorded_frames(200, 3, nested=False), deadline_ms=2.0)
    static = {"static_largest": (2, 2), "static_smallest": (0, 2)}
    extra = {k: v for k, v in FIXED.items() if v not in static.values()}
    out = scoring.score(records, static, extra, NAMES, 2.0)
    fixed = {**{k: out["policies"][k] for k in static}, **out["extra_policies"]}
    best = out["best_fixed_in_hindsight"]
    assert best["accuracy_all_frames"] == max(v["accuracy_all_frames"] for v in fixed.values())
    assert fixed[best["policy"]]["accuracy_all_frames"] == best["accuracy_all_frames"]
    assert scoring.best_fixed_in_hindsight({}) is None


def test_decisions_are_timed_with_the_given_clock():
    records = decided(recorded_frames(3, 0, nested=False), deadline_ms=3.0, timer=FakeTimer(step_s=2e-6))
    for r in records:
        assert r.selection_us["static_best_fit"] == pytest.approx(2.0)
        assert r.selection_us["oracle"] == pytest.approx(2.0)


def test_policy_summary_counts():
    picks = [Pick(0, 1, True, True, True), Pick(1, 2, False, False, True), Pick(-1, 0, False, False, False),
             Pick(0, 1, True, False, False)]
    s = scoring.policy_summary(picks, [1.0, 2.0, 3.0, 4.0], NAMES)
    assert s["misses"] == 2 and s["miss_ratio"] == 0.5 and s["skipped"] == 1
    assert s["accuracy_all_frames"] == 0.25 and s["accuracy_processed"] == pytest.approx(2 / 3)
    assert s["member_usage"] == {"medium@2": 1, "small@1": 2}
    assert s["member_counts"] == {"medium": 1, "small": 2}
