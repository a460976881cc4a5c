"""A user's own data: an image folder with one sub-folder per class (torchvision ImageFolder
layout), read into memory at the bank's input size (``user_data`` lists and decodes it).

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
    """Every image under ``root/<class>/`` as (N, height, width, channels) uint8; classes sorted.

    The in-memory path of the YAML recipe; ``user_data.open_split`` streams large sets instead.
    Raises FileNotFoundError for a missing ``root``, ``DatasetError`` (a ValueError) for a bad layout
    or an image that cannot be decoded.
    """
    from .user_data import DatasetError, list_class_folder, read_rgb

    if not os.path.isdir(root):
        raise FileNotFoundError(f"image folder not found: {root}")
    paths, labels, names = list_class_folder(root)
    images = np.empty((len(paths), height, width, channels), dtype=np.uint8)
    for i, path in enumerate(paths):
        rgb = read_rgb(path)
        if rgb is None:
            raise DatasetError(f"{path}: cannot decode image; fix or remove it")
        images[i] = to_model_array(rgb, height, width, channels)
    return ArrayDataset(images, labels, names)
