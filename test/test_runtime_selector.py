"""Selector: boundaries, per-thread choice, no-fit policies, bad inputs (pure, no clock)."""
import pytest

from test_runtime_fakes import FakeMember, three_members
from vip_perception.runtime import Selector


def names(sel, choice):
    return (sel.members[choice.index].name if choice.index >= 0 else None, choice.threads)


def test_exactly_fits_and_just_does_not():
    sel = Selector(three_members(), threads=1)
    assert names(sel, sel.select(6.0, {})) == ("m_large", 1)  # 6.0 <= 6.0
    assert names(sel, sel.select(5.999, {})) == ("m_mid", 1)
    assert names(sel, sel.select(3.0, {})) == ("m_mid", 1)
    assert names(sel, sel.select(2.999, {})) == ("m_small", 1)
    # with a factor: 6.0 * 2 = 12 fits 12 exactly, not 11.999
    assert names(sel, sel.select(12.0, {1: 2.0})) == ("m_large", 1)
    assert names(sel, sel.select(11.999, {1: 2.0})) == ("m_mid", 1)
    c = sel.select(12.0, {1: 2.0})
    assert c.fits and not c.skipped and c.predicted_ms == 12.0 and c.base_ms == 6.0 and c.factor == 2.0


def test_threads_are_part_of_the_choice():
    sel = Selector(three_members())
    assert sel.thread_counts == (1, 2)
    assert names(sel, sel.select(4.0, {})) == ("m_large", 2)  # only 2 threads fit the large one
    # 2 threads slowed 50x (busy neighbour): 1 thread wins
    assert names(sel, sel.select(4.0, {2: 50.0})) == ("m_mid", 1)
    assert names(sel, sel.select(6.0, {2: 50.0})) == ("m_large", 1)
    # both slowed
    assert names(sel, sel.select(5.0, {2: 50.0, 1: 3.0})) == ("m_small", 1)


def test_same_member_fits_at_both_thread_counts_takes_the_faster():
    sel = Selector(three_members())
    c = sel.select(100.0, {})
    assert names(sel, c) == ("m_large", 2) and c.predicted_ms == 4.0
    c = sel.select(100.0, {2: 1.6})  # 4 * 1.6 = 6.4 > 6.0 at 1 thread
    assert names(sel, c) == ("m_large", 1)


def test_prefix_max_skips_slower_but_worse_members():
    members = [
        FakeMember("fast_good", 0.90, {1: 1.0}),
        FakeMember("slow_bad", 0.70, {1: 5.0}),
        FakeMember("slowest_best", 0.95, {1: 9.0}),
    ]
    sel = Selector(members)
    assert names(sel, sel.select(6.0, {})) == ("fast_good", 1)
    assert names(sel, sel.select(9.0, {})) == ("slowest_best", 1)


def test_forced_threads_and_quantile():
    m = three_members()
    sel = Selector(m, threads=2)
    assert sel.thread_counts == (2,)
    assert names(sel, sel.select(100.0, {})) == ("m_large", 2)
    members = [FakeMember("a", 0.8, {1: 1.0}, p95_over_p50=2.0), FakeMember("b", 0.9, {1: 3.0}, p95_over_p50=2.0)]
    assert names(Selector(members, quantile="p50"), Selector(members, quantile="p50").select(3.0, {})) == ("b", 1)
    p95 = Selector(members, quantile="p95")
    assert names(p95, p95.select(3.0, {})) == ("a", 1)  # b's p95 is 6 ms


def test_no_fit_policies():
    fastest = Selector(three_members(), on_no_fit="fastest")
    c = fastest.select(0.5, {})
    assert names(fastest, c) == ("m_small", 2) and not c.fits and not c.skipped and c.predicted_ms == 1.0
    c = fastest.select(0.5, {2: 10.0})  # fastest prediction is now small at 1 thread (1.5 < 10)
    assert names(fastest, c) == ("m_small", 1)
    skip = Selector(three_members(), on_no_fit="skip")
    c = skip.select(0.5, {})
    assert c.skipped and not c.fits and c.index == -1
    c = skip.select(-3.0, {})  # deadline already passed
    assert c.skipped


@pytest.mark.parametrize(
    "kwargs, members, match",
    [
        ({}, [], "empty"),
        ({"quantile": "p90"}, None, "latency_quantile"),
        ({"on_no_fit": "wait"}, None, "on_no_fit"),
        ({"threads": -1}, None, "threads"),
        ({"threads": 4}, None, "threads=4 has no latency profile"),
    ],
)
def test_bad_inputs(kwargs, members, match):
    with pytest.raises(ValueError, match=match):
        Selector(three_members() if members is None else members, **kwargs)


def test_nonpositive_profile_is_rejected():
    with pytest.raises(ValueError, match="'zero'"):
        Selector([FakeMember("zero", 0.9, {1: 0.0})])


def test_options_and_base_ms():
    sel = Selector(three_members())
    assert len(sel.options()) == 6
    assert sel.base_ms(2, 1) == 6.0


def test_more_threads_are_never_assumed_less_slowed():
    sel = Selector(three_members())
    # 1 thread observed 3x slower, 2 threads never observed (1.0): 2 threads get 3x too
    c = sel.select(100.0, {1: 3.0})
    assert names(sel, c) == ("m_large", 2) and c.factor == 3.0 and c.predicted_ms == 12.0
    assert names(sel, sel.select(11.0, {1: 3.0})) == ("m_mid", 2)  # 2.0 * 3 = 6 fits, large 12 does not
    # the floor does not go the other way: a slow 2-thread factor leaves 1 thread alone
    assert names(sel, sel.select(6.0, {2: 50.0})) == ("m_large", 1)


def test_option_excess_scales_only_that_option_and_keeps_the_raw_base():
    from test_runtime_fakes import FakeMember

    members = [FakeMember("a", 0.80, {1: 1.0}), FakeMember("b", 0.90, {1: 2.0})]
    sel = Selector(members, "p50")
    assert sel.select(2.5, {1: 1.0}).index == 1
    sel.set_option_factors({(1, 1): 3.0, (0, 1): 0.9}, {1: 1.0})
    assert sel.option_scale == {(1, 1): 3.0}  # below the thread's factor: no excess
    c = sel.select(2.5, {1: 1.0})
    assert (c.index, c.base_ms, c.predicted_ms) == (0, 1.0, 1.0)
    c = sel.select(7.0, {1: 1.0})
    assert c.index == 1 and c.base_ms == 2.0 and c.predicted_ms == pytest.approx(6.0)
    sel.set_option_factors({(1, 1): 3.0}, {1: 3.0})  # the whole thread count is that slow now
    assert sel.option_scale == {} and sel.select(7.0, {1: 3.0}).index == 1


def test_an_option_in_use_may_run_below_its_thread_factor_an_idle_one_may_not():
    from test_runtime_fakes import FakeMember

    members = [FakeMember("a", 0.80, {1: 1.0}), FakeMember("b", 0.90, {1: 2.0})]
    sel = Selector(members, "p50")
    sel.set_option_factors({(1, 1): 0.5}, {1: 1.5})  # b's own record: 0.5x; the thread count: 1.5x
    assert sel.select(2.0, {1: 1.5}).index == 0  # idle: b is predicted 3.0 ms
    sel.set_option_factors({(1, 1): 0.5}, {1: 1.5}, active={(1, 1)})
    c = sel.select(2.0, {1: 1.5})
    assert c.index == 1 and c.predicted_ms == pytest.approx(1.0) and c.base_ms == 2.0


def test_an_idle_option_is_held_to_its_own_calibration_not_to_its_thread_factor():
    from test_runtime_fakes import FakeMember

    members = [FakeMember("a", 0.80, {1: 1.0}), FakeMember("b", 0.90, {1: 2.0})]
    sel = Selector(members, "p50")
    sel.set_option_factors({(0, 1): 0.5}, {1: 0.5}, active={(0, 1)})  # a ran at half its profile
    assert sel.select(1.5, {1: 0.5}).index == 0  # b idle: good news from a is not b's (2.0 ms)
    sel.set_option_factors({(0, 1): 0.5}, {1: 0.5}, active={(0, 1)}, floors={(1, 1): 0.6})
    c = sel.select(1.5, {1: 0.5})  # b's own calibration: 0.6x, predicted 1.2 ms
    assert c.index == 1 and c.predicted_ms == pytest.approx(1.2) and c.base_ms == 2.0
    sel.set_option_factors({}, {1: 1.5}, floors={(1, 1): 0.6})  # load: the thread factor rules
    assert sel.select(2.9, {1: 1.5}).index == 0 and sel.select(3.0, {1: 1.5}).index == 1


def test_max_threads_keeps_larger_thread_counts_out_fitting_or_not():
    sel = Selector(three_members())
    assert names(sel, sel.select(4.0, {}, max_threads=1)) == ("m_mid", 1)  # m_large@2 fits, not allowed
    assert names(sel, sel.select(4.0, {}, max_threads=0)) == ("m_large", 2)  # 0: no limit
    assert names(sel, sel.select(4.0, {}, max_threads=2)) == ("m_large", 2)
    # nothing fits: the least-bad option also stays within the limit
    c = sel.select(0.5, {}, max_threads=1)
    assert names(sel, c) == ("m_small", 1) and not c.fits
    assert names(sel, sel.select(0.5, {})) == ("m_small", 2)
    # a selector limited to 2 threads by configuration still has an option
    only2 = Selector(three_members(), threads=2)
    assert names(only2, only2.select(4.0, {}, max_threads=1)) == ("m_large", 2)
