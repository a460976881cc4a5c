"""Background CPU load: N processes doing real single-threaded matrix multiplies.

Real work (a 256x256 float32 matmul, about 1 ms per iteration) rather than a spin loop, so the
load competes for caches and memory bandwidth as a neighbouring process would. Processes are
started with the "spawn" method (no fork of a parent holding torch/OpenMP state) and with the
BLAS libraries pinned to one thread each, so N processes occupy N cores. ``start`` returns once
every worker is inside its loop, so the caller knows the exact moment the load is on.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time

_ONE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def _burn(ready, stop, size: int) -> None:
    for k in _ONE_THREAD_ENV:  # in case numpy is not imported yet in this child
        os.environ[k] = "1"
    import numpy as np

    rng = np.random.default_rng(os.getpid())
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    ready.set()
    while not stop.is_set():
        c = a @ b  # (size, size)
        a = c * (1.0 / (float(np.abs(c).max()) + 1e-6))  # keep values bounded


class BackgroundLoad:
    """``with BackgroundLoad(2): ...`` or ``start()`` / ``stop()``; stop is idempotent."""

    def __init__(self, processes: int, size: int = 256, start_timeout_s: float = 60.0) -> None:
        if processes < 0:
            raise ValueError(f"background load processes must be >= 0, got {processes}")
        self.processes = processes
        self.size = size
        self.start_timeout_s = start_timeout_s
        self._ctx = mp.get_context("spawn")
        self._procs: list = []
        self._stop = None

    @property
    def running(self) -> bool:
        return bool(self._procs)

    def start(self) -> None:
        if self._procs or self.processes == 0:
            return
        self._stop = self._ctx.Event()
        readies = []
        saved = {k: os.environ.get(k) for k in _ONE_THREAD_ENV}
        try:
            for k in _ONE_THREAD_ENV:  # inherited by the spawned interpreters
                os.environ[k] = "1"
            for _ in range(self.processes):
                ready = self._ctx.Event()
                p = self._ctx.Process(target=_burn, args=(ready, self._stop, self.size), daemon=True)
                p.start()
                self._procs.append(p)
                readies.append(ready)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        deadline = time.monotonic() + self.start_timeout_s
        try:
            for ready, p in zip(readies, self._procs):
                while not ready.wait(0.05):
                    if not p.is_alive():
                        raise RuntimeError(f"background load worker {p.pid} died with exit code {p.exitcode}")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"background load workers not ready after {self.start_timeout_s} s")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
        for p in self._procs:
            p.join(timeout=2.0)
            if p.is_alive():
                p.terminate()
                p.join(timeout=2.0)
            if p.is_alive():
                p.kill()
                p.join()
        self._procs = []
        self._stop = None

    def __enter__(self) -> "BackgroundLoad":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
