"""The conveyor scene: repeatable, one garment per station dwell, ground truth that matches."""
from __future__ import annotations

import numpy as np
import pytest

from vip_perception.data.synthetic_scene import ConveyorScene, SceneConfig


def _items(n=20):
    rng = np.random.default_rng(1)
    imgs = np.zeros((n, 28, 28), np.uint8)
    imgs[:, 4:24, 6:22] = rng.integers(100, 256, (n, 1, 1), dtype=np.uint8)  # bright blocks
    return imgs, np.arange(n) % 10


@pytest.fixture
def scene():
    imgs, labels = _items()
    return ConveyorScene(SceneConfig(width=160, height=120, dwell_frames=3, travel_frames=2,
                                     seed=3), imgs, labels)


def test_frames_are_repeatable_and_sized(scene):
    a, b = scene.frame(7), scene.frame(7)
    assert a.image.shape == (120, 160, 3) and a.image.dtype == np.uint8
    np.testing.assert_array_equal(a.image, b.image)
    assert a.ground_truth() == b.ground_truth()


def test_station_dwell_and_travel(scene):
    x, y, w, h = scene.station_roi()
    assert (w, h) == (120, 120) and x == 20
    frames = [scene.frame(i) for i in range(scene.period * 3)]
    for i, f in enumerate(frames):
        phase = i % scene.period
        assert f.at_station == (phase < 3)
        if f.at_station:
            assert f.box == (x, y, w, h)
            assert f.item == frames[i - phase].item
    # one garment per dwell; consecutive dwells show different garments
    assert frames[0].item != frames[scene.period].item


def test_label_matches_dataset_and_garment_is_drawn(scene):
    f = scene.frame(0)
    assert f.label == int(scene.labels[f.item])
    x, y, w, h = f.box
    inside = f.image[y:y + h, x:x + w, 0].astype(int)
    assert inside.max() > 90  # the bright block, over a dark belt
    assert f.image[:, :x, 0].max() < 40


def test_seed_changes_order():
    imgs, labels = _items()
    a = ConveyorScene(SceneConfig(width=64, height=48, seed=0), imgs, labels)
    b = ConveyorScene(SceneConfig(width=64, height=48, seed=1), imgs, labels)
    assert [a.frame(i * a.period).item for i in range(5)] != [b.frame(i * b.period).item for i in range(5)]


def test_bad_config_rejected():
    with pytest.raises(ValueError, match="28x28"):
        SceneConfig(width=10, height=10)
    with pytest.raises(ValueError, match="dwell"):
        SceneConfig(dwell_frames=0)


def test_real_fashion_mnist_when_installed():
    import os

    from vip_perception.data.fashion_mnist import default_root

    if not os.path.isdir(default_root()):
        pytest.skip("Fashion-MNIST not installed (dataset-fashion-mnist or $VIP_FASHION_MNIST_DIR)")
    s = ConveyorScene(SceneConfig(width=640, height=480))
    f = s.frame(0)
    assert f.image.shape == (480, 640, 3) and 0 <= f.label < 10 and f.class_name
