"""Deadline runtime: what the node runs per frame, nothing else.

``engine`` (one frame in, a FrameResult out), ``selector`` (pure choice of (member, threads)
from the time left), ``slowdown`` (observed / predicted time -> factors), ``miss_rate`` (each
option's recent share of overruns), ``cpu_load`` (cores other processes hold, from /proc),
``calibration`` (start-up measurement), ``collector`` (start-up objects frozen for the
garbage collector) and ``serving_thread`` (the one thread a serving process runs torch on),
the last two for the process owner to use. ROS-free. Exports
are resolved lazily (PEP 562) so that importing the package does not pull in torch. Results
(``FrameResult``, ``TimingRecord``) live in ``vip_perception.results``.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Engine": ".engine",
    "EngineConfig": ".engine",
    "Selector": ".selector",
    "Choice": ".selector",
    "SlowdownEstimator": ".slowdown",
    "MissRates": ".miss_rate",
    "CpuLoad": ".cpu_load",
    "ServingThread": ".serving_thread",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vip_perception.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
