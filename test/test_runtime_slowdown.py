"""SlowdownEstimator: prior, step response, outlier robustness, decay, aging of unused thread counts."""
import math

import pytest

from vip_perception.runtime import SlowdownEstimator


def feed(est, threads, ratio, n, base=2.0):
    for _ in range(n):
        est.observe(threads, ratio * base, base)


def test_prior_is_the_profile():
    est = SlowdownEstimator()
    assert est.factor(1) == 1.0 and est.factors() == {}


def test_default_takes_the_second_largest_of_32():
    """The default (2nd largest of 32, about the 94th percentile): one slow run in a full window
    is ignored, a second one raises the factor, and it stays up until that run leaves the
    window; a window that is not full yet takes its worst sample."""
    est = SlowdownEstimator(half_life=1e9)  # no aging: the window alone decides
    assert (est.window, est.rank) == (32, 2)
    feed(est, 1, 1.5, 1)
    assert est.factor(1) == pytest.approx(1.5)  # partial window: its worst
    feed(est, 1, 1.0, 31)
    assert est.factor(1) == pytest.approx(1.0)  # full: one outlier among 32
    feed(est, 1, 1.8, 1)  # an isolated stall: ignored
    assert est.factor(1) == pytest.approx(1.0)
    feed(est, 1, 1.5, 1)  # a second slow run: this is how slow it gets now
    assert est.factor(1) == pytest.approx(1.5)
    feed(est, 1, 1.0, 30)
    assert est.factor(1) == pytest.approx(1.5)  # both still in the window
    feed(est, 1, 1.0, 1)
    assert est.factor(1) == pytest.approx(1.0)  # the first has left: one slow run again


def test_learns_a_step_in_rank_frames_and_ignores_one_outlier():
    est = SlowdownEstimator(window=8, rank=2, half_life=50)
    feed(est, 2, 1.0, 8)
    assert est.factor(2) == pytest.approx(1.0)
    feed(est, 2, 40.0, 1)  # one slow frame: could be a single scheduler slice
    assert est.factor(2) == pytest.approx(1.0)
    feed(est, 2, 40.0, 1)  # two: load
    assert 30.0 < est.factor(2) <= 40.0
    # an isolated outlier among fast frames later on is ignored again
    feed(est, 2, 1.0, 8)
    feed(est, 2, 20.0, 1)
    feed(est, 2, 1.0, 3)
    assert est.factor(2) == pytest.approx(1.0, rel=0.05)


def test_partial_window_takes_its_worst_sample():
    est = SlowdownEstimator(window=8, rank=2)
    feed(est, 2, 30.0, 1)
    assert est.factor(2) == pytest.approx(30.0)
    feed(est, 2, 1.0, 6)  # 7 of 8: still the worst (aged a little)
    assert est.factor(2) > 20.0
    feed(est, 2, 1.0, 1)  # full window: one outlier among 8 is ignored
    assert est.factor(2) == pytest.approx(1.0)


def test_recovers_within_window_when_load_leaves():
    est = SlowdownEstimator(window=8, rank=2, half_life=50)
    feed(est, 1, 5.0, 8)
    assert est.factor(1) > 4.5
    factors = []
    for _ in range(10):
        feed(est, 1, 1.0, 1)
        factors.append(est.factor(1))
    recovered = next(i for i, f in enumerate(factors) if f < 1.05) + 1
    assert recovered <= 7  # window - rank + 1
    assert factors[-1] == pytest.approx(1.0)


def test_unused_thread_count_ages_back_toward_the_profile():
    est = SlowdownEstimator(window=8, rank=2, half_life=50)
    feed(est, 2, 200.0, 2)
    prev = est.factor(2)
    for k in range(1, 301):
        feed(est, 1, 1.0, 1)  # only 1 thread in use from now on
        f = est.factor(2)
        assert f <= prev
        prev = f
        if k == 50:  # one half-life: log factor halved
            assert f == pytest.approx(math.exp(math.log(200.0) * 0.5 ** (50 / 50)), rel=1e-6)
    assert 1.0 < est.factor(2) < 1.1  # ~6 half-lives later: close to the profile, probe-able
    feed(est, 2, 200.0, 1)  # the probe finds the load still there: back up at once (one miss)
    assert est.factor(2) > 150.0
    feed(est, 1, 1.0, 300)
    feed(est, 2, 1.0, 1)  # this probe finds the load gone (or was lucky): trusted from the next frame
    assert est.factor(2) == pytest.approx(1.0)
    feed(est, 2, 200.0, 1)  # lucky after all: withdrawn at the first slow run (window not full)
    assert est.factor(2) > 150.0


def test_ratios_are_clipped():
    est = SlowdownEstimator(window=8, clip_low=0.25, clip_high=16.0)
    feed(est, 1, 1e6, 3)
    assert est.factor(1) == pytest.approx(16.0, rel=0.05)
    feed(est, 1, 1e-6, 8)
    assert 0.25 <= est.factor(1) < 0.3  # aged a few frames toward 1


def test_broken_measurements_are_ignored_and_reset_forgets():
    est = SlowdownEstimator()
    est.observe(1, float("nan"), 1.0)
    est.observe(1, 1.0, 0.0)
    assert est.factors() == {}
    feed(est, 1, 3.0, 2)
    est.reset()
    assert est.factor(1) == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [{"window": 0}, {"rank": 0}, {"rank": 9, "window": 8}, {"half_life": 0}, {"clip_low": 2.0}, {"stale_after": 3}],
)
def test_bad_parameters(kwargs):
    with pytest.raises(ValueError, match="slowdown"):
        SlowdownEstimator(**kwargs)


def test_options_keep_their_own_record_and_a_probe_clears_the_old_ones():
    est = SlowdownEstimator(window=8, rank=2, half_life=50, stale_after=16)
    for _ in range(8):
        est.observe(1, 1.0, 2.0, option="small")  # 0.5x
    est.observe(1, 8.0, 4.0, option="large")  # 2x, once
    assert est.option_factors()[("small", 1)] == pytest.approx(0.5, rel=0.1)  # aged a little
    assert est.option_factors()[("large", 1)] == pytest.approx(2.0)  # partial window: its worst
    assert est.factor(1) == pytest.approx(0.5, rel=0.1)  # rank 2 of the thread's 8: one outlier ignored
    est.observe(2, 2.0, 2.0, option="small")
    assert ("small", 2) in est.option_factors() and ("large", 2) not in est.option_factors()
    for _ in range(20):  # only 2 threads run for a while
        est.observe(2, 2.0, 2.0, option="small")
    est.observe(1, 1.0, 2.0, option="small")  # 1 thread probed again after > stale_after frames
    assert ("large", 1) not in est.option_factors()  # its record from before the pause is gone
    est.forget_options()
    assert est.option_factors() == {} and est.factor(2) == pytest.approx(1.0)


def test_active_options_are_full_and_recent():
    est = SlowdownEstimator(window=4, rank=2)
    for _ in range(4):
        est.observe(1, 1.0, 1.0, option="a")
    assert est.active_options() == {("a", 1)}
    for _ in range(5):
        est.observe(1, 1.0, 1.0, option="b")
    assert est.active_options() == {("b", 1)}  # a's newest sample is 5 frames old


def _probe_cycle(est, threads, slow, quiet_threads=1):
    """Age ``threads`` until its factor is back under 1.05 (counting frames), then probe it once
    at ratio ``slow``. Returns the frames it took to become probe-able."""
    n = 0
    while est.factor(threads) >= 1.05:
        feed(est, quiet_threads, 1.0, 1)
        n += 1
    feed(est, threads, slow, 1)
    return n


def test_failed_probes_double_the_wait_and_a_passed_probation_resets_it():
    est = SlowdownEstimator(window=8, rank=2, half_life=20)
    feed(est, 2, 10.0, 2)  # a thread count caught by load
    waits = [_probe_cycle(est, 2, 10.0) for _ in range(5)]  # each probe finds the load still there
    assert est.backoff() == {2: 3}  # capped at MAX_BACKOFF
    assert [w / waits[0] for w in waits] == pytest.approx([1, 2, 4, 8, 8], rel=0.05)
    _probe_cycle(est, 2, 1.0)  # the load has gone: the probe is fast ...
    assert est.backoff() == {2: 3}  # ... but on probation until a window of samples passes
    feed(est, 2, 1.0, 7)
    assert est.backoff() == {}
    feed(est, 2, 10.0, 2)  # the next load is aged at the base half-life again
    assert _probe_cycle(est, 2, 1.0) == pytest.approx(waits[0], abs=2)


def test_probation_tolerates_runs_as_fast_as_predicted():
    est = SlowdownEstimator(window=8, rank=2, half_life=20)
    feed(est, 2, 10.0, 2)
    _probe_cycle(est, 2, 1.05)  # within PROBE_TOLERANCE of the profile
    feed(est, 2, 1.08, 7)
    assert est.backoff() == {}
    # a thread count in continuous use is never on probation: its slow runs are load, not probes
    est = SlowdownEstimator(window=8, rank=2, half_life=20)
    feed(est, 1, 1.0, 8)
    feed(est, 1, 5.0, 20)
    assert est.backoff() == {}


def test_an_option_that_keeps_missing_is_retried_less_often():
    est = SlowdownEstimator(window=8, rank=2, half_life=20)
    for _ in range(8):
        est.observe(1, 1.0, 1.0, option="small")
    retries = []
    since = 0
    for _ in range(2000):  # the large option is retried whenever its own factor has aged under 1.05
        if est.option_factors().get(("large", 1), 0.0) < 1.05:
            est.observe(1, 1.25, 1.0, option="large")  # 25% over its profile: a miss each time
            retries.append(since)
            since = 0
        else:
            est.observe(1, 1.0, 1.0, option="small")
            since += 1
    assert est.backoff()[("large", 1)] == 3
    gaps = retries[1:]  # frames between retries: doubling up to 8x
    assert [g / gaps[0] for g in gaps[:5]] == pytest.approx([1, 2, 4, 8, 8], rel=0.05)
    assert len(retries) <= 10  # the base half-life alone retries it every gaps[0] frames: ~45 times


def test_forget_load_drops_observations_and_back_off_but_keeps_priors():
    est = SlowdownEstimator(window=4, rank=2, half_life=10)
    est.seed({1: 1.3}, {})
    feed(est, 2, 40.0, 2)
    _probe_cycle(est, 2, 40.0)  # a failed probe: backed off
    for _ in range(3):
        est.observe(1, 2.0 * 1.8, 2.0, option=0)
    assert est.backoff() == {2: 1} and est.factor(2) > 20 and est.option_factors()
    est.forget_load()
    assert est.factor(1) == pytest.approx(1.3) and est.factor(2) == 1.0  # the calibration stays
    assert est.option_factors() == {} and est.backoff() == {} and est.active_options() == set()



def test_a_fast_probe_after_a_pause_is_judged_on_its_own_and_never_raises_the_factor():
    """A key back after a pause longer than its window drops the samples from before it. Kept,
    they made a fast probe raise the factor: the window, no longer full, took its worst sample
    (measured: 1.20 before a 1.06x probe, 1.48 after, the member held out 120 more frames)."""
    est = SlowdownEstimator(window=8, rank=2, half_life=20)  # stale_after = 32
    ratios = [1.0] * 6 + [2.0, 1.6]
    for r in ratios:  # "large" runs every 5th frame: its 8 samples span 36 frames
        est.observe(1, r, 1.0, option="large")
        for _ in range(4):
            est.observe(1, 1.0, 1.0, option="small")
    for _ in range(8):  # a pause: only "small" runs
        est.observe(1, 1.0, 1.0, option="small")
    before = est.option_factors()[("large", 1)]
    assert 1.1 < before < 1.6  # the 2nd largest of a full window, aged
    est.observe(1, 1.06, 1.0, option="large")  # the probe: fast
    after = est.option_factors()[("large", 1)]
    assert after == pytest.approx(1.06) and after < before
    est.observe(1, 1.5, 1.0, option="large")  # its window refills: a slow run counts at once
    assert est.option_factors()[("large", 1)] == pytest.approx(1.5, rel=0.02)
