"""`vip-perception evaluate accuracy`: each member of a shipped bank scored on data exported to
disk, checked against a plain loop (top-1) and against the in-memory scene evaluation (mAP)."""
import json
import os
import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vip_perception.bank import load_bank
from vip_perception.cli import main as cli
from vip_perception.data.conveyor import ConveyorScenes
from vip_perception.data.export import export_conveyor, export_fashion_mnist
from vip_perception.data.user_data import DatasetError, detect_dataset, folder_name, open_split
from vip_perception.evaluation.accuracy import build_split_settings, evaluate_accuracy, match_classes
from vip_perception.tasks.detection import evaluate_map

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSIFIER = os.path.join(ROOT, "config", "banks", "fashion_mnist")
DETECTOR = os.path.join(ROOT, "config", "banks", "conveyor_detector")


@pytest.fixture(scope="module")
def fm_folder(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("fm") / "data")
    export_fashion_mnist(out, size=28, limit=30)  # the shipped classifier's input size
    return out


def _read(path):
    with open(path) as fh:
        return json.load(fh)


def test_top1_and_latency_per_member(fm_folder, tmp_path):
    path = str(tmp_path / "acc.json")
    assert cli(["evaluate", "accuracy", "--bank", CLASSIFIER, "--data", fm_folder, "--json", path,
                "--no-progress"]) == 0
    result = _read(path)
    bank = load_bank(CLASSIFIER)
    assert (result["format"], result["split"], result["images"], result["metric"]) == ("image_folder", "test", 30,
                                                                                       "top1")
    assert result["machine"]["threads"] == 1 and result["skipped"] == {}
    rows = {r["name"]: r for r in result["members"]}
    assert set(rows) == {m.name for m in bank.members}
    ds = open_split(detect_dataset(fm_folder), "test")
    names = detect_dataset(fm_folder).class_names
    for m in bank.members:  # the slow, obvious reference: preprocess, forward, argmax, compare names
        with torch.inference_mode():
            hits = [folder_name(bank.class_names[int(m.module(bank.preprocess(img)).argmax())]) == names[label]
                    for img, label in (ds[i] for i in range(len(ds)))]
        assert rows[m.name]["top1"] == pytest.approx(np.mean(hits))
        assert rows[m.name]["runs"] == 30 and 0 < rows[m.name]["latency_ms_p50"] <= rows[m.name]["latency_ms_p95"]
    assert max(r["top1"] for r in rows.values()) >= 0.6  # a trained bank, not chance (0.1)
    vip = [r for r in rows.values() if r["parent"]]
    assert vip and all(r["top1_loss"] == pytest.approx(rows[r["parent"]]["top1"] - r["top1"]) for r in vip)


def test_map_from_disk_equals_the_in_memory_scenes(tmp_path):
    out = str(tmp_path / "conveyor")
    export_conveyor(out, images=14)  # test split: scenes 0 and 1 of the shipped detector's test scenes
    bank = load_bank(DETECTOR)
    result = evaluate_accuracy(bank, detect_dataset(out))  # the library under the command (one bank load)
    assert (result["format"], result["images"], result["metric"]) == ("coco", 2, "map50")
    test = ConveyorScenes("test")
    for r in result["members"]:
        reference = evaluate_map(bank.member(r["name"]).module, test, 2, bank.input_spec.channels)
        assert r["map50"] == pytest.approx(reference["map50"], abs=1e-6)
        assert r["map"] == pytest.approx(reference["map"], abs=1e-6)
        assert r["runs"] == 2 and r["latency_ms_p50"] > 0
    assert max(r["map50"] for r in result["members"]) > 0.5


def test_an_unreadable_image_is_left_out_once(fm_folder, tmp_path, capsys):
    data = str(tmp_path / "data")
    shutil.copytree(fm_folder, data)
    victim = sorted(os.listdir(os.path.join(data, "test", "Bag")))[0]
    with open(os.path.join(data, "test", "Bag", victim), "wb") as fh:
        fh.write(b"broken")
    path = str(tmp_path / "acc.json")
    assert cli(["evaluate", "accuracy", "--bank", CLASSIFIER, "--data", data, "--json", path, "--limit", "30",
                "--no-progress"]) == 0
    result = _read(path)
    assert result["images"] == 29 and result["skipped"] == {"unreadable image": 1}
    assert all(r["runs"] == 29 for r in result["members"])
    assert "skipped: {'unreadable image': 1}" in capsys.readouterr().out


def test_data_without_splits_is_split_as_the_build_split_it(fm_folder, tmp_path):
    data = str(tmp_path / "flat")
    for name in os.listdir(os.path.join(fm_folder, "train")):
        shutil.copytree(os.path.join(fm_folder, "train", name), os.path.join(data, name))
    recipe = {"build": {"recipe": {"seed": 4, "data": {"kind": "user_data", "val_fraction": 0.2,
                                                       "test_fraction": 0.3}}}}
    assert build_split_settings(SimpleNamespace(manifest=recipe)) == {"seed": 4, "val_fraction": 0.2,
                                                                     "test_fraction": 0.3}
    assert build_split_settings(SimpleNamespace(manifest={})) == {"seed": 0, "val_fraction": 0.15,
                                                                 "test_fraction": 0.15}
    path = str(tmp_path / "acc.json")
    assert cli(["evaluate", "accuracy", "--bank", CLASSIFIER, "--data", data, "--json", path, "--seed", "3",
                "--test-fraction", "0.2", "--no-progress"]) == 0
    result = _read(path)
    assert result["split_settings"] == {"seed": 3, "val_fraction": 0.15, "test_fraction": 0.2}
    assert result["images"] == 10  # 30 images, 3 per class: one per class to val, one to test


def test_class_names_match_by_name_or_folder_name():
    assert match_classes(["a/b", "c"], ["c", "a_b"], "B", "D") == [1, 0]
    with pytest.raises(DatasetError, match=r"classes of D \['c', 'x'\] do not match those of bank B \['a/b', 'c'\]"):
        match_classes(["a/b", "c"], ["c", "x"], "B", "D")


@pytest.mark.parametrize("case, message", [
    ("other_classes", r"classes of .* \['Bag', 'Coat'\] do not match those of bank .* \['T-shirt/top', "),
    ("detector_on_folder", r"no annotations/instances_\*.json \(or Roboflow's train/_annotations.coco.json\); "
                           "detection needs a COCO directory"),
    ("no_split", r"no 'test' split \(this data has \['train', 'val'\]\)"),
    ("bad_fractions", r"val_fraction 0.9 and test_fraction 0.15 must be in \[0, 1\) with val_fraction > 0 and a sum"),
    ("bad_limit", r"--limit >= 0"),
])
def test_errors_are_one_line(fm_folder, tmp_path, capsys, case, message):
    bank, data, extra = CLASSIFIER, fm_folder, []
    if case == "other_classes":
        data = str(tmp_path / "two")
        for split in ("train", "val", "test"):
            for name in ("Bag", "Coat"):
                shutil.copytree(os.path.join(fm_folder, split, name), os.path.join(data, split, name))
    elif case == "detector_on_folder":
        bank = DETECTOR
    elif case in ("no_split", "bad_fractions"):
        data = str(tmp_path / "flat")
        for name in os.listdir(os.path.join(fm_folder, "train")):
            shutil.copytree(os.path.join(fm_folder, "train", name), os.path.join(data, name))
        extra = ["--test-fraction", "0"] if case == "no_split" else ["--val-fraction", "0.9"]
    else:
        extra = ["--limit", "-1"]
    assert cli(["evaluate", "accuracy", "--bank", bank, "--data", data, "--no-progress"] + extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert re.search(message, err), err
