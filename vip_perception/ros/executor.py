"""The executor the node processes spin: one thread (rclpy's SingleThreadedExecutor).

Why: measured on one host with the shipped SHM profile (640x480 bgr8 at 30 Hz, stamp taken
just before publishing, 150 frames per run), publish -> subscription callback took 5.3-6.5 ms
p50 with ``MultiThreadedExecutor(2)`` and 2.6-2.7 ms with ``SingleThreadedExecutor``: the
multi-threaded one rebuilds its wait set in Python while handing each callback to a pool
thread, and the two threads fight over the GIL; at 30 Hz it also lost a quarter of the frames.
Inference runs on the node's own worker thread either way, so one executor thread is enough
for the callbacks. (rclpy's experimental EventsExecutor delivered in 2.1-2.5 ms but did not
stop on SIGINT/SIGTERM with rclpy 9.1, so it is not used.) Trade-off: a ``bank`` parameter
change loads the new bank inside the parameter callback, and while it loads no image callback
runs (the worker keeps serving with the old bank; the newest frame waits in DDS, depth 1).

``VIP_PERCEPTION_EXECUTOR=multi`` selects the two-thread executor instead.
"""
from __future__ import annotations

import os

ENV = "VIP_PERCEPTION_EXECUTOR"


def executor_kind() -> str:
    """The class name ``make_executor`` returns under the current environment."""
    return "MultiThreadedExecutor" if os.environ.get(ENV, "single") == "multi" else "SingleThreadedExecutor"


def make_executor(context=None):
    """A new executor for the node processes: SingleThreadedExecutor, or
    MultiThreadedExecutor(2) when ``$VIP_PERCEPTION_EXECUTOR`` is ``multi``."""
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

    if executor_kind() == "MultiThreadedExecutor":
        return MultiThreadedExecutor(num_threads=2, context=context)
    return SingleThreadedExecutor(context=context)
