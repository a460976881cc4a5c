"""Online slowdown factor per thread count: how much slower than its profile the machine runs now.

Estimator: for each thread count, a window of the last ``window`` log-ratios
``log(observed_ms / profiled_ms)`` (clipped to ``[log clip_low, log clip_high]``); the factor is
``exp`` of the ``rank``-th largest of them, after each one has been aged toward 0 with a
half-life of ``half_life`` frames (frames = observations at any thread count).

Why an order statistic and not a mean:
- Contention on 2 cores is bimodal, not noisy: with one busy neighbour a 2-thread run either
  completes normally or waits a whole scheduler slice (0.2 ms -> 48 ms measured here). A mean
  or EWMA blends the modes into a factor that is wrong for both; a high order statistic says
  "this is how slow it gets now", which is what a deadline needs.
- Fast on a step: the factor jumps after ``rank`` slow frames (2 by default), whatever the
  previous level, because the new values simply become the largest ones.
- Robust: ``rank - 1`` isolated outliers per full window (a 1-thread run hit by one scheduler
  slice, which no choice of member could have avoided) do not move it, so one stall does not
  demote the model for the next frames. A window that is not full yet (start-up, or a thread
  count coming back after a probe) uses its worst sample instead: too little evidence to call
  anything an outlier, and a probe that was fast by luck is withdrawn at the first slow run.
- Close to the configured quantile: the 2nd largest of 16 sits near the 90th percentile of
  the current ratios, so prediction = profiled p95 x factor tracks the high tail of what runs
  take now (the 2nd of 8 sat near the 80th, too optimistic on a tight deadline: measured).
- Decays when load leaves: slow values drop out of the window after
  ``window - rank + 1`` frames (15 by default); until then smaller members run, which costs
  accuracy, never deadlines.
- Log-ratios and clipping bound the influence of any single sample (a 1000x page-fault stall
  counts like a 256x one) and keep factors below 1 symmetric with factors above 1.

Thread counts that stop being chosen: a thread count that got slow is then never chosen, so it
never gets the observations that would show the load has gone. Its stored log-ratios therefore
age toward 0 (factor toward 1, the profile) with a half-life in frames. Once the aged factor
lets one of its options beat the others, the selector tries it: that run is the probe. Samples
older than ``stale_after`` frames are dropped when a new one arrives, so the probe is judged on
its own: slow (load still there) -> the factor is back up at once, for the price of one miss,
and the next probe waits another few half-lives; fast (load gone) -> the thread count is back
in use from the next frame (and dropped again at its first slow run while its window refills,
so a probe that was fast by luck under load costs at most one more miss). With the default half-life of 50 frames and a 200x slowdown a probe
happens about every 250 frames under constant load, and 2 threads come back within about that
many frames after the load leaves; the thread count in use recovers within ``window`` frames
either way. (The selector also never lets a larger thread count look less slowed than a
smaller one, so an unobserved or aged 2-thread factor cannot undercut a loaded 1-thread one.) A probe that risked nothing would need an idle slot the size of the loaded latency
(tens of ms), which a frame stream does not promise.

Unobserved thread counts have factor 1.0 (the profile is the prior). Not thread-safe on its
own: the engine calls it under its inference lock.
"""
from __future__ import annotations

import math
from collections import deque


class SlowdownEstimator:
    """Per-thread-count factor = rank-th largest aged log-ratio in a sliding window (see module doc)."""

    def __init__(
        self,
        window: int = 16,
        rank: int = 2,
        half_life: float = 50.0,
        clip_low: float = 1.0 / 16.0,
        clip_high: float = 256.0,
        stale_after: int | None = None,
    ) -> None:
        if window < 1:
            raise ValueError(f"slowdown window must be >= 1, got {window}")
        if not 1 <= rank <= window:
            raise ValueError(f"slowdown rank must be in [1, window={window}], got {rank}")
        if not half_life > 0:
            raise ValueError(f"slowdown half_life must be > 0 frames, got {half_life}")
        if not 0 < clip_low <= 1 <= clip_high:
            raise ValueError(f"slowdown clip must satisfy 0 < clip_low <= 1 <= clip_high, got {clip_low}, {clip_high}")
        self.window = window
        self.rank = rank
        self.half_life = float(half_life)
        self.stale_after = 4 * window if stale_after is None else int(stale_after)
        if self.stale_after < window:
            raise ValueError(f"slowdown stale_after must be >= window={window} frames, got {self.stale_after}")
        self._lo = math.log(clip_low)
        self._hi = math.log(clip_high)
        self._step = 0
        self._obs: dict[int, deque] = {}  # threads -> deque[(step, log_ratio)]
        self._factors: dict[int, float] = {}

    def reset(self) -> None:
        """Forget everything (e.g. the profile quantile changed, so old ratios mean something else)."""
        self._step = 0
        self._obs.clear()
        self._factors = {}

    def observe(self, threads: int, observed_ms: float, profiled_ms: float) -> None:
        """Feed one inference: its measured time and the profiled quantile it was predicted from."""
        if not (profiled_ms > 0 and observed_ms >= 0 and math.isfinite(observed_ms)):
            return  # a broken measurement must not poison the estimate
        lr = math.log(max(observed_ms, 1e-9) / profiled_ms)
        lr = min(max(lr, self._lo), self._hi)
        self._step += 1
        q = self._obs.get(threads)
        if q is None:
            q = self._obs[threads] = deque(maxlen=self.window)
        while q and self._step - q[0][0] > self.stale_after:  # a probe is judged on its own
            q.popleft()
        q.append((self._step, lr))
        self._recompute()

    def _recompute(self) -> None:
        # Done once per observation (off the selection path), for every thread count, because
        # aging advances for all of them. A few dozen float operations.
        step, hl = self._step, self.half_life
        out = {}
        for t, q in self._obs.items():
            aged = sorted((lr * 0.5 ** ((step - s) / hl) for s, lr in q), reverse=True)
            # A partial window (start-up, or a thread count being probed again) has too little
            # evidence to call anything an outlier: take its worst sample.
            out[t] = math.exp(aged[self.rank - 1] if len(aged) == self.window else aged[0])
        self._factors = out  # replaced, never mutated: readers always see a complete dict

    def factor(self, threads: int) -> float:
        return self._factors.get(threads, 1.0)

    def factors(self) -> dict[int, float]:
        """Current factors by thread count (absent = 1.0). Do not mutate."""
        return self._factors
