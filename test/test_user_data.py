"""A team's own data on disk: ImageFolder and COCO layouts, listed cheaply and decoded per item."""
import json
import os

import cv2
import numpy as np
import pytest
import torch

from vip_perception.data.image_folder import load_image_folder
from vip_perception.data.user_data import (
    DatasetError,
    coco_ground_truth,
    detect_dataset,
    drop_crowd,
    open_split,
)

CLASSES = ["bolt", "nut", "washer"]


def _write_image(path, h=20, w=24, grey=False, value=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = np.full((h, w) if grey else (h, w, 3), value, dtype=np.uint8)
    if not grey:
        img[:, :, 0] = 255  # blue in OpenCV's BGR: must come back as the last RGB channel
    assert cv2.imwrite(str(path), img)


def _folder(root, per_class=(4, 5, 6), splits=None):
    for s in splits or [None]:
        for ci, name in enumerate(CLASSES):
            for i in range(per_class[ci]):
                base = root / s if s else root
                _write_image(base / name / f"{i:03d}.png", 16 + i, 20 + ci, grey=(i % 2 == 1), value=10 * ci)


def test_image_folder_with_splits_any_size_grey_or_colour(tmp_path):
    _folder(tmp_path, per_class=(2, 3, 1), splits=["train", "val", "test"])
    (tmp_path / "train" / "nut" / "notes.txt").write_text("not an image")  # ignored
    info = detect_dataset(str(tmp_path))
    assert (info.format, info.task, info.class_names, info.category_ids) == ("image_folder", "classification",
                                                                             CLASSES, [])
    assert info.splits == {"train": 6, "val": 6, "test": 6}
    ds = open_split(info, "val")
    items = [ds[i] for i in range(len(ds))]
    assert [label for _, label in items] == [0, 0, 1, 1, 1, 2]
    colour, grey = items[0][0], items[1][0]
    assert colour.dtype == np.uint8 and colour.shape == (16, 20, 3) and grey.shape == (17, 20, 3)
    assert colour[0, 0].tolist() == [0, 0, 255]  # RGB
    assert grey[0, 0].tolist() == [0, 0, 0] and ds.skipped == {}


def test_flat_folder_split_is_stratified_and_seeded(tmp_path):
    _folder(tmp_path, per_class=(10, 20, 30))
    info = detect_dataset(str(tmp_path), val_fraction=0.2, test_fraction=0.1)
    assert info.splits == {"train": 42, "val": 12, "test": 6}
    parts = {s: open_split(info, s, seed=0) for s in info.splits}
    assert [len(parts[s]) for s in info.splits] == [42, 12, 6]
    assert np.bincount(parts["val"].labels).tolist() == [2, 4, 6]
    assert np.bincount(parts["test"].labels).tolist() == [1, 2, 3]
    all_paths = np.concatenate([parts[s].paths for s in info.splits])
    assert len(set(all_paths.tolist())) == 60  # disjoint and complete
    other = open_split(detect_dataset(str(tmp_path), seed=1, val_fraction=0.2, test_fraction=0.1), "val", seed=1)
    assert len(other) == 12 and set(other.paths.tolist()) != set(parts["val"].paths.tolist())
    assert detect_dataset(str(tmp_path)).splits == {"train": 51, "val": 9}  # 15 % val, no test by default


def test_folder_works_with_dataloader_workers(tmp_path):
    _folder(tmp_path, per_class=(3, 3, 3), splits=["train", "val"])
    ds = open_split(detect_dataset(str(tmp_path)), "train")
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=list)
    labels = [label for batch in loader for _, label in batch]
    assert labels == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    both = torch.utils.data.ConcatDataset([torch.utils.data.Subset(ds, [0, 8]), ds])  # torch's map-style protocol
    assert len(both) == 11 and both[1][1] == 2 and both[10][1] == 2


@pytest.mark.parametrize("case, message", [
    ("missing_val", r"has train/ but no val/ split; add .*val/<class>/ images"),
    ("empty_class", r"nut: class folder with no images"),
    ("other_classes", r"val: classes \['bolt', 'nut'\] differ from the train split's \['bolt', 'nut', 'washer'\]"),
    ("no_classes", r"no class folders; put images in"),
    ("too_few", r"2 images are too few to split into train and val"),
    ("nowhere", r"nowhere: data directory not found"),
])
def test_folder_errors_name_the_folder(tmp_path, case, message):
    root = tmp_path / ("nowhere" if case == "nowhere" else "data")
    if case == "missing_val":
        _folder(root, splits=["train"])
    elif case == "empty_class":
        _folder(root)
        for f in (root / "nut").iterdir():
            f.unlink()
    elif case == "other_classes":
        _folder(root, splits=["train", "val"])
        for f in (root / "val" / "washer").iterdir():
            f.unlink()
        (root / "val" / "washer").rmdir()
    elif case == "no_classes":
        root.mkdir()
        _write_image(root / "loose.png")
    elif case == "too_few":
        _write_image(root / "bolt" / "a.png")
        _write_image(root / "nut" / "b.png")
    with pytest.raises(DatasetError, match=message):
        detect_dataset(str(root))


def test_unreadable_images_are_skipped_then_refused(tmp_path):
    _folder(tmp_path, per_class=(10, 10, 10), splits=["train", "val"])
    bad = tmp_path / "train" / "nut" / "003.png"
    bad.write_bytes(b"not a png")
    ds = open_split(detect_dataset(str(tmp_path)), "train")
    image, label = ds[13]  # the broken file: replaced by the next readable image
    assert ds.paths[13].decode().endswith("nut/003.png") and label == 1 and image.shape == (20, 21, 3)
    assert ds.skipped == {"unreadable image": 1}
    ds[13]
    assert ds.skipped == {"unreadable image": 1}  # counted once per file
    ds.substitute = False  # evaluation: an unreadable image is no item, never another image twice
    assert ds[13] is None and ds[14][1] == 1 and ds.skipped == {"unreadable image": 1}
    for name in ("004.png", "005.png"):
        (tmp_path / "train" / "nut" / name).write_bytes(b"")
    ds = open_split(detect_dataset(str(tmp_path)), "train")
    with pytest.raises(DatasetError, match=r"train: 2 of 30 images cannot be decoded .*up to 5% are skipped"):
        [ds[i] for i in range(len(ds))]


# ---------------------------------------------------------------------------------------------
# COCO

# Non-contiguous category ids in no order, as real exports write them.
CATEGORIES = [{"id": 12, "name": "crate"}, {"id": 3, "name": "bottle"}, {"id": 7, "name": "can"}]


def _coco(root, split, images, annotations, where="images", categories=CATEGORIES):
    """images: [(id, file_name, w, h)] written under root/<where>; annotations: [(image id, category id,
    bbox, iscrowd)]."""
    for image_id, name, w, h in images:
        if where is not None:
            _write_image(root / where / name, h, w, value=image_id)
    doc = {"images": [{"id": i, "file_name": n, "width": w, "height": h} for i, n, w, h in images],
           "annotations": [{"id": k + 1, "image_id": i, "category_id": c, "bbox": b, "iscrowd": crowd}
                           for k, (i, c, b, crowd) in enumerate(annotations)],
           "categories": categories}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))


def _two_splits(root):
    _coco(root, "train", [(5, "a.png", 40, 30), (9, "b.png", 40, 30), (11, "neg.png", 40, 30)], [
        (5, 3, [2, 3, 10, 8], 0),
        (5, 12, [30, 20, 20, 20], 0),  # partly outside: clipped to (30, 20, 40, 30)
        (5, 7, [0, 0, 40, 30], 1),  # crowd: flagged, dropped for training
        (9, 7, [5, 5, 0, 4], 0),  # zero width: skipped
        (9, 3, [50, 5, 4, 4], 0),  # wholly outside: skipped
        (9, 12, [1, 1, 5, 5], 0),
    ], where="images")
    _coco(root, "val", [(1, "c.png", 32, 24)], [(1, 7, [4, 4, 8, 8], 0)], where="val")


def test_coco_splits_categories_and_targets(tmp_path):
    _two_splits(tmp_path)
    info = detect_dataset(str(tmp_path))
    assert (info.format, info.task) == ("coco", "detection")
    assert info.class_names == ["bottle", "can", "crate"] and info.category_ids == [3, 7, 12]
    assert info.splits == {"train": 3, "val": 1}
    ds = open_split(info, "train")
    image, target = ds[0]
    assert image.shape == (30, 40, 3) and image.dtype == np.uint8 and target["image_id"] == 5
    np.testing.assert_allclose(target["boxes"], [[2, 3, 12, 11], [30, 20, 40, 30], [0, 0, 40, 30]])
    assert target["labels"].tolist() == [0, 2, 1] and target["iscrowd"].tolist() == [0, 0, 1]
    assert target["boxes"].dtype == np.float32 and target["labels"].dtype == np.int64
    assert drop_crowd(target)["labels"].tolist() == [0, 2]
    assert ds[1][1]["labels"].tolist() == [2]
    negative = ds[2][1]
    assert negative["boxes"].shape == (0, 4) and negative["labels"].shape == (0,)
    assert ds.skipped == {"box with non-positive size": 1, "box outside the image": 1}
    val_image, val_target = open_split(info, "val")[0]  # found under DIR/val
    assert val_image.shape == (24, 32, 3) and val_target["labels"].tolist() == [1]


def test_roboflow_export_layout(tmp_path):
    """Roboflow: DIR/{train,valid,test}/_annotations.coco.json beside the images, "valid" for val."""
    for folder, images in (("train", [(5, "a.jpg", 40, 30), (6, "b.jpg", 40, 30)]), ("valid", [(1, "c.jpg", 32, 24)])):
        _coco(tmp_path, folder, images, [(images[0][0], 7, [4, 4, 8, 8], 0)], where=folder)
        os.replace(tmp_path / "annotations" / f"instances_{folder}.json", tmp_path / folder / "_annotations.coco.json")
    (tmp_path / "annotations").rmdir()
    info = detect_dataset(str(tmp_path))
    assert (info.format, info.splits, info.class_names) == ("coco", {"train": 2, "val": 1}, ["bottle", "can", "crate"])
    image, target = open_split(info, "val")[0]  # found beside its annotation file
    assert image.shape == (24, 32, 3) and target["labels"].tolist() == [1]
    os.makedirs(tmp_path / "val")
    os.replace(tmp_path / "valid" / "_annotations.coco.json", tmp_path / "val" / "_annotations.coco.json")
    doc = (tmp_path / "val" / "_annotations.coco.json").read_text()
    (tmp_path / "valid" / "_annotations.coco.json").write_text(doc)
    with pytest.raises(DatasetError, match="a second val annotation file besides"):
        detect_dataset(str(tmp_path))


def test_coco_ground_truth_scores_itself_perfectly(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    _two_splits(tmp_path)
    info = detect_dataset(str(tmp_path))
    gt = coco_ground_truth(info, "train")
    assert [c["id"] for c in gt["categories"]] == [1, 2, 3] and [i["id"] for i in gt["images"]] == [5, 9, 11]
    assert [(a["image_id"], a["category_id"], a["iscrowd"]) for a in gt["annotations"]] == [
        (5, 1, 0), (5, 3, 0), (5, 2, 1), (9, 3, 0)]
    assert gt["annotations"][1]["bbox"] == [30.0, 20.0, 10.0, 10.0]
    coco = COCO()
    coco.dataset = gt
    coco.createIndex()
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
            for a in gt["annotations"] if not a["iscrowd"]]
    ev = COCOeval(coco, coco.loadRes(dets), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0) and ev.stats[1] == pytest.approx(1.0)


def test_windows_file_names_and_the_in_memory_reader(tmp_path):
    _coco(tmp_path, "default", [(1, "sub/a.png", 16, 12), (2, "b.png", 16, 12)], [], where="images")
    doc = json.loads((tmp_path / "annotations" / "instances_default.json").read_text())
    doc["images"][0]["file_name"] = "sub\\a.png"
    (tmp_path / "annotations" / "instances_default.json").write_text(json.dumps(doc))
    info = detect_dataset(str(tmp_path))
    assert info.splits == {"train": 1, "val": 1}
    _folder(tmp_path / "folder", per_class=(2, 1, 1))
    (tmp_path / "folder" / "nut" / "000.png").write_bytes(b"broken")
    with pytest.raises(DatasetError, match=r"nut/000.png: cannot decode image; fix or remove it"):
        load_image_folder(str(tmp_path / "folder"), 8, 8, 3)


def test_coco_single_file_is_split_by_image(tmp_path):
    images = [(i, f"{i}.png", 16, 12) for i in range(1, 21)]
    _coco(tmp_path, "default", images, [(i, 3, [1, 1, 4, 4], 0) for i in range(1, 21)], where=None)
    for i, name, w, h in images:
        _write_image(tmp_path / name, h, w)  # file_name resolved against DIR itself
    info = detect_dataset(str(tmp_path), val_fraction=0.2, test_fraction=0.1)
    assert info.splits == {"train": 14, "val": 4, "test": 2}
    ids = {s: {int(v) for v in open_split(info, s).listing.image_ids} for s in info.splits}
    assert sorted(ids["train"] | ids["val"] | ids["test"]) == list(range(1, 21))
    assert sum(len(v) for v in ids.values()) == 20
    gt_ids = {im["id"] for im in coco_ground_truth(info, "val")["images"]}
    assert gt_ids == ids["val"]
    assert {int(v) for v in open_split(info, "val", seed=3).listing.image_ids} != ids["val"]


@pytest.mark.parametrize("case, message", [
    ("missing_image", r"instances_train.json: 1 of 1 images not found \(first: 'gone.png'; looked in"),
    ("unknown_category", r"instances_train.json: annotation 1 has unknown category id 4 \(categories: \[3, 7, 12\]\)"),
    ("unknown_image", r"instances_train.json: annotation 1 points at image id 99, which is not in 'images'"),
    ("missing_val", r"annotations: no instances_val\*.json split besides instances_test.json, instances_train.json"),
    ("ambiguous", r"instances_trainval.json: with several annotation files each name must contain exactly one of"),
    ("bad_json", r"instances_train.json: cannot read COCO JSON"),
    ("other_categories", r"instances_val.json: categories .* differ from"),
    ("folder_as_detection", r"no annotations/instances_\*.json \(or Roboflow's train/_annotations.coco.json\); "
                            "detection needs a COCO directory"),
    ("coco_as_classification", r"a COCO directory \(annotations/instances_\*.json\) holds detection data; "
                               r"classification needs an ImageFolder"),
])
def test_coco_errors_name_the_file(tmp_path, case, message):
    one = [(1, "a.png", 16, 12)]
    box = [(1, 3, [1, 1, 4, 4], 0)]
    task = None
    if case == "missing_image":
        _coco(tmp_path, "train", [(1, "gone.png", 16, 12)], [], where=None)
        _coco(tmp_path, "val", one, box)
    elif case == "unknown_category":
        _coco(tmp_path, "train", one, [(1, 4, [1, 1, 4, 4], 0)])
        _coco(tmp_path, "val", one, box)
    elif case == "unknown_image":
        _coco(tmp_path, "train", one, [(99, 3, [1, 1, 4, 4], 0)])
        _coco(tmp_path, "val", one, box)
    elif case == "missing_val":
        _coco(tmp_path, "train", one, box)
        _coco(tmp_path, "test", one, box)
    elif case == "ambiguous":
        _coco(tmp_path, "trainval", one, box)
        _coco(tmp_path, "test", one, box)
    elif case == "bad_json":
        _coco(tmp_path, "val", one, box)
        (tmp_path / "annotations" / "instances_train.json").write_text("{not json")
    elif case == "other_categories":
        _coco(tmp_path, "train", one, box)
        _coco(tmp_path, "val", one, box, categories=CATEGORIES[:2])
    elif case == "coco_as_classification":
        _coco(tmp_path, "train", one, box)
        _coco(tmp_path, "val", one, box)
        task = "classification"
    else:
        _folder(tmp_path, splits=["train", "val"])
        task = "detection"
    with pytest.raises(DatasetError, match=message):
        detect_dataset(str(tmp_path), task=task)


def test_coco_image_size_must_match_annotations(tmp_path):
    _coco(tmp_path, "train", [(1, "a.png", 16, 12)], [])
    _coco(tmp_path, "val", [(1, "a.png", 16, 12)], [])
    _write_image(tmp_path / "images" / "a.png", 10, 10)
    ds = open_split(detect_dataset(str(tmp_path)), "train")
    with pytest.raises(DatasetError, match=r"a.png: image is 10x10 but its annotations say 16x12; fix width/height"):
        ds[0]
    with pytest.raises(DatasetError, match=r"no 'test' split \(this data has \['train', 'val'\]\)"):
        open_split(detect_dataset(str(tmp_path)), "test")
