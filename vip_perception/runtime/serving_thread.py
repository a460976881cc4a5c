"""The one thread that runs all of a serving process's torch work: bank loads, warm-up,
calibration and every frame.

Why one thread: torch's intra-op threads are OpenMP (libgomp) threads, and each thread that
starts a parallel region gets its own pool of them. Measured on the station bank's largest
member at 2 threads, one run every 25 ms on a 2-core machine (``benchmarks/inference_thread.json``,
``scripts/measure_inference_thread.py``): 7.1 ms p50 when the thread that loaded the bank runs
it, 12.9 ms when another thread does, against 11.9 ms at 1 thread; in the second case the
process's CPU time equals its wall time, so the two intra-op threads never ran at once. The
likely cause: with two pools (the loading thread's and the running thread's) more OpenMP
threads exist than cores, libgomp then lets idle pool threads sleep instead of spin between
parallel regions, and a forward pass of small layers is hundreds of short regions, each waiting
for a wake-up. Whatever the cause inside libgomp, keeping every torch call on one thread avoids
it. The node used to load its bank and calibrate on the main thread and serve frames on a
worker: its 2-thread options ran about 1.7x slower than their profiles and than the deadline
harness (which runs everything on its main thread).

``call`` runs a function on the thread and returns its result (or raises its exception);
``set_loop`` installs a step the thread repeats between calls (the node's frame loop). Calls
run between steps, in order, so a call never overlaps a frame.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable


class ServingThread:
    """A daemon thread running submitted calls and, between them, an optional loop step.

    ``step`` (``set_loop``) must return within a bounded time (the node's takes the next frame
    with a 0.1 s timeout): calls wait for the step in progress. Exceptions from a step are the
    step's to handle; one that escapes stops the loop (not the thread) and is kept in
    ``loop_error``.
    """

    def __init__(self, name: str = "vip_serving") -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._step: Callable[[], None] | None = None
        self.loop_error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()

    def on_thread(self) -> bool:
        """Whether the caller is this thread."""
        return threading.current_thread() is self.thread

    def call(self, fn: Callable, *args, **kwargs):
        """``fn(*args, **kwargs)`` on this thread, after the step in progress; its result, or
        its exception raised here. Runs inline when called from this thread."""
        if self.on_thread():
            return fn(*args, **kwargs)
        done, box = self._submit(fn, *args, **kwargs)
        done.wait()
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def set_loop(self, step: Callable[[], None] | None, timeout_s: float | None = None) -> bool:
        """Repeat ``step`` between calls from now on (None: stop). Returns True once no step of
        the previous loop is running any more; False when the step in progress has not returned
        within ``timeout_s`` (the new loop is then installed as soon as it does)."""
        def install() -> None:
            self._step, self.loop_error = step, None

        if self.on_thread():
            install()
            return True
        done, _ = self._submit(install)
        return done.wait(timeout_s)

    def _submit(self, fn: Callable, *args, **kwargs) -> tuple[threading.Event, dict]:
        done, box = threading.Event(), {}

        def job() -> None:
            try:
                box["result"] = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box["error"] = exc
            finally:
                done.set()

        self._jobs.put(job)
        return done, box

    def _main(self) -> None:
        while True:
            step = self._step
            try:
                job = self._jobs.get(block=step is None)
            except queue.Empty:
                job = None
            if job is not None:
                job()
                continue
            try:
                step()
            except BaseException as exc:  # noqa: BLE001 - kept for the owner; the thread lives on
                self.loop_error, self._step = exc, None
