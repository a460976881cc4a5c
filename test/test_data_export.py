"""`vip-perception data export`: Fashion-MNIST as an ImageFolder and conveyor scenes as a COCO
directory, read back through ``user_data`` with the same pixels, labels and boxes."""
import json
import os

import numpy as np
import pytest
import torch

from vip_perception.cli import main as cli
from vip_perception.data.conveyor import ConveyorScenes
from vip_perception.data.fashion_mnist import CLASS_NAMES, load_fashion_mnist
from vip_perception.data.station_render import render_station
from vip_perception.data.user_data import detect_dataset, folder_name, open_split


def test_fashion_mnist_round_trips_as_an_image_folder(tmp_path):
    out = str(tmp_path / "fm")
    assert cli(["data", "export", "--what", "fashion-mnist", "--out", out, "--size", "32", "--limit", "12",
                "--no-progress"]) == 0
    info = detect_dataset(out)
    assert info.format == "image_folder" and info.splits == {"train": 12, "val": 12, "test": 12}
    assert info.class_names == sorted(folder_name(c) for c in CLASS_NAMES) and "T-shirt_top" in info.class_names
    sources = {"train": load_fashion_mnist("train"), "test": load_fashion_mnist("test")}
    for split in info.splits:
        ds = open_split(info, split)
        assert sorted(set(ds.labels.tolist())) == list(range(10))  # every class in every split
        for k in (0, len(ds) - 1):
            image, label = ds[k]
            source, index = os.path.basename(ds.paths[k].decode())[:-4].split("_")
            item = sources[source].images[int(index), :, :, 0]
            expected = render_station(torch.from_numpy(item[None]), 32)[0, 0].round().to(torch.uint8).numpy()
            assert image.shape == (32, 32, 3) and np.array_equal(image[:, :, 1], expected)
            assert np.array_equal(image[:, :, 0], image[:, :, 2])  # grey, returned as RGB
            assert info.class_names[label] == folder_name(CLASS_NAMES[sources[source].labels[int(index)]])
    train_val = {os.path.basename(p.decode()) for s in ("train", "val") for p in open_split(info, s).paths}
    assert len(train_val) == 24  # val is held out of the training images, not repeated
    with open(os.path.join(out, "export.json")) as fh:
        assert json.load(fh)["images"] == {"train": 12, "val": 12, "test": 12}


def test_conveyor_round_trips_as_coco(tmp_path):
    out = str(tmp_path / "conveyor")
    assert cli(["data", "export", "--what", "conveyor", "--out", out, "--images", "7", "--no-progress"]) == 0
    info = detect_dataset(out)
    assert (info.format, info.task) == ("coco", "detection")
    assert info.class_names == CLASS_NAMES and info.category_ids == list(range(1, 11))
    assert info.splits == {"train": 5, "val": 1, "test": 1}
    for split in info.splits:
        ds, scenes = open_split(info, split), ConveyorScenes(split)
        assert ds.skipped == {}
        for i in range(len(ds)):
            image, target = ds[i]
            scene = scenes.scene(i)
            assert target["image_id"] == i and np.array_equal(image, scene.image)
            np.testing.assert_allclose(target["boxes"], scene.boxes)
            assert target["labels"].tolist() == scene.labels.tolist()


@pytest.mark.parametrize("args, message", [
    (["--what", "fashion-mnist", "--size", "20"], "size must be >= 28"),
    (["--what", "fashion-mnist", "--limit", "5"], "limit must be 0 (all) or >= 10"),
    (["--what", "conveyor", "--images", "2"], "--images must be at least 3"),
    (["--what", "conveyor", "--images", "3", "--out-exists"], "exists and is not an empty directory; pass a new --out"),
])
def test_export_errors_are_one_line(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    if "--out-exists" in args:
        args = [a for a in args if a != "--out-exists"]
        out.mkdir()
        (out / "keep.txt").write_text("x")
    assert cli(["data", "export", "--out", str(out), "--no-progress"] + args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
