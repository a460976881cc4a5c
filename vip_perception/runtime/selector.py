"""Per-frame choice of (member, threads): among the options predicted to fit the time left, the
one expected to get the most frames right (validation accuracy x (1 - its recent miss rate),
``set_miss_rates``; with no miss on record, simply the most accurate).

An option is a (member, thread count) pair: on shared cores a busy neighbour can make 2 intra-op
threads far slower while 1 thread stays fast. Every prediction is the profiled quantile times a
slowdown factor learned online per thread count (``slowdown.SlowdownEstimator``).

Why the tables look the way they do: the slowdown factor is the same for every member at one
thread count, so ``base_ms * factor <= remaining`` is ``base_ms <= remaining / factor``. For each
thread count we keep the options sorted by base latency with a running (prefix) maximum of
expected accuracy; one ``bisect`` on ``remaining / factor`` then gives the best option that fits at that
thread count. A choice is O(thread counts x log members) with no Python work per member, and the
selector is pure: time and factors are passed in, nothing is read from a clock. An option that
has shown on its own that it runs slower than its thread count's factor says (a large member
that a scheduler slice hits more often than the small one the factor was learned on) has its
base scaled by that ratio in the tables (``set_option_factors``, called between frames).
"""
from __future__ import annotations

from bisect import bisect_right
from typing import Mapping, NamedTuple, Sequence

QUANTILES = ("p50", "p95", "p99")
NO_FIT_POLICIES = ("fastest", "skip")


class Choice(NamedTuple):
    """One decision. ``index`` is the member's position in the bank (-1 when skipped)."""

    index: int
    threads: int
    predicted_ms: float  # base quantile x slowdown factor (x the option's own scale, if any)
    base_ms: float  # profiled quantile of that option, before any factor (what observations are relative to)
    factor: float  # slowdown factor used for ``threads``
    fits: bool  # prediction <= remaining time
    skipped: bool  # nothing fitted and on_no_fit == "skip": run nothing, the frame is a miss


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
    fewer. This keeps a thread count that has
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
        for t in self.thread_counts:
            for i, m in enumerate(self.members):
                if t not in m.latency:
                    continue
                base = float(m.quantile_ms(t, quantile))
                if not base > 0.0:
                    raise ValueError(f"member {m.name!r}: {quantile} latency at {t} threads must be > 0, got {base}")
                self._base[(i, t)] = base
        self.option_scale: dict[tuple[int, int], float] = {}  # (index, threads) -> own factor / thread factor
        self.miss_rates: dict[tuple[int, int], float] = {}  # (index, threads) -> rate, rounded; absent = prior
        self._miss_prior = 0.0
        self._rows = self._build_rows({})
        if not self._rows:
            raise ValueError(f"no member has a latency profile at threads {list(self.thread_counts)}")

    def _build_rows(self, scale: Mapping[tuple[int, int], float]) -> tuple:
        """Per thread count: options sorted by effective base (profile x the option's own scale),
        prefix-best accuracy. Plain tuples: the hot path iterates them cache-cold."""
        rows_out = []
        for t in self.thread_counts:
            rows = []
            for (i, tt), base in self._base.items():
                if tt != t:
                    continue
                # Equal latency: the more accurate first, so the prefix max keeps the faster-or-equal one.
                rows.append((base * scale.get((i, t), 1.0), -self.expected_accuracy(i, t), i, base))
            if not rows:
                continue
            rows.sort()
            best_i, best_a, best_b, best_raw = [], [], [], []
            cur = (-1, float("-inf"), 0.0, 0.0)
            for eff, neg_acc, i, base in rows:
                if -neg_acc > cur[1]:  # strict: on equal accuracy keep the faster option
                    cur = (i, -neg_acc, eff, base)
                best_i.append(cur[0])
                best_a.append(cur[1])
                best_b.append(cur[2])
                best_raw.append(cur[3])
            fast = rows[0]
            rows_out.append((t, tuple(r[0] for r in rows), tuple(best_i), tuple(best_a), tuple(best_b),
                             tuple(best_raw), fast[2], fast[3]))
        return tuple(rows_out)

    def set_option_factors(self, option_factors: Mapping[tuple[int, int], float],
                           thread_factors: Mapping[int, float], active=frozenset(),
                           floors: Mapping[tuple[int, int], float] | None = None) -> None:
        """Fold what each option has shown on its own into the tables, between frames.

        ``option_factors[(index, threads)]``: that option's own slowdown (``SlowdownEstimator.
        option_factors``). An ``active`` option (in current use, ``SlowdownEstimator.
        active_options``) is predicted from its own factor. Any other option gets the largest of
        its thread count's factor, its own (if it has run) and its floor: ``floors[(index,
        threads)]``, the ratio its own start-up calibration runs measured on this machine
        (``SlowdownEstimator.priors``), else 1 (its profile). A thread count's factor above 1 is
        load, which slows every member; below 1 it says the profiles of the members that ran
        were pessimistic, which does not carry over to the others: good news must be earned, by
        the option's own runs. So a bank profiled on a slower machine kind serves here the
        members this machine's speed allows, not only the ones in use. The option's base is
        scaled by effective / thread factor, so one bisect per thread count still finds the best
        fit. Why per option at all: the thread count's factor is learned mostly on the member
        that runs most, and members do not slow down alike (a scheduler slice hits a long run
        more often). The tables are replaced in one assignment, so a concurrent ``select`` sees
        the old or the new ones. The engine calls this after a frame's result is ready, so
        ``select`` itself stays one bisect per thread count.
        """
        floors = floors or {}
        scale = {}
        for (i, t) in self._base:
            ft = max(thread_factors.get(t, 1.0), 1e-9)
            own = option_factors.get((i, t))
            if (i, t) in active:  # its own record, both ways
                eff = own
            else:  # bad news transfers, good news must be earned: never below its own measurement
                eff = max(ft, floors.get((i, t), 1.0), own if own is not None else 0.0)
            if abs(eff / ft - 1.0) > 1e-12:
                scale[(i, t)] = eff / ft
        if scale != self.option_scale:
            self._rows = self._build_rows(scale)
            self.option_scale = scale

    def expected_accuracy(self, index: int, threads: int) -> float:
        """Validation accuracy x (1 - the option's miss rate): the share of frames it would get
        right, a missed frame counting as wrong. What options that fit are ranked by."""
        rate = self.miss_rates.get((index, threads), self._miss_prior)
        return float(self.members[index].val_accuracy) * (1.0 - rate)

    def set_miss_rates(self, rates: Mapping[tuple[int, int], float], prior: float) -> None:
        """Rank options by ``expected_accuracy`` with these miss rates (``runtime.miss_rate``;
        options without one at ``prior``), between frames. Rates are rounded to 0.1 points, so
        the tables are rebuilt only when a rate has moved by that much."""
        rounded = {k: round(float(v), 3) for k, v in rates.items() if k in self._base}
        prior = round(float(prior), 3)
        if rounded != self.miss_rates or prior != self._miss_prior:
            self.miss_rates, self._miss_prior = rounded, prior
            self._rows = self._build_rows(self.option_scale)

    def base_ms(self, index: int, threads: int) -> float:
        """Profiled quantile of member ``index`` at ``threads`` (KeyError if not profiled)."""
        return self._base[(index, threads)]

    def options(self) -> list[tuple[int, int]]:
        """Every (member index, threads) this selector can choose, for harnesses and oracles."""
        return sorted(self._base)

    def select(self, remaining_ms: float, factors: Mapping[int, float], max_threads: int = 0) -> Choice:
        """Most accurate option with ``base * factors[threads] <= remaining_ms``.

        Ties in accuracy go to the smaller prediction. ``factors`` maps thread count to the
        current slowdown factor; a missing thread count means 1.0 (trust the profile).
        ``max_threads``: options at more threads are not chosen, fitting or not (the cores
        other processes leave free, ``runtime.cpu_load``); 0 = no limit. The smallest
        profiled thread count is always allowed.
        Written for a cold cache (it runs once per frame, after the model has evicted
        everything): plain tuples, one bisect per thread count, the record built in C.
        """
        best_acc = -1.0
        best = None
        floor = 0.0
        first = self._rows[0][0]
        for t, base, best_index, best_accs, best_base, best_raw, _, _ in self._rows:  # ascending thread counts
            if t > max_threads > 0 and t != first:
                break
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
                    best = (best_index[k - 1], t, pred, best_raw[k - 1], f, True, False)
        if best is not None:
            return tuple.__new__(Choice, best)
        return self._no_fit(factors, max_threads)

    def _no_fit(self, factors: Mapping[int, float], max_threads: int) -> Choice:
        # Nothing fits: the option with the smallest prediction is the least-bad one.
        fast = None
        floor = 0.0
        for t, base, _, _, _, _, fastest_index, fastest_raw in self._rows:
            if t > max_threads > 0 and fast is not None:
                break
            f = max(factors.get(t, 1.0), floor)
            floor = f
            pred = base[0] * f
            if fast is None or pred < fast[2]:
                fast = (fastest_index, t, pred, fastest_raw, f, False, False)
        if self.on_no_fit == "skip":
            return Choice(-1, *fast[1:6], True)
        return Choice(*fast)
