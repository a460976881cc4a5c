"""Background CPU load: N processes doing real single-threaded matrix multiplies.

Real work (a 256x256 float32 matmul, about 1 ms per iteration) rather than a spin loop, so the
load competes for caches and memory bandwidth as a neighbouring process would. Each worker is a
fresh interpreter running a few lines of numpy (``subprocess``, not ``multiprocessing``: nothing
of the parent's torch/OpenMP state is forked, and it works whatever the parent's ``__main__``
is, stdin included), with the BLAS libraries pinned to one thread so N processes occupy N
cores. ``start`` returns once every worker is inside its loop, so the caller knows when the
load is on; a worker exits by itself if its parent disappears.
"""
from __future__ import annotations

import os
import select
import subprocess
import sys
import time

_ONE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")

_WORKER = r"""
import os, sys
import numpy as np
n, parent = int(sys.argv[1]), os.getppid()
rng = np.random.default_rng(os.getpid())
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
sys.stdout.write("ready\n")
sys.stdout.flush()
while os.getppid() == parent:
    c = a @ b
    a = c * (1.0 / (float(np.abs(c).max()) + 1e-6))
"""


class BackgroundLoad:
    """``with BackgroundLoad(2): ...`` or ``start()`` / ``stop()``; stop is idempotent."""

    def __init__(self, processes: int, size: int = 256, start_timeout_s: float = 60.0) -> None:
        if processes < 0:
            raise ValueError(f"background load processes must be >= 0, got {processes}")
        self.processes = processes
        self.size = size
        self.start_timeout_s = start_timeout_s
        self._procs: list[subprocess.Popen] = []

    @property
    def running(self) -> bool:
        return bool(self._procs)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def start(self) -> None:
        if self._procs or self.processes == 0:
            return
        env = dict(os.environ, **{k: "1" for k in _ONE_THREAD_ENV})
        try:
            for _ in range(self.processes):
                self._procs.append(subprocess.Popen(
                    [sys.executable, "-c", _WORKER, str(self.size)],
                    stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
                ))
            deadline = time.monotonic() + self.start_timeout_s
            for p in self._procs:
                while True:
                    ready, _, _ = select.select([p.stdout], [], [], 0.05)
                    if ready and p.stdout.readline().strip() == b"ready":
                        break
                    if p.poll() is not None:
                        raise RuntimeError(f"background load worker {p.pid} exited with code {p.returncode}")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"background load workers not ready after {self.start_timeout_s} s")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for p in self._procs:
            if p.poll() is None:
                p.terminate()
        for p in self._procs:
            try:
                p.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()
        self._procs = []

    def __enter__(self) -> "BackgroundLoad":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
