"""A small ImageFolder of drawn shapes for classifier-build tests: classes ``SHAPES`` (a filled
circle, a horizontal bar, a vertical bar) on dark noise, colour and position drawn from a seeded
generator, so a few training steps separate them."""
from __future__ import annotations

import cv2
import numpy as np

SHAPES = ["circle", "hbar", "vbar"]


def write_shape_folder(root, per_class: int, size: int, radius: int, centre: tuple[int, int], half: int,
                       margin: int) -> None:
    """ROOT/<shape>/NNN.png, ``per_class`` colour PNGs of ``size`` x ``size``: a circle of
    ``radius`` at (c, c), or a bar ``2 * half`` wide across the image ``margin`` px from its
    edges at c, with c drawn from [centre[0], centre[1])."""
    rng = np.random.default_rng(0)
    for name in SHAPES:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 40, size=(size, size, 3), dtype=np.uint8)
            color = tuple(int(c) for c in rng.integers(150, 256, size=3))
            c = int(rng.integers(*centre))
            if name == "circle":
                cv2.circle(img, (c, c), radius, color, -1)
            elif name == "hbar":
                cv2.rectangle(img, (margin, c - half), (size - margin - 1, c + half), color, -1)
            else:
                cv2.rectangle(img, (c - half, margin), (c + half, size - margin - 1), color, -1)
            cv2.imwrite(str(root / name / f"{i:03d}.png"), img)
