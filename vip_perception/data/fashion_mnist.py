"""Fashion-MNIST from its IDX files (Debian's ``dataset-fashion-mnist``), read without downloads.

The IDX format is tiny (a magic number, big-endian sizes, raw bytes), so a 40-line reader beats
a dependency and lets truncated or foreign files fail with the path named.
"""
from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass

import numpy as np

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
ROOT_ENV = "VIP_FASHION_MNIST_DIR"
CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass
class ArrayDataset:
    """Images kept as uint8 in memory: the whole set is 47 MB, and augmentation works on it."""

    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64
    class_names: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: np.ndarray) -> ArrayDataset:
        return ArrayDataset(self.images[index], self.labels[index], self.class_names)


def default_root() -> str:
    """The Fashion-MNIST IDX directory: ``$VIP_FASHION_MNIST_DIR`` when set, else Debian's.

    The one place the default is decided: recipes, builders, scenes and evaluations call this
    (or pass ``root=None``) instead of naming a path, so the variable is honoured everywhere.
    """
    return os.environ.get(ROOT_ENV) or DEFAULT_ROOT


def _open(path: str):
    if os.path.exists(path):
        return open(path, "rb")
    if os.path.exists(path + ".gz"):
        return gzip.open(path + ".gz", "rb")
    raise FileNotFoundError(f"IDX file not found: {path}[.gz] (install dataset-fashion-mnist or set {ROOT_ENV})")


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (optionally .gz) into an array of its declared shape (uint8 data only)."""
    with _open(path) as fh:
        data = fh.read()
    if len(data) < 4:
        raise ValueError(f"{path}: too short for an IDX header")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = struct.unpack(">" + "I" * ndim, data[4:header])
    count = int(np.prod(shape)) if shape else 0
    if len(data) - header != count:
        raise ValueError(f"{path}: expected {count} data bytes for shape {shape}, found {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(split: str = "train", root: str | None = None) -> ArrayDataset:
    """The 60k training or 10k test split as (N, 28, 28, 1) uint8 images and int64 labels.

    ``root`` None or "" means ``default_root()``. Raises FileNotFoundError naming the missing
    file, ValueError for a malformed one.
    """
    root = root or default_root()
    if split not in _FILES:
        raise ValueError(f"split must be one of {sorted(_FILES)}, got {split!r}")
    img_name, lab_name = _FILES[split]
    images = read_idx(os.path.join(root, img_name))
    labels = read_idx(os.path.join(root, lab_name))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{root}: images {images.shape} and labels {labels.shape} do not match")
    return ArrayDataset(images[..., None].copy(), labels.astype(np.int64), list(CLASS_NAMES))


def train_val_split(n: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded disjoint (train, val) index arrays; the test split never takes part in choices."""
    if not 0 < val_size < n:
        raise ValueError(f"val_size must be in (0, {n}), got {val_size}")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[val_size:]), np.sort(perm[:val_size])
