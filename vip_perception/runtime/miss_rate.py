"""How often each (member, threads) option has missed lately: its share of runs that took
longer than the time the frame had left for it.

Why, beside the slowdown estimate: the selector asks an option's predicted p95 to fit, so an
option whose runs overrun on 4% of frames is a fair choice by that rule. A missed frame counts
as wrong, though, so a member 0.7 points more accurate than the next one is worth running only
while it misses on less than about 0.75% of its runs (0.933 x 0.9925 = 0.926). The selector therefore ranks the options
that fit by validation accuracy x (1 - miss rate), the share of frames each would get right
(``Selector.set_miss_rates``). Measured on the station bank under a constant neighbour: at a
15.8 ms deadline the top member at one thread fitted its p95 prediction, was served on 419 of
900 frames and missed 17 of them (``benchmarks/deadline_station_constant.json`` at commit
6ff19c6); the next member, which fitted as well, missed none.

Estimate: misses and runs counted per option, both halved every ``half_life`` frames (frames =
observations of any option), with ``strength`` runs' worth of a prior rate ``prior``:
``rate = (misses + prior * strength) / (runs + strength)``. Options start, and return as their
record fades, at the prior, which is the same for every option, so the ranking is the
accuracy ranking until an option's own runs say otherwise. One miss in a few hundred runs
barely moves it; two misses in fifty take a 0.7-point lead away; an option that missed stays
out until its record has faded (a few half-lives; one is 30 s at 30 fps), then is tried again.
``forget`` drops every record: the engine calls it when the load that caused them has left
(``runtime.cpu_load``) and when it serves another bank.
"""
from __future__ import annotations


class MissRates:
    """Per-option miss rate with a shared prior (see the module docstring)."""

    def __init__(self, prior: float = 0.01, strength: float = 100.0, half_life: float = 900.0) -> None:
        if not 0.0 <= prior < 1.0:
            raise ValueError(f"miss-rate prior must be in [0, 1), got {prior}")
        if not strength > 0:
            raise ValueError(f"miss-rate strength must be > 0 runs, got {strength}")
        if not half_life > 0:
            raise ValueError(f"miss-rate half_life must be > 0 frames, got {half_life}")
        self.prior, self.strength, self.half_life = float(prior), float(strength), float(half_life)
        self._decay = 0.5 ** (1.0 / float(half_life))
        self._counts: dict = {}  # option -> [misses, runs], decayed

    def observe(self, option, missed: bool) -> None:
        """One run of ``option`` (any hashable, e.g. (member index, threads)): did it take
        longer than the time left for it? Every record fades by one frame first."""
        d = self._decay
        for c in self._counts.values():
            c[0] *= d
            c[1] *= d
        c = self._counts.setdefault(option, [0.0, 0.0])
        c[0] += 1.0 if missed else 0.0
        c[1] += 1.0

    def rate(self, option) -> float:
        """The option's estimated miss rate; the prior for one without a record."""
        misses, runs = self._counts.get(option, (0.0, 0.0))
        return (misses + self.prior * self.strength) / (runs + self.strength)

    def rates(self) -> dict:
        """{option: rate} for the options with a record (others: ``prior``)."""
        return {k: self.rate(k) for k in self._counts}

    def forget(self) -> None:
        """Drop every record: what they describe (a load, another bank) is gone."""
        self._counts.clear()
