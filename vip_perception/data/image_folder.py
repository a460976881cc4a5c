"""A user's own data: an image folder with one sub-folder per class (torchvision ImageFolder
layout), read into memory at the bank's input size.

Images go through ``to_model_array``, the same resize/colour path ``Bank.preprocess`` uses at
run time, so training and deployment see identical pixels.
"""
from __future__ import annotations

import os

import numpy as np

from .fashion_mnist import ArrayDataset


def to_model_array(image: np.ndarray, height: int, width: int, channels: int) -> np.ndarray:
    """uint8 (H, W) or (H, W, C) RGB(A) -> uint8 (height, width, channels), INTER_AREA resize.

    Colour order is RGB (convert BGR from OpenCV first). Greyscale uses ITU-R 601 weights.
    """
    import cv2  # the "opencv" extra; imported here so loading a bank does not need it
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3) or min(img.shape[:2]) < 1:
        raise ValueError(f"image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {img.shape}")
    if channels == 1 and img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
    elif channels == 3 and img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[:2] != (height, width):
        img = cv2.resize(np.ascontiguousarray(img), (width, height), interpolation=cv2.INTER_AREA)
    if img.ndim == 2:
        img = img[:, :, None]
    return np.ascontiguousarray(img)  # (height, width, channels)


def load_image_folder(root: str, height: int, width: int, channels: int) -> ArrayDataset:
    """Every image under ``root/<class>/`` as (N, height, width, channels) uint8; classes sorted."""
    import cv2
    from torchvision.datasets import ImageFolder

    if not os.path.isdir(root):
        raise FileNotFoundError(f"image folder not found: {root}")
    try:
        folder = ImageFolder(root)  # only lists files and classes; we decode with OpenCV below
    except (FileNotFoundError, RuntimeError) as exc:
        raise ValueError(f"{root}: not an image folder with one sub-folder per class ({exc})") from exc
    images = np.empty((len(folder.samples), height, width, channels), dtype=np.uint8)
    for i, (path, _) in enumerate(folder.samples):
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{path}: cannot decode image")
        images[i] = to_model_array(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), height, width, channels)
    labels = np.array([c for _, c in folder.samples], dtype=np.int64)
    return ArrayDataset(images, labels, list(folder.classes))
