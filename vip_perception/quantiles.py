"""Percentiles of measured samples: the one definition every profile, report and summary uses."""
from __future__ import annotations

from typing import Iterable

import numpy as np


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100, linear interpolation) of ``values``; None when empty."""
    a = np.fromiter(values, dtype=np.float64) if not isinstance(values, np.ndarray) else values.astype(np.float64)
    return float(np.percentile(a, q)) if a.size else None


def percentiles(values: Iterable[float], qs: Iterable[float] = (50, 95, 99)) -> dict[str, float | None]:
    """{"p50": ..., "p95": ..., ...} for ``qs``; every value None when ``values`` is empty."""
    a = np.fromiter(values, dtype=np.float64) if not isinstance(values, np.ndarray) else values.astype(np.float64)
    qs = list(qs)
    if not a.size:
        return {f"p{q:g}": None for q in qs}
    return {f"p{q:g}": float(v) for q, v in zip(qs, np.percentile(a, qs))}
