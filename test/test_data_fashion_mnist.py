"""IDX reader, Fashion-MNIST loading and the seeded train/val split."""
import gzip
import os
import struct

import numpy as np
import pytest

from vip_perception.data import load_fashion_mnist, read_idx, train_val_split
from vip_perception.data.fashion_mnist import default_root


def _write_idx(path, arr, compress=False):
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as fh:
        fh.write(data)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "x-idx3-ubyte"
    _write_idx(str(path) + (".gz" if compress else ""), arr, compress)
    np.testing.assert_array_equal(read_idx(str(path)), arr)


def test_read_idx_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere"):
        read_idx(str(tmp_path / "nothere"))
    arr = np.zeros((5, 2, 2), dtype=np.uint8)
    path = tmp_path / "trunc"
    _write_idx(str(path), arr)
    data = path.read_bytes()
    path.write_bytes(data[:-3])
    with pytest.raises(ValueError, match="trunc"):
        read_idx(str(path))
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 8)  # float32 dtype code
    with pytest.raises(ValueError, match="bad"):
        read_idx(str(bad))


def test_split_is_seeded_and_disjoint():
    tr1, va1 = train_val_split(1000, 100, seed=3)
    tr2, va2 = train_val_split(1000, 100, seed=3)
    _, va3 = train_val_split(1000, 100, seed=4)
    np.testing.assert_array_equal(tr1, tr2)
    np.testing.assert_array_equal(va1, va2)
    assert not np.array_equal(va1, va3)
    assert len(va1) == 100 and len(tr1) == 900
    assert set(tr1).isdisjoint(va1) and set(tr1) | set(va1) == set(range(1000))
    with pytest.raises(ValueError, match="val_size"):
        train_val_split(10, 10, 0)


@pytest.mark.skipif(not os.path.isdir(default_root()),
                    reason="Fashion-MNIST not installed (dataset-fashion-mnist or $VIP_FASHION_MNIST_DIR)")
def test_fashion_mnist_shapes():
    test = load_fashion_mnist("test")
    assert test.images.shape == (10000, 28, 28, 1) and test.images.dtype == np.uint8
    assert test.labels.shape == (10000,) and set(np.unique(test.labels)) == set(range(10))
    assert len(test.class_names) == 10
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("validation")
