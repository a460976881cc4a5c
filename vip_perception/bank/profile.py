"""Batch-1 latency profiling, interleaved across candidates so machine noise is shared.

Latencies belong to the machine, so profiling is its own step (re-run with ``bank profile``).
Runs are split into rounds; each round visits every thread count and every candidate (in a
seeded shuffled order), so a burst of background load hits all candidates alike instead of
whichever one happened to be measured at that moment.
"""
from __future__ import annotations

import dataclasses
import platform
import random
import time
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .records import LatencyProfile


def machine_info() -> dict:
    """CPU model, core count, torch version: the context a profile is valid in."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import os

    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform()}


def summarise(samples_ms: list[float]) -> LatencyProfile:
    a = np.asarray(samples_ms, dtype=np.float64)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return LatencyProfile(float(p50), float(p95), float(p99), float(a.mean()), int(a.size))


@torch.inference_mode()
def profile_models(models: dict[str, nn.Module | Mapping[int, Callable]], input_shape: tuple, threads: list[int],
                   runs: int = 200, warmup: int = 20, rounds: int = 10, seed: int = 0, progress: bool = True,
                   clock: Callable[[], float] = time.perf_counter, gap_ms: float = 0.0,
                   ) -> dict[str, dict[int, LatencyProfile]]:
    """p50/p95/p99 (ms) of each eval-mode model at batch 1 for every thread count.

    A model is an ``nn.Module`` (run with torch's thread count set) or a mapping from thread
    count to a callable that owns its threads (an ONNX Runtime session per count).
    ``gap_ms`` > 0 sleeps that long before every timed call: the paced profile. A camera
    stream leaves the CPU idle between frames, and the first inference after an idle gap runs
    with cold caches and a core that has to wake up: measured here, a 0.23 ms model takes
    0.65 ms after a 30 ms gap (p50), a 1.39 ms one 1.94 ms. Back-to-back timing (gap 0) is
    what ranks models; the paced profile is what predicts a frame.
    """
    if runs < 1 or rounds < 1:
        raise ValueError(f"runs and rounds must be >= 1, got runs={runs}, rounds={rounds}")
    if not gap_ms >= 0:
        raise ValueError(f"gap_ms must be >= 0, got {gap_ms}")
    gap_s = gap_ms / 1e3
    saved = torch.get_num_threads()
    x = torch.randn(*input_shape, generator=torch.Generator().manual_seed(seed))  # (1, C, H, W)
    names = list(models)
    for m in models.values():
        if isinstance(m, nn.Module):
            m.eval()

    def fn(name: str, t: int) -> Callable:
        m = models[name]
        return m if isinstance(m, nn.Module) else m[t]

    samples = {n: {t: [] for t in threads} for n in names}
    rng = random.Random(seed)
    per_round = [runs // rounds + (1 if r < runs % rounds else 0) for r in range(rounds)]
    try:
        for t in threads:  # warm-up: allocator, oneDNN primitives, thread pool at this size
            torch.set_num_threads(t)
            for n in names:
                f = fn(n, t)
                for _ in range(warmup):
                    f(x)
        bar = tqdm(total=rounds * len(threads) * len(names), desc="profile", disable=not progress, mininterval=2.0)
        for r in range(rounds):
            for t in threads:
                torch.set_num_threads(t)
                order = names[:]
                rng.shuffle(order)
                for n in order:
                    m = fn(n, t)
                    m(x)  # one untimed call after switching model/threads
                    for _ in range(per_round[r]):
                        if gap_s:
                            time.sleep(gap_s)
                        t0 = clock()
                        m(x)
                        samples[n][t].append((clock() - t0) * 1e3)
                    bar.update(1)
        bar.close()
    finally:
        torch.set_num_threads(saved)
    return {n: {t: dataclasses.replace(summarise(samples[n][t]), gap_ms=float(gap_ms)) for t in threads} for n in names}
