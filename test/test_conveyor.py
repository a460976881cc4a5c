"""Conveyor detection scenes: seeded, tight boxes, disjoint splits, COCO files standard tools read."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from vip_perception.bank.detection_data import SceneSource
from vip_perception.data.conveyor import (
    BOX_LEVEL,
    ConveyorConfig,
    ConveyorScenes,
    _cover,
    _source_items,
    coco_dict,
    write_split,
)


def squares(n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Fake garments: a bright square at a known place in each 28x28 item."""
    imgs = np.zeros((n, 28, 28), np.uint8)
    imgs[:, 6:20, 8:22] = 200  # 14 rows x 14 cols
    return imgs, np.arange(n) % 10


PLAIN = ConveyorConfig(width=160, height=120, min_items=1, max_items=4, min_scale=1.0, max_scale=1.0,
                       max_rotation=0.0, noise_std=0.0, gradient=0.0, light_range=(1.0, 1.0), max_overlap=0.0)


def test_scene_is_a_pure_function_of_config_split_index():
    imgs, labs = squares()
    a, b = ConveyorScenes("train", PLAIN, imgs, labs), ConveyorScenes("train", PLAIN, imgs, labs)
    s1, s2 = a.scene(5), b.scene(5)
    assert np.array_equal(s1.image, s2.image) and np.array_equal(s1.boxes, s2.boxes)
    assert not np.array_equal(a.scene(6).image, s1.image)
    assert s1.image.shape == (120, 160, 3) and s1.image.dtype == np.uint8


def test_boxes_are_tight_and_inside_the_scene():
    imgs, labs = squares()
    scenes = ConveyorScenes("train", PLAIN, imgs, labs)
    for i in range(10):
        s = scenes.scene(i)
        assert 1 <= len(s.boxes) <= 4 and len(s.labels) == len(s.boxes)
        for box, item in zip(s.boxes, s.items):
            x0, y0, x1, y1 = box
            assert (x1 - x0, y1 - y0) == (14, 14)  # the square exactly, at scale 1 without rotation
            assert 0 <= x0 and 0 <= y0 and x1 <= 160 and y1 <= 120
            grey = s.image[int(y0):int(y1), int(x0):int(x1), 0]
            assert grey.min() >= BOX_LEVEL  # every pixel in the box is garment (no overlap allowed)
        for j in range(len(s.boxes)):
            for k in range(len(s.boxes)):
                if j != k:
                    assert _cover(s.boxes[j], s.boxes[k]) == 0.0


def test_overlap_is_bounded():
    imgs, labs = squares()
    cfg = ConveyorConfig(width=96, height=96, min_items=6, max_items=8, min_scale=1.0, max_scale=1.5, max_overlap=0.25)
    scenes = ConveyorScenes("train", cfg, imgs, labs)
    for i in range(10):
        b = scenes.scene(i).boxes
        for j in range(len(b)):
            for k in range(len(b)):
                if j != k:
                    assert _cover(b[j], b[k]) <= 0.25 + 1e-6


def test_val_and_test_use_disjoint_halves_of_the_test_split():
    val, test = _source_items("val", 10000, 0), _source_items("test", 10000, 0)
    assert len(val) == len(test) == 5000 and not set(val) & set(test)
    assert np.array_equal(_source_items("train", 100, 0), np.arange(100))


def test_real_fashion_mnist_splits_never_mix():
    val = ConveyorScenes("val", ConveyorConfig())
    test = ConveyorScenes("test", ConveyorConfig())
    items_v = np.concatenate([val.scene(i).items for i in range(20)])
    items_t = np.concatenate([test.scene(i).items for i in range(20)])
    assert set(items_v) <= set(val.pool) and set(items_t) <= set(test.pool)
    assert not set(items_v) & set(items_t)
    assert len(val.images) == 10000  # Fashion-MNIST test split


def test_coco_files_round_trip_through_pycocotools(tmp_path):
    from pycocotools.coco import COCO

    imgs, labs = squares()
    scenes = ConveyorScenes("val", PLAIN, imgs, labs)
    path = write_split(str(tmp_path), "val", 3, scenes=scenes)
    coco = COCO(path)
    assert len(coco.getImgIds()) == 3 and len(coco.getCatIds()) == 10
    for i in range(3):
        info = coco.loadImgs(i)[0]
        png = cv2.imread(os.path.join(tmp_path, info["file_name"]))[..., ::-1]
        assert np.array_equal(png, scenes.scene(i).image)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=i))
        s = scenes.scene(i)
        assert [a["category_id"] for a in anns] == list(s.labels + 1)
        assert np.allclose([a["bbox"] for a in anns], np.c_[s.boxes[:, :2], s.boxes[:, 2:] - s.boxes[:, :2]])
    with open(path) as fh:
        assert json.load(fh)["info"]["config"]["width"] == 160
    assert coco_dict(scenes, 2)["images"][1]["file_name"] == "val_000001.png"


def test_box_shapes_and_bad_input():
    imgs, labs = squares()
    sizes, ratios = SceneSource(ConveyorScenes("train", PLAIN, imgs, labs), 5, 1).box_shapes(5)
    assert len(sizes) and np.allclose(sizes, 14.0) and np.allclose(ratios, 1.0)
    with pytest.raises(ValueError, match="split"):
        ConveyorScenes("validation", PLAIN, imgs, labs)
    with pytest.raises(ValueError, match="min_items"):
        ConveyorConfig(min_items=5, max_items=2)
    with pytest.raises(ValueError, match="max_scale"):
        ConveyorConfig(width=64, height=64, max_scale=2.0)
    empty = ConveyorConfig(width=96, height=96, min_items=0, max_items=0)
    sizes, _ = SceneSource(ConveyorScenes("train", empty, imgs, labs), 3, 1).box_shapes(3)
    assert sizes.shape == (0,)  # the builder refuses to fit anchors to no boxes


def test_belt_stream_moves_garments_and_clips_boxes():
    from vip_perception.data.conveyor import BeltStream

    imgs, labs = squares()
    cfg = ConveyorConfig(width=160, height=120, min_items=2, max_items=3, min_scale=1.0, max_scale=1.0,
                         max_rotation=0.0, noise_std=0.0, max_overlap=0.0)
    belt = BeltStream("test", cfg, speed=4, images=imgs, labels=labs)
    f0, f1 = belt.frame(0), belt.frame(1)
    assert f0.image.shape == (120, 160, 3)
    assert np.array_equal(f0.image[:, 4:], f1.image[:, :-4])  # the belt moved 4 px to the left
    assert np.array_equal(belt.frame(40).image, belt.frame(40).image)  # 160 px on: next panel, repeatable
    for i in range(0, 80, 7):
        f = belt.frame(i)
        assert ((f.boxes[:, 0] >= 0) & (f.boxes[:, 2] <= 160)).all()
        assert ((f.boxes[:, 2] - f.boxes[:, 0]) >= 7).all()  # at least half of a 14 px garment in view
    truth = belt.ground_truth(3)
    assert len(truth["boxes"]) == len(truth["class_ids"]) == len(truth["class_names"])
    with pytest.raises(ValueError, match="speed"):
        BeltStream("test", cfg, speed=0, images=imgs, labels=labs)
