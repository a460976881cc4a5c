"""Letterbox resizing: the image scaled by one factor to fit the model input, centred, the rest
filled with a constant grey; and boxes found in that input mapped back to image pixels.

Stretching (the bank's default resize) changes the aspect ratio; detectors trained with
letterboxed inputs (the YOLO family) lose accuracy on stretched ones, so an imported model can
ask for this instead (manifest ``input.resize``). ``letterbox_geometry`` is the one rule both
directions use, so a box maps back exactly onto the pixels it came from.
"""
from __future__ import annotations

import numpy as np

from .data.image_folder import to_model_array

__all__ = ["DEFAULT_PAD_VALUE", "RESIZE_MODES", "boxes_from_letterbox", "letterbox_geometry", "letterbox_image"]

RESIZE_MODES = ("stretch", "letterbox")
DEFAULT_PAD_VALUE = 114  # grey of the padding, 0..255 (what ultralytics pads with)


def letterbox_geometry(image_hw: tuple[int, int], input_hw: tuple[int, int]
                       ) -> tuple[float, tuple[int, int], tuple[int, int]]:
    """(scale, (new_h, new_w), (pad_top, pad_left)) that fit an ``image_hw`` image into
    ``input_hw``: scale = min(H / h, W / w), the scaled image rounded to whole pixels (at least
    one) and centred, the odd padding pixel going to the bottom / right."""
    (h, w), (height, width) = image_hw, input_hw
    scale = min(height / h, width / w)
    new_h, new_w = max(1, min(height, round(h * scale))), max(1, min(width, round(w * scale)))
    return scale, (new_h, new_w), ((height - new_h) // 2, (width - new_w) // 2)


def letterbox_image(image: np.ndarray, height: int, width: int, channels: int,
                    pad_value: int = DEFAULT_PAD_VALUE) -> np.ndarray:
    """uint8 (H, W) or (H, W, C) RGB(A) -> uint8 (height, width, channels): the image resized
    (``to_model_array``: INTER_AREA, grey by ITU-R 601) into ``letterbox_geometry``'s box, the
    border filled with ``pad_value``. ValueError for an image ``to_model_array`` refuses."""
    _, (new_h, new_w), (top, left) = letterbox_geometry(np.asarray(image).shape[:2], (height, width))
    inner = to_model_array(image, new_h, new_w, channels)  # (new_h, new_w, channels)
    out = np.full((height, width, channels), pad_value, np.uint8)
    out[top:top + new_h, left:left + new_w] = inner
    return out


def boxes_from_letterbox(boxes: np.ndarray, image_hw: tuple[int, int], input_hw: tuple[int, int]) -> np.ndarray:
    """(K, 4) x0 y0 x1 y1 in letterboxed-input pixels -> the same boxes in pixels of the
    ``image_hw`` image, clipped to it (a box on the padding shrinks to the image's edge)."""
    _, (new_h, new_w), (top, left) = letterbox_geometry(image_hw, input_hw)
    h, w = image_hw
    sy, sx = h / new_h, w / new_w  # exact inverse of the rounded resize
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = (b - np.array([left, top, left, top], np.float64)) * np.array([sx, sy, sx, sy])
    return np.clip(out, 0.0, np.array([w, h, w, h], np.float64))
