"""Pareto and ε-Pareto selection over (latency, accuracy), and the dominated hypervolume.

The bank keeps only Pareto-optimal models and then a compact ε-Pareto subset (as Chai & Kang,
"Adaptive soft real-time classification", Technologies 2021), so the members' latency and
accuracy rise together and few models stay in memory. ε-dominance is that of Laumanns, Thiele,
Deb and Zitzler (2002, "Combining convergence and diversity in evolutionary multiobjective
optimization"), additive on accuracy: a ε-dominates b when a is no slower than b and at most ε
less accurate. All functions are pure: points in, indices out.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    """One model in objective space: lower latency and higher accuracy are better."""

    latency: float
    accuracy: float


def dominates(a: Point, b: Point) -> bool:
    """a Pareto-dominates b: no slower, no less accurate, and strictly better in one."""
    return a.latency <= b.latency and a.accuracy >= b.accuracy and (a.latency < b.latency or a.accuracy > b.accuracy)


def eps_dominates(a: Point, b: Point, eps: float) -> bool:
    """Additive ε-dominance on accuracy (Laumanns et al. 2002): a no slower, at most ε less accurate."""
    return a.latency <= b.latency and a.accuracy >= b.accuracy - eps


def pareto_front(points: Sequence[Point]) -> list[int]:
    """Indices of the non-dominated points, sorted by latency (so accuracy strictly rises).

    Exact duplicates keep the first index only. One sort plus a sweep: O(n log n).
    """
    order = sorted(range(len(points)), key=lambda i: (points[i].latency, -points[i].accuracy, i))
    front, best = [], float("-inf")
    for i in order:
        if points[i].accuracy > best:
            front.append(i)
            best = points[i].accuracy
    return front


def eps_pareto(points: Sequence[Point], eps: float, keep_best: bool = False,
               latency_tie: float = 0.0) -> list[int]:
    """Smallest subset of the Pareto front that ε-dominates every Pareto-optimal point.

    Greedy sweep by latency: along the front (accuracy rising with latency) a chosen point covers
    the following ones up to ε more accurate, and the fastest point is only covered by itself, so
    taking the first point not yet covered is optimal. ``keep_best`` also keeps the most accurate
    point (the set stays an ε-cover and grows by at most one), so the bank never gives up the best
    accuracy it has.

    ``latency_tie`` (a fraction, 0 = off): a front point whose next, more accurate neighbour is at
    most that much slower is treated as no faster than it and leaves the front first. Two profiles
    of one machine differ by a few per cent per member, so without it two members that close
    swap places in the selected set from one profile to the next; with it the more accurate one
    is kept each time. The result is still a subset of the front, so still monotonic.
    """
    if eps < 0:
        raise ValueError(f"epsilon must be >= 0, got {eps}")
    if not 0.0 <= latency_tie < 1.0:
        raise ValueError(f"latency_tie is a fraction in [0, 1), got {latency_tie}")
    front = pareto_front(points)
    if latency_tie:  # the front is sorted by latency, accuracy rising: compare each with its successor
        front = [i for k, i in enumerate(front)
                 if k + 1 == len(front) or points[front[k + 1]].latency > points[i].latency * (1.0 + latency_tie)]
    chosen: list[int] = []
    for i in front:
        if not chosen or points[i].accuracy > points[chosen[-1]].accuracy + eps:
            chosen.append(i)
    if keep_best and front and chosen[-1] != front[-1]:
        chosen.append(front[-1])
    return chosen


def hypervolume(points: Sequence[Point], ref: Point) -> float:
    """Area dominated by ``points`` and bounded by ``ref`` (latency above, accuracy below).

    Units: latency units x accuracy units. Points outside the reference box add nothing.
    """
    inside = [p for p in points if p.latency < ref.latency and p.accuracy > ref.accuracy]
    front = [inside[i] for i in pareto_front(inside)]
    area = 0.0
    for k, p in enumerate(front):
        nxt = front[k + 1].latency if k + 1 < len(front) else ref.latency
        area += (nxt - p.latency) * (p.accuracy - ref.accuracy)
    return area


def vip_unpaid_threads(names: Sequence[str], parents: Sequence[str | None], latency: Sequence[dict[int, float]],
                       min_speedup: float) -> dict[int, list[int]]:
    """{index of a ViP variant: the thread counts (profiled for it and its parent) at which it
    is less than ``min_speedup`` x faster than its parent} (``latency[i]``: threads -> ms); a
    variant that pays at every such count, or whose parent is not among ``names``, is absent.
    ``min_speedup`` <= 1 disables the rule (empty)."""
    if min_speedup <= 1.0:
        return {}
    index = {n: i for i, n in enumerate(names)}
    out = {}
    for i, parent in enumerate(parents):
        j = index.get(parent) if parent else None
        if j is None:
            continue
        short = sorted(t for t in set(latency[i]) & set(latency[j]) if latency[j][t] < min_speedup * latency[i][t])
        if short:
            out[i] = short
    return out


def unpaid_vip(names: Sequence[str], parents: Sequence[str | None], latency: Sequence[dict[int, float]],
               min_speedup: float, accuracy: Sequence[float] | None = None, max_drop: float = 1.0,
               at_threads: int | None = None) -> set[int]:
    """Indices of ViP variants (``parents[i]`` set) that do not pay for their accuracy: slower
    than ``min_speedup`` x their parent (``vip_unpaid_threads``) at ``at_threads`` (the thread
    count the served set is selected at; None: at any thread count both were profiled at), or,
    given ``accuracy`` (validation, fraction), more than ``max_drop`` below their parent. A
    variant whose parent is not among ``names`` is kept: nothing here to compare it with.
    ``min_speedup`` <= 1 and ``max_drop`` >= 1 disable their rule. A variant that pays at
    ``at_threads`` but not at another count is served at the counts where it pays
    (``served_threads``)."""
    out = {i for i, short in vip_unpaid_threads(names, parents, latency, min_speedup).items()
           if at_threads is None or at_threads in short}
    if accuracy is not None and max_drop < 1.0:
        index = {n: i for i, n in enumerate(names)}
        for i, parent in enumerate(parents):
            j = index.get(parent) if parent else None
            if j is not None and accuracy[j] - accuracy[i] > max_drop + 1e-12:
                out.add(i)
    return out


def served_threads(latency: Sequence[dict[int, float]], unpaid_threads: dict[int, list[int]],
                   chosen) -> dict[int, list[int]]:
    """{index in ``chosen``: the thread counts it is served at} for each chosen ViP variant that
    does not pay at every profiled count (``vip_unpaid_threads``); the others are served at
    every profiled count and are absent."""
    return {i: sorted(set(latency[i]) - set(unpaid_threads[i])) for i in chosen if i in unpaid_threads}
