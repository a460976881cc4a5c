"""The machine a measurement belongs to: CPU model, vector capability, cores, library versions.

Latency profiles and benchmark figures are facts about one machine kind (the same model runs up
to 2x slower on an AVX2-only CPU than on an AVX-512 one), so every profile and JSON report
records this dictionary next to its numbers.
"""
from __future__ import annotations

import os
import platform
from functools import lru_cache


def _cpuinfo_field_and_flags() -> tuple[str | None, set[str]]:
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if model is None and line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif not flags and line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                if model is not None and flags:
                    break
    except OSError:
        pass
    return model, flags


def vector_capability(flags: set[str] | None = None) -> str:
    """"avx512", "avx2", or "baseline": the widest x86 vector extension the CPU reports
    (what oneDNN and the native kernels dispatch on); "baseline" elsewhere."""
    if flags is None:
        flags = _cpuinfo_field_and_flags()[1]
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    return "baseline"


def has_native_bf16() -> bool:
    """True where the CPU advertises native bf16 math (AVX512-BF16 or AMX-BF16): there bf16
    autocast speeds training up; elsewhere it slows it down."""
    flags = _cpuinfo_field_and_flags()[1]
    return "avx512_bf16" in flags or "amx_bf16" in flags


@lru_cache(maxsize=1)
def _static_info() -> dict:
    model, flags = _cpuinfo_field_and_flags()
    info = {
        "cpu": model or platform.processor() or platform.machine(),
        "vector": vector_capability(flags),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:  # the ROS-only tools run without torch
        info["torch"] = None
    return info


def machine_info(threads: int | None = None) -> dict:
    """{"cpu", "vector", "cores", "python", "platform", "torch"[, "threads"]}: the context a
    measurement is valid in. ``threads`` (the intra-op thread count used) is added when given."""
    info = dict(_static_info())
    if threads is not None:
        info["threads"] = int(threads)
    return info
