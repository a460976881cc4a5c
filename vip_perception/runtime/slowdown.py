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
- Fast on a step: the factor jumps once ``rank`` slow frames are in the window (2 by default),
  whatever the previous level, because the new values simply become the largest; a window that
  is not full yet jumps at the first (below).
- Close to the configured quantile: the 2nd largest of 32 sits near the 94th percentile of the
  current ratios, so prediction = profiled p95 x factor tracks the high tail of what runs take
  now, as the selector's p95 contract says. Why 2 of 32 and not the largest of 16, which sits at
  the same percentile: the estimate is as high, with less of the variance that one sample
  brings. An option whose runs exceed the time left on one run in ten (2-thread ``vgg_xl`` of
  the station bank on the quiet shared VM, at a tight deadline) has at least one such run in 16 with probability 0.81
  and at least two in 32 with 0.84: both keep it out. An isolated stall, one run in a hundred
  (a 1-thread run hit by a scheduler slice, which no choice of member could have avoided), is
  the largest of 16 with probability 0.15 and the 2nd of 32 with 0.04: the largest of 16 held
  the option in use back after every such stall, until it left the window or aged out. Measured
  at the same deadlines (``benchmarks/README.md``, "The station bank at camera rate"): under a
  constant neighbour the largest of 16 fell back from ``vgg_xl.vip01`` to ``vgg_m`` on 43 and
  192 frames of 900, the 2nd of 32 on 8; in a step run at 12.69 ms 7 misses of 600 against 8,
  and ``vgg_xl`` at 2 threads on 392 quiet frames against 328. The 2nd largest of 16 (about the 88th
  percentile) was used before both: an option whose runs were bimodal right at the deadline
  (2-thread ``vgg_xl``, 12.1-12.5 ms on a good share of quiet runs, against 12.0 ms left) was
  predicted just under the time left again and again and missed 32 quiet frames of 400 at a
  1.0x deadline (``benchmarks/deadline_station_step_scale1.0.json`` at commit 75ad588).
- The price: a load that arrives while the window is full costs two slow frames, not one,
  before the factor rises (the engine's CPU-load reading usually removes the taken core's
  thread count within 0.1 s anyway). A window that is not full yet (start-up, or a key coming
  back after a probe) uses its worst sample whatever the rank: a probe that was fast by luck is
  withdrawn at the first slow run.
- Decays when load leaves: slow values drop out of the window after
  ``window - rank + 1`` frames (31 by default); until then smaller members run, which costs
  accuracy, never deadlines.
- Log-ratios and clipping bound the influence of any single sample (a 1000x page-fault stall
  counts like a 256x one) and keep factors below 1 symmetric with factors above 1.

Thread counts that stop being chosen: a thread count that got slow is then never chosen, so it
never gets the observations that would show the load has gone. Its stored log-ratios therefore
age toward 0 (factor toward 1, the profile) with a half-life in frames. Once the aged factor
lets one of its options beat the others, the selector tries it: that run is the probe. A key
that comes back after a pause (its newest sample more than ``window`` frames old) drops its
samples from before the pause when the probe's arrives, so the probe is judged on its own: slow
(load still there) -> the factor is back up at once, for the price of one miss,
and the next probe waits another few half-lives; fast (load gone) -> the thread count is back
in use from the next frame (and dropped again at its first slow run while its window refills,
so a probe that was fast by luck under load costs at most one more miss). With the default
half-life of 50 frames and a 200x slowdown a probe happens about every 250 frames under
constant load, and 2 threads come back within about that many frames after the load leaves;
the thread count in use recovers within ``window`` frames either way. Why all of them: the
window left after a pause is not full, and a window that is not full takes its worst sample
(below), so old samples kept beside a fast probe raised the factor instead. Measured under a
constant neighbour (``benchmarks/deadline_station_constant_xeon_run2.json``): ``vgg_xl.vip01``
at one thread, 68 frames after a burst of slow runs, was probed at 1.06x its profile; its factor,
1.20 before (2nd largest of a full window), became 1.48 (the aged worst of the 20 samples
younger than the old ``stale_after`` cut), and the member stayed out for 120 more frames.
Samples older than ``stale_after`` frames are dropped at every arrival, which bounds what a key
used now and then remembers. (The selector also never
lets a larger thread count look less slowed than a smaller one, so an unobserved or aged
2-thread factor cannot undercut a loaded 1-thread one.) A probe that risked nothing would need
an idle slot the size of the loaded latency (tens of ms), which a frame stream does not promise.
Where the kernel's counters are readable the engine needs fewer probes: ``runtime.cpu_load``
keeps thread counts that need cores other processes hold out of the choice, and when those
cores are free again it calls ``forget_load``, so the keys the load pushed out are back at once.

Backing off probes that fail: a key (thread count or option) that comes back after a pause (its
newest sample more than ``window`` frames old) is on probation for its next ``window`` samples.
A probation sample more than ``PROBE_TOLERANCE`` x slower than predicted (the factor before it,
at least 1) means the aging let it back too early: the load is still there. Its samples then age
with twice the half-life (up to ``2 ** MAX_BACKOFF`` times), so the next probe waits twice as
long; a probation that passes resets it. Why: under a constant load a member that misses on a
fifth of its runs (the top member at 1 thread, hit by scheduler slices) or a thread count whose
runs collapse on a third of them (2 threads beside a busy process: 9 ms -> 100+ ms) was retried
every 40-130 frames at the price of a miss each time (25 of 38 misses in one constant-load run);
with doubling, a run of N frames holds about log2(N / half_life) failed probes.

Per option too: each (member, threads) option that has run keeps the same kind of window of its
own log-ratios (``option_factors``), with the same rank, aging and stale rules. The thread-count
factor reacts to load for every member at once; an option's own factor catches what is specific
to it (members do not slow down alike: under one busy neighbour at 1 thread the small member ran
at 0.75x its paced profile while the large one was hit by 6-7 ms scheduler slices on a quarter of
its runs). The selector uses an option's factor only where it exceeds the thread count's, so
options start from the thread-count estimate and are held back by their own record, which ages
back toward the profile (factor 1), not toward the thread count's factor: an option that proved
worse than its thread count is retried only once the profile itself says it fits. An option in
current use (``active_options``: a full window, recently fed) is predicted from its own record
in both directions: a member whose profile overstates it (profiles taken on a busy machine
do) keeps running as long as its own runs fit. Options not in use never get below their thread
count's factor, so a load that arrives while they are idle is not hidden by an old, fast record.
When a thread count is probed after a pause, the options' records at it older than
``stale_after`` frames are dropped with the thread count's: the load they describe may be gone.

Unobserved thread counts have factor 1.0 (the profile is the prior), unless a start-up
calibration has set another prior (``seed``): a bank profiled on another machine kind describes
that machine, and the ratio measured here (observed median / profiled p50 per option, their
median per thread count; ``runtime.calibration``) then stands in for 1 everywhere above: it is
what an unobserved key reports, and what stored log-ratios age toward. A probe after a load
therefore tests against this machine's own speed, not the foreign profile's. A calibration
ratio far beyond what a machine kind explains (``MACHINE_RATIO_MAX``) was load during start-up:
it is kept as an ordinary observation that ages away, not as a prior. Until a key's
window is full its seed counts as one of its samples (a lucky first frame does not undo it).
``reset`` drops the
priors too (the engine re-seeds from its calibration report); ``forget_options`` drops the
options' priors with their records. Not thread-safe on its own: the engine calls it under its
inference lock.
"""
from __future__ import annotations

import math
from collections import deque

MACHINE_RATIO_MAX = 8.0  # a calibration ratio above this is load, not the machine's speed (``seed``)
PROBE_TOLERANCE = 1.1  # a probation sample this much slower than predicted is a failed probe
MAX_BACKOFF = 3  # failed probes double a key's half-life at most this many times (8x)


class SlowdownEstimator:
    """Per-thread-count factor = rank-th largest aged log-ratio in a sliding window (see module doc)."""

    def __init__(
        self,
        window: int = 32,
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
        self._opt_obs: dict[tuple, deque] = {}  # (option, threads) -> deque[(step, log_ratio)]
        self._opt_factors: dict[tuple, float] = {}
        self._prior: dict[int, float] = {}  # threads -> log-ratio prior (seed); absent = 0
        self._opt_prior: dict[tuple, float] = {}  # (option, threads) -> log-ratio prior
        self._backoff: dict = {}  # thread count or (option, threads) -> failed probes in a row
        self._probation: dict = {}  # key -> samples seen since it came back after a pause

    def reset(self) -> None:
        """Forget everything (e.g. the profile quantile changed, so old ratios mean something else)."""
        self._step = 0
        self._obs.clear()
        self._factors = {}
        self._prior = {}
        self._backoff.clear()
        self._probation.clear()
        self.forget_options()

    def forget_load(self) -> None:
        """Drop every observation, probation and back-off, keeping the priors: the load they
        describe has left (``runtime.cpu_load`` saw the cores it held become free). Every
        factor is its prior again (1, or the calibration's), so the keys that load had
        pushed out (more threads, the top member) are chosen again from the next frame
        instead of after their aged samples and backed-off probes let them (150-200 frames)."""
        self._obs.clear()
        self._opt_obs.clear()
        self._backoff.clear()
        self._probation.clear()
        self._factors = self._recompute(self._obs, self._prior)
        self._opt_factors = self._recompute(self._opt_obs, self._opt_prior)

    def forget_options(self) -> None:
        """Drop the per-option records and priors (a new bank: its options are other models)."""
        self._opt_obs = {}
        self._opt_factors = {}
        self._opt_prior = {}
        for key in [k for k in self._backoff if isinstance(k, tuple)]:
            del self._backoff[key]
        for key in [k for k in self._probation if isinstance(k, tuple)]:
            del self._probation[key]

    def seed(self, thread_factors: dict[int, float], option_factors: dict[tuple, float],
             machine_ratio_max: float = MACHINE_RATIO_MAX, loaded_threads=frozenset()) -> None:
        """Set measured priors: ``thread_factors[threads]`` and ``option_factors[(option,
        threads)]`` (observed / profiled time ratios, > 0; clipped like observations) replace 1.0
        as the factor of a key without observations and as the value stored log-ratios age
        toward. Windows of seeded keys are cleared, so the first frames are predicted from the
        seed, not from records taken before it. Keys not given keep their prior.

        A ratio above ``machine_ratio_max`` is load, not a machine kind (kinds differ by small
        factors, 2x between the AVX-512 and AVX2 hosts measured; contention on shared cores by
        one or two orders of magnitude): it is stored as one observation instead, which ages
        toward the profile like any load, so the key is probed again once the load may be gone.
        So is every ratio at a thread count in ``loaded_threads`` (measured while other
        processes held cores it needs, ``runtime.cpu_load``): whatever its size, it describes
        the load, and ``forget_load`` drops it when the load leaves.
        A non-finite or non-positive ratio raises ValueError naming the key."""
        def log_prior(key, f) -> float:
            if not (isinstance(f, (int, float)) and math.isfinite(f) and f > 0):
                raise ValueError(f"slowdown seed for {key!r} must be a finite ratio > 0, got {f!r}")
            return min(max(math.log(f), self._lo), self._hi)

        limit = math.log(machine_ratio_max)
        threads = {int(t): log_prior(t, f) for t, f in thread_factors.items()}
        options = {tuple(k): log_prior(k, f) for k, f in option_factors.items()}
        loaded = {int(t) for t in loaded_threads}
        for seeds, windows, prior in ((threads, self._obs, dict(self._prior)),
                                      (options, self._opt_obs, dict(self._opt_prior))):
            for key, lr in seeds.items():
                windows.pop(key, None)
                self._probation.pop(key, None)
                prior.pop(key, None)
                if lr <= limit and (key[1] if isinstance(key, tuple) else key) not in loaded:
                    prior[key] = lr
                else:  # load: one observation, aged like any other
                    windows[key] = deque([(self._step, lr)], maxlen=self.window)
            if windows is self._obs:
                self._prior = prior
            else:
                self._opt_prior = prior
        self._factors = self._recompute(self._obs, self._prior)
        self._opt_factors = self._recompute(self._opt_obs, self._opt_prior)

    def priors(self) -> tuple[dict[int, float], dict[tuple, float]]:
        """(thread-count priors, option priors) as factors (absent = 1.0): what ``seed`` set."""
        return ({t: math.exp(v) for t, v in self._prior.items()},
                {k: math.exp(v) for k, v in self._opt_prior.items()})

    def observe(self, threads: int, observed_ms: float, profiled_ms: float, option=None) -> None:
        """Feed one inference: its measured time and the profiled quantile it was predicted from.

        ``option``: which model ran (any hashable, e.g. the member's index), to keep its own
        record as well; None keeps only the thread count's.
        """
        if not (profiled_ms > 0 and observed_ms >= 0 and math.isfinite(observed_ms)):
            return  # a broken measurement must not poison the estimate
        lr = math.log(max(observed_ms, 1e-9) / profiled_ms)
        lr = min(max(lr, self._lo), self._hi)
        thread_before = self.factor(threads)
        self._step += 1
        self._judge_probe(self._obs, threads, lr, thread_before)
        if option is not None:
            key = (option, threads)
            self._judge_probe(self._opt_obs, key, lr, max(thread_before, self._opt_factors.get(key, 0.0)))
        if self._push(self._obs, threads, lr):
            # A probe: this thread count comes back after a pause, so the machine may be another
            # one now. Options' own records at it older than ``stale_after`` go too (newer ones
            # still hold back an option that proved slower than its thread count).
            for key in [k for k in self._opt_obs if k[1] == threads]:
                q = self._opt_obs[key]
                while q and self._step - q[0][0] > self.stale_after:
                    q.popleft()
                if not q:
                    del self._opt_obs[key]
        if option is not None:
            self._push(self._opt_obs, (option, threads), lr)
        self._factors = self._recompute(self._obs, self._prior)  # replaced, never mutated: readers see a
        self._opt_factors = self._recompute(self._opt_obs, self._opt_prior)  # complete dict

    def _judge_probe(self, windows: dict, key, lr: float, predicted: float) -> None:
        """Probation bookkeeping for one new sample of ``key`` (before it is pushed): start it
        when the key comes back after a pause; a sample slower than ``predicted`` (its factor
        before this sample, at least 1) x ``PROBE_TOLERANCE`` fails it (backoff + 1); ``window``
        samples without one pass it (backoff 0)."""
        q = windows.get(key)
        if q and self._step - q[-1][0] > self.window:
            self._probation[key] = 0
        seen = self._probation.get(key)
        if seen is None:
            return
        if lr > math.log(max(predicted, 1.0) * PROBE_TOLERANCE):
            self._backoff[key] = min(self._backoff.get(key, 0) + 1, MAX_BACKOFF)
            del self._probation[key]
        elif seen + 1 >= self.window:
            self._backoff.pop(key, None)
            del self._probation[key]
        else:
            self._probation[key] = seen + 1

    def backoff(self) -> dict:
        """Failed probes in a row by key (thread count or (option, threads)); absent = 0. Each
        doubles the half-life that key's samples age with."""
        return dict(self._backoff)

    def _push(self, windows: dict, key, lr: float) -> bool:
        """Append to ``key``'s window; True when the key comes back after a pause (a probe):
        its samples from before the pause are dropped first, so the probe is judged on its own.
        Otherwise only samples older than ``stale_after`` frames are dropped."""
        q = windows.get(key)
        if q is None:
            q = windows[key] = deque(maxlen=self.window)
        probe = bool(q) and self._step - q[-1][0] > self.window
        if probe:
            q.clear()
        while q and self._step - q[0][0] > self.stale_after:
            q.popleft()
        q.append((self._step, lr))
        return probe

    def _recompute(self, windows: dict, prior: dict) -> dict:
        # Done once per observation (off the selection path), for every window, because aging
        # advances for all of them. A few hundred float operations for a 6-member bank. Keys
        # with a prior but no window report the prior; samples age toward their key's prior.
        step = self._step
        out = {key: math.exp(p) for key, p in prior.items() if key not in windows}
        for key, q in windows.items():
            p = prior.get(key, 0.0)
            hl = self.half_life * 2 ** self._backoff.get(key, 0)
            aged = sorted((p + (lr - p) * 0.5 ** ((step - s) / hl) for s, lr in q), reverse=True)
            # A partial window (start-up, or an option being probed again) has too little
            # evidence to call anything an outlier: take its worst sample, the seed counting
            # as one (a calibration is evidence too) until the window is full.
            if len(aged) == self.window:
                out[key] = math.exp(aged[self.rank - 1])
            else:
                out[key] = math.exp(max(aged[0], prior[key]) if key in prior else aged[0])
        return out

    def factor(self, threads: int) -> float:
        return self._factors.get(threads, 1.0)

    def factors(self) -> dict[int, float]:
        """Current factors by thread count (absent = 1.0). Do not mutate."""
        return self._factors

    def option_factors(self) -> dict[tuple, float]:
        """Current factors by (option, threads) for options that have run. Do not mutate."""
        return self._opt_factors

    def active_options(self) -> set:
        """(option, threads) keys in current use: a full window whose newest sample is at most
        ``window`` frames old. Their own factor may stand in for the thread count's in both
        directions; the others' may only hold them back (see the module docstring)."""
        step, w = self._step, self.window
        return {k for k, q in self._opt_obs.items() if len(q) == w and step - q[-1][0] <= w}
