"""Per-frame choice of (member, threads): the most accurate option predicted to fit the time left.

Seed paper 2 (Chai & Kang 2021) picks, for each image, the most accurate model whose profiled
time fits the time remaining, in constant time. We keep that lookup and add two things: the
thread count is part of the option (on 2 shared cores a busy neighbour makes 2 intra-op threads
catastrophically slow while 1 thread stays fast), and every prediction is the profiled quantile
times a slowdown factor learned online per thread count (``slowdown.SlowdownEstimator``).

Why the tables look the way they do: the slowdown factor is the same for every member at one
thread count, so ``base_ms * factor <= remaining`` is ``base_ms <= remaining / factor``. For each
thread count we keep the options sorted by base latency with a running (prefix) maximum of
accuracy; one ``bisect`` on ``remaining / factor`` then gives the best option that fits at that
thread count. A choice is O(thread counts x log members) with no Python work per member, and the
selector is pure: time and factors are passed in, nothing is read from a clock.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Mapping, NamedTuple, Sequence

QUANTILES = ("p50", "p95", "p99")
NO_FIT_POLICIES = ("fastest", "skip")


class Choice(NamedTuple):
    """One decision. ``index`` is the member's position in the bank (-1 when skipped)."""

    index: int
    threads: int
    predicted_ms: float  # base quantile x slowdown factor of the chosen (or fastest) option
    base_ms: float  # profiled quantile of that option, before the factor
    factor: float  # slowdown factor used for ``threads``
    fits: bool  # prediction <= remaining time
    skipped: bool  # nothing fitted and on_no_fit == "skip": run nothing, the frame is a miss


@dataclass(frozen=True)
class _ThreadTable:
    """Options at one thread count, sorted by base latency, with prefix-best accuracy."""

    threads: int
    base_ms: tuple[float, ...]  # ascending
    best_index: tuple[int, ...]  # member index of the most accurate option among base_ms[:k+1]
    best_acc: tuple[float, ...]  # its accuracy (non-decreasing)
    best_base_ms: tuple[float, ...]  # its base latency
    fastest_index: int  # member index of base_ms[0] (the no-fit fallback)


class Selector:
    """Pure lookup over a bank's per-thread latency profiles.

    members: objects with ``val_accuracy``, ``latency`` (threads -> profile) and
        ``quantile_ms(threads, q)`` (the bank's ``Member``). Accuracy ranks options by
        validation accuracy: the test split is for reporting only.
    quantile: which profiled quantile is the base prediction ("p50" | "p95" | "p99").
    threads: 0 = choose among every profiled thread count; N = only options at N threads.
    on_no_fit: "fastest" runs the option with the smallest prediction (a predicted miss);
        "skip" runs nothing and reports the frame as skipped.

    The factor applied at a thread count is never below the factor of a smaller thread count:
    a busy neighbour slows a run that needs more cores at least as much as one that needs
    fewer (measured here: 1 thread 1.9x, 2 threads 100x+). This keeps a thread count that has
    not been observed lately (its own factor still at, or aged back toward, the profile) from
    looking like a way out of a load that the other thread count is seeing right now.
    """

    def __init__(
        self,
        members: Sequence,
        quantile: str = "p95",
        threads: int = 0,
        on_no_fit: str = "fastest",
    ) -> None:
        if len(members) == 0:
            raise ValueError("bank.members is empty: a selector needs at least one member")
        if quantile not in QUANTILES:
            raise ValueError(f"latency_quantile must be one of {QUANTILES}, got {quantile!r}")
        if on_no_fit not in NO_FIT_POLICIES:
            raise ValueError(f"on_no_fit must be one of {NO_FIT_POLICIES}, got {on_no_fit!r}")
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
            raise ValueError(f"threads must be an integer >= 0 (0 = automatic), got {threads!r}")
        profiled = sorted({int(t) for m in members for t in m.latency})
        if not profiled:
            raise ValueError("bank members carry no latency profile: run `vip-perception bank profile`")
        if threads and threads not in profiled:
            raise ValueError(f"threads={threads} has no latency profile; profiled thread counts: {profiled}")
        self.members = tuple(members)
        self.quantile = quantile
        self.on_no_fit = on_no_fit
        self.thread_counts = tuple([threads] if threads else profiled)
        self._base: dict[tuple[int, int], float] = {}  # (member index, threads) -> base ms
        tables = []
        for t in self.thread_counts:
            rows = []
            for i, m in enumerate(self.members):
                if t not in m.latency:
                    continue
                base = float(m.quantile_ms(t, quantile))
                if not base > 0.0:
                    raise ValueError(f"member {m.name!r}: {quantile} latency at {t} threads must be > 0, got {base}")
                self._base[(i, t)] = base
                # Equal latency: the more accurate first, so the prefix max keeps the faster-or-equal one.
                rows.append((base, -float(m.val_accuracy), i))
            rows.sort()
            best_i, best_a, best_b = [], [], []
            cur_i, cur_a, cur_b = -1, float("-inf"), 0.0
            for base, neg_acc, i in rows:
                if -neg_acc > cur_a:  # strict: on equal accuracy keep the faster option
                    cur_i, cur_a, cur_b = i, -neg_acc, base
                best_i.append(cur_i)
                best_a.append(cur_a)
                best_b.append(cur_b)
            tables.append(
                _ThreadTable(
                    t,
                    tuple(r[0] for r in rows),
                    tuple(best_i),
                    tuple(best_a),
                    tuple(best_b),
                    rows[0][2] if rows else -1,
                )
            )
        self._tables = tuple(tb for tb in tables if tb.base_ms)
        if not self._tables:
            raise ValueError(f"no member has a latency profile at threads {list(self.thread_counts)}")
        # The hot path iterates plain tuples (cheaper than attribute access when cache-cold).
        self._rows = tuple(
            (tb.threads, tb.base_ms, tb.best_index, tb.best_acc, tb.best_base_ms, tb.fastest_index)
            for tb in self._tables
        )

    def base_ms(self, index: int, threads: int) -> float:
        """Profiled quantile of member ``index`` at ``threads`` (KeyError if not profiled)."""
        return self._base[(index, threads)]

    def options(self) -> list[tuple[int, int]]:
        """Every (member index, threads) this selector can choose, for harnesses and oracles."""
        return sorted(self._base)

    def select(self, remaining_ms: float, factors: Mapping[int, float]) -> Choice:
        """Most accurate option with ``base * factors[threads] <= remaining_ms``.

        Ties in accuracy go to the smaller prediction. ``factors`` maps thread count to the
        current slowdown factor; a missing thread count means 1.0 (trust the profile).
        Written for a cold cache (it runs once per frame, after the model has evicted
        everything): plain tuples, one bisect per thread count, the record built in C.
        """
        best_acc = -1.0
        best = None
        floor = 0.0
        for t, base, best_index, best_accs, best_base, _ in self._rows:  # ascending thread counts
            f = factors.get(t, 1.0)
            if f < floor:  # contention never hurts more threads less (see the class docstring)
                f = floor
            floor = f
            k = bisect_right(base, remaining_ms / f)
            if k:
                acc = best_accs[k - 1]
                pred = best_base[k - 1] * f
                if acc > best_acc or (acc == best_acc and pred < best[2]):
                    best_acc = acc
                    best = (best_index[k - 1], t, pred, best_base[k - 1], f, True, False)
        if best is not None:
            return tuple.__new__(Choice, best)
        return self._no_fit(factors)

    def _no_fit(self, factors: Mapping[int, float]) -> Choice:
        # Nothing fits: the option with the smallest prediction is the least-bad one.
        fast = None
        floor = 0.0
        for t, base, _, _, _, fastest_index in self._rows:
            f = max(factors.get(t, 1.0), floor)
            floor = f
            pred = base[0] * f
            if fast is None or pred < fast[2]:
                fast = (fastest_index, t, pred, base[0], f, False, False)
        if self.on_no_fit == "skip":
            return Choice(-1, *fast[1:6], True)
        return Choice(*fast)
