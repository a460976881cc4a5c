"""Miss rates per option, and the selector ranking options that fit by expected accuracy."""
import pytest

from test_runtime_fakes import FakeMember, three_members
from vip_perception.runtime import Selector
from vip_perception.runtime.miss_rate import MissRates


def test_rate_is_the_prior_until_runs_say_otherwise():
    m = MissRates(prior=0.01, strength=100.0, half_life=1e12)
    assert m.rate("a") == pytest.approx(0.01) and m.rates() == {}
    for _ in range(100):
        m.observe("a", False)
    assert m.rate("a") == pytest.approx(1.0 / 200.0)  # (0 + 1) / (100 + 100)
    m.observe("a", True)
    m.observe("a", True)
    assert m.rate("a") == pytest.approx(3.0 / 202.0)
    assert m.rate("b") == pytest.approx(0.01)  # an option without runs keeps the prior
    m.forget()
    assert m.rates() == {} and m.rate("a") == pytest.approx(0.01)


def test_records_fade_with_the_half_life_in_frames():
    m = MissRates(prior=0.0, strength=100.0, half_life=10.0)
    for _ in range(20):
        m.observe("a", True)
    high = m.rate("a")
    for _ in range(40):  # frames spent on another option: "a" fades toward the prior
        m.observe("b", False)
    assert m.rate("a") < high / 4
    assert m.rates().keys() == {"a", "b"}


@pytest.mark.parametrize("kw", [{"prior": 1.0}, {"prior": -0.1}, {"strength": 0}, {"half_life": 0}])
def test_bad_settings_rejected(kw):
    with pytest.raises(ValueError):
        MissRates(**kw)


def test_an_option_that_misses_loses_to_a_slightly_less_accurate_one_that_does_not():
    """Both fit; the top member is 0.7 points more accurate but misses 4% of its runs:
    0.933 x 0.96 < 0.926 x 0.99, so the selector takes the other one."""
    members = [FakeMember("vip", 0.926, {1: 8.0}), FakeMember("top", 0.933, {1: 12.0})]
    sel = Selector(members, threads=1)
    sel.set_miss_rates({}, 0.01)  # the same prior for every option: the accuracy ranking
    assert sel.members[sel.select(15.0, {}).index].name == "top"
    sel.set_miss_rates({(1, 1): 0.04, (0, 1): 0.0}, 0.01)
    c = sel.select(15.0, {})
    assert sel.members[c.index].name == "vip" and c.fits
    assert sel.expected_accuracy(1, 1) == pytest.approx(0.933 * 0.96)
    assert sel.members[sel.select(10.0, {}).index].name == "vip"  # only one fits anyway
    sel.set_miss_rates({(1, 1): 0.004}, 0.01)  # a rare miss does not cost it the lead
    assert sel.members[sel.select(15.0, {}).index].name == "top"


def test_miss_rates_never_make_an_option_that_does_not_fit_win():
    sel = Selector(three_members(), threads=1)
    sel.set_miss_rates({(0, 1): 0.5, (1, 1): 0.5}, 0.0)  # small and mid miss half their runs
    assert sel.select(3.0, {}).index == 1  # large does not fit: mid is still the best that does
    assert sel.select(2.0, {}).index == 0
