"""JSON files written atomically: a crash or a full disk never leaves half a report or manifest.

NumPy scalars and arrays are converted; anything else that JSON cannot hold raises TypeError.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def _jsonable(v):
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def write_json(path: str | os.PathLike, data, indent: int | None = 1) -> None:
    """Write ``data`` to ``path`` (parent folders created) through a temporary file and
    ``os.replace``, so readers see the old file or the new one, never a partial one."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w") as fh:
            json.dump(data, fh, indent=indent, default=_jsonable)
            fh.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
