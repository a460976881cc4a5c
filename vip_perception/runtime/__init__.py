"""Deadline runtime: per-frame choice of (member, threads), online slowdown, engine, evaluation.

ROS-free. Exports are resolved lazily (PEP 562) so that light submodules, such as ``load``
whose worker processes only need numpy, can be imported without pulling in torch.
``FrameResult`` and ``TimingRecord`` live in ``vip_perception.results`` (import them from
there); they are re-exported here for existing callers.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Engine": ".engine",
    "EngineConfig": ".engine",
    "FrameResult": "vip_perception.results",
    "TimingRecord": "vip_perception.results",
    "Selector": ".selector",
    "Choice": ".selector",
    "SlowdownEstimator": ".slowdown",
    "BackgroundLoad": ".load",
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
