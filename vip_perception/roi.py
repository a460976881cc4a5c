"""The region of interest: one rule for every caller (node, engine, tools).

A roi is (x, y, w, h) in full-frame pixels. It is clipped to the frame; a roi that leaves
nothing of the frame (or is malformed) is rejected with a ValueError that says why. An empty
roi (None or ()) means the whole frame.
"""
from __future__ import annotations

import numpy as np


def clip_roi(roi, frame_hw: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """``roi`` clipped to a frame of ``frame_hw`` = (height, width); None for no roi.

    Raises ValueError when ``roi`` is not four integers, has a non-positive size, or does not
    overlap the frame.
    """
    if roi is None or len(roi) == 0:
        return None
    try:
        if len(roi) != 4:
            raise ValueError
        x, y, w, h = (int(v) for v in roi)
    except (TypeError, ValueError):
        raise ValueError(f"roi must be (x, y, w, h) integers, got {roi!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"roi {tuple(roi)!r} has a non-positive width or height")
    fh, fw = int(frame_hw[0]), int(frame_hw[1])
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, fw), min(y + h, fh)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"roi {tuple(roi)!r} lies outside the {fw}x{fh} frame")
    return x0, y0, x1 - x0, y1 - y0


def crop(image: np.ndarray, roi: tuple[int, int, int, int] | None) -> np.ndarray:
    """The roi of an (H, W[, C]) image as a view (no copy); the image itself for None.
    ``roi`` must already be clipped (``clip_roi``)."""
    if roi is None:
        return image
    x, y, w, h = roi
    return image[y : y + h, x : x + w]
