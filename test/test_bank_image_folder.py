"""The bank builder on a user's own image folder (one sub-folder per class), RGB input."""
import cv2
import numpy as np
import pytest
import torch
import yaml

from vip_perception.bank import load_bank
from vip_perception.cli import main as cli
from vip_perception.data import load_image_folder

torch.set_num_threads(1)
CLASSES = ["circle", "hbar", "vbar"]


def _make_folder(root, per_class=24, size=20):
    rng = np.random.default_rng(0)
    for ci, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 40, size=(size, size, 3), dtype=np.uint8)
            color = tuple(int(c) for c in rng.integers(150, 256, size=3))
            c = int(rng.integers(7, 13))
            if name == "circle":
                cv2.circle(img, (c, c), 5, color, -1)
            elif name == "hbar":
                cv2.rectangle(img, (2, c - 2), (size - 3, c + 2), color, -1)
            else:
                cv2.rectangle(img, (c - 2, 2), (c + 2, size - 3), color, -1)
            cv2.imwrite(str(root / name / f"{i:03d}.png"), img)


def test_load_image_folder(tmp_path):
    _make_folder(tmp_path / "data", per_class=3)
    ds = load_image_folder(str(tmp_path / "data"), 16, 12, 3)
    assert ds.images.shape == (9, 16, 12, 3) and ds.class_names == CLASSES
    assert list(ds.labels) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    grey = load_image_folder(str(tmp_path / "data"), 8, 8, 1)
    assert grey.images.shape == (9, 8, 8, 1)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_image_folder(str(tmp_path / "nowhere"), 8, 8, 1)


def test_build_on_image_folder(tmp_path):
    _make_folder(tmp_path / "data")
    tiny_train = {"epochs": 6, "batch_size": 16, "optimizer": "adamw", "lr": 0.005, "schedule": "onecycle"}
    cfg = {
        "name": "shapes", "seed": 1, "threads": 1, "bf16": "off",
        "data": {"kind": "image_folder", "root": str(tmp_path / "data"), "val_size": 12, "test_size": 12,
                 "height": 16, "width": 16, "channels": 3, "mean": [0.2, 0.2, 0.2], "std": [0.3, 0.3, 0.3]},
        "search": {"count": 2, "stages": [2], "layers": [1], "base_widths": [4], "kernel_sizes": [3],
                   "max_macs": 1.0e6, "train": tiny_train},
        "parents": [{"name": "p", "spec": {"family": "plain", "stages": [[8], [8]], "head": "gap"}, "train": tiny_train}],
        "vip": {"variants_per_parent": 1, "sensitivity_samples": 12,
                "finetune": {"epochs": 1, "batch_size": 16, "optimizer": "sgd", "lr": 0.01, "schedule": "step3"}},
        "profile": {"threads": [1], "runs": 4, "warmup": 1, "rounds": 2},
        "select": {"threads": 1, "quantile": "p50", "epsilon": 0.0},
    }
    path = tmp_path / "shapes.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "bank"
    assert cli(["bank", "build", "--config", str(path), "--out", str(out), "--work", str(tmp_path / "w"), "--no-progress"]) == 0
    bank = load_bank(str(out))
    assert bank.class_names == CLASSES and bank.input_spec.channels == 3 and bank.input_spec.height == 16
    kinds = {c.kind for c in bank.candidates()}
    assert kinds == {"base", "parent", "vip"}
    img = cv2.cvtColor(cv2.imread(str(tmp_path / "data" / "hbar" / "000.png")), cv2.COLOR_BGR2RGB)
    x = bank.preprocess(img)
    assert x.shape == (1, 3, 16, 16)
    with torch.inference_mode():
        assert bank.members[-1].module(x).shape == (1, 3)


def test_bad_config_is_named(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nsearch: {count: 2, colour: red}\n")
    assert cli(["bank", "build", "--config", str(path), "--out", str(tmp_path / "o"), "--work", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "colour" in err and "bad.yaml" in err
