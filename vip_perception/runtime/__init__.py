"""Deadline runtime: per-frame choice of (member, threads), online slowdown, engine, evaluation.

ROS-free. Exports are resolved lazily (PEP 562) so that light submodules, such as ``load``
whose worker processes only need numpy, can be imported without pulling in torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Engine": "engine",
    "EngineConfig": "engine",
    "FrameResult": "engine",
    "TimingRecord": "engine",
    "Selector": "selector",
    "Choice": "selector",
    "SlowdownEstimator": "slowdown",
    "RuntimeStats": "stats",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vip_perception.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
