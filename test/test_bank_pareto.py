"""Pareto front, ε-Pareto compact set and hypervolume on hand-made points (exact answers)."""
import pytest

from vip_perception.bank.pareto import Point, dominates, eps_dominates, eps_pareto, hypervolume, pareto_front

# latency (ms), accuracy
PTS = [
    Point(1.0, 0.80),  # 0 front
    Point(2.0, 0.85),  # 1 front
    Point(2.5, 0.84),  # 2 dominated by 1
    Point(3.0, 0.853),  # 3 front (within 0.005 of 1)
    Point(4.0, 0.90),  # 4 front
    Point(5.0, 0.90),  # 5 dominated by 4 (equal accuracy, slower)
    Point(6.0, 0.903),  # 6 front (within 0.005 of 4)
    Point(0.5, 0.50),  # 7 front (fastest)
]


def test_dominance_relations():
    assert dominates(PTS[1], PTS[2]) and not dominates(PTS[2], PTS[1])
    assert dominates(PTS[4], PTS[5]) and not dominates(PTS[4], PTS[4])
    assert eps_dominates(PTS[1], PTS[3], 0.005) and not eps_dominates(PTS[1], PTS[3], 0.001)
    assert not eps_dominates(PTS[3], PTS[1], 1.0)  # slower never ε-dominates


def test_pareto_front_exact():
    assert pareto_front(PTS) == [7, 0, 1, 3, 4, 6]
    assert pareto_front([]) == []
    assert pareto_front([Point(1, 0.5), Point(1, 0.5)]) == [0]  # duplicates keep the first


def test_eps_pareto_exact_sets():
    assert eps_pareto(PTS, 0.0) == [7, 0, 1, 3, 4, 6]
    assert eps_pareto(PTS, 0.005) == [7, 0, 1, 4]
    assert eps_pareto(PTS, 0.005, keep_best=True) == [7, 0, 1, 4, 6]
    assert eps_pareto(PTS, 0.06) == [7, 0, 4]
    assert eps_pareto(PTS, 0.5) == [7]
    with pytest.raises(ValueError, match="epsilon"):
        eps_pareto(PTS, -0.1)


def test_latency_tie_keeps_the_more_accurate_of_two_near_equal_members():
    pts = [Point(1.0, 0.80), Point(2.0, 0.85), Point(2.08, 0.86), Point(4.0, 0.90)]
    assert eps_pareto(pts, 0.0) == [0, 1, 2, 3]
    assert eps_pareto(pts, 0.0, latency_tie=0.05) == [0, 2, 3]  # 1 is 4% faster than 2: no faster
    assert eps_pareto(pts, 0.0, latency_tie=0.03) == [0, 1, 2, 3]  # 4% is more than a 3% tie
    swapped = [Point(1.0, 0.80), Point(2.08, 0.85), Point(2.0, 0.86), Point(4.0, 0.90)]  # 2 dominates 1
    assert eps_pareto(swapped, 0.0, latency_tie=0.05) == [0, 2, 3]  # the same member either way
    chain = [Point(1.0, 0.80), Point(1.04, 0.81), Point(1.08, 0.82)]
    assert eps_pareto(chain, 0.0, latency_tie=0.05) == [2]  # the fastest goes too when a tie away
    assert eps_pareto(PTS, 0.005, keep_best=True, latency_tie=0.05) == eps_pareto(PTS, 0.005, keep_best=True)
    for bad in (-0.01, 1.0):
        with pytest.raises(ValueError, match="latency_tie"):
            eps_pareto(PTS, 0.0, latency_tie=bad)


def test_eps_pareto_covers_front_minimally():
    eps = 0.005
    chosen = eps_pareto(PTS, eps)
    for i in pareto_front(PTS):
        assert any(eps_dominates(PTS[c], PTS[i], eps) for c in chosen)


def test_hypervolume_exact():
    ref = Point(10.0, 0.0)
    # staircase: [0.5,1)x0.5 + [1,2)x0.8 + [2,3)x0.85 + [3,4)x0.853 + [4,6)x0.9 + [6,10)x0.903
    expected = 0.5 * 0.5 + 1 * 0.8 + 1 * 0.85 + 1 * 0.853 + 2 * 0.9 + 4 * 0.903
    assert hypervolume(PTS, ref) == pytest.approx(expected)
    assert hypervolume([Point(2.0, 0.5)], Point(4.0, 0.25)) == pytest.approx(0.5)
    assert hypervolume([Point(5.0, 0.9)], Point(4.0, 0.0)) == 0.0  # outside the box
    # adding a dominated point changes nothing; adding a non-dominated one grows it
    assert hypervolume(PTS + [Point(7.0, 0.5)], ref) == pytest.approx(expected)
    assert hypervolume(PTS + [Point(0.25, 0.4)], ref) > expected


def test_selection_min_accuracy_and_vip_hypervolume():
    from vip_perception.bank.build_classifier import selection
    from vip_perception.bank.records import CandidateRecord, LatencyProfile

    def rec(name, kind, lat, acc):
        return CandidateRecord(name=name, kind=kind, spec={}, val_accuracy=acc,
                               latency={2: LatencyProfile(lat, lat, lat)})

    recs = [rec("junk", "base", 0.1, 0.5), rec("a", "base", 1.0, 0.85), rec("p", "parent", 4.0, 0.95),
            rec("v", "vip", 2.0, 0.93)]
    sel = selection(recs, 2, "p95", epsilon=0.0, keep_best=True, hv_accuracy_ref=0.8, min_accuracy=0.8)
    assert sel["frontier"] == ["a", "v", "p"] and sel["compact"] == ["a", "v", "p"]
    hv = sel["hypervolume"]
    ref = 1.05 * 4.0
    assert hv["without_vip"] == pytest.approx(3.0 * 0.05 + (ref - 4.0) * 0.15)
    assert hv["with_vip"] == pytest.approx(1.0 * 0.05 + 2.0 * 0.13 + (ref - 4.0) * 0.15)
    assert hv["vip_on_frontier"] == 1
    with pytest.raises(ValueError, match="min_accuracy"):
        selection(recs, 2, "p95", 0.0, True, 0.8, min_accuracy=0.99)
