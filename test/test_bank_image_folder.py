"""The bank builder on a user's own image folder (one sub-folder per class), RGB input."""
import os

import cv2
import pytest
import torch
import yaml

from shape_folders import SHAPES, write_shape_folder
from vip_perception.bank import LatencyProfile, load_bank
from vip_perception.bank.build_classifier import PHASES, ClassifierBankBuilder
from vip_perception.bank.manifest import read_manifest
from vip_perception.bank.recipe import ClassifierRecipe, load_recipe
from vip_perception.cli import main as cli
from vip_perception.data import load_image_folder

torch.set_num_threads(1)
CLASSES = SHAPES


def _make_folder(root, per_class=24, size=20):
    write_shape_folder(root, per_class, size, radius=5, centre=(7, 13), half=2, margin=2)


def test_load_image_folder(tmp_path):
    _make_folder(tmp_path / "data", per_class=3)
    ds = load_image_folder(str(tmp_path / "data"), 16, 12, 3)
    assert ds.images.shape == (9, 16, 12, 3) and ds.class_names == CLASSES
    assert list(ds.labels) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    grey = load_image_folder(str(tmp_path / "data"), 8, 8, 1)
    assert grey.images.shape == (9, 8, 8, 1)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_image_folder(str(tmp_path / "nowhere"), 8, 8, 1)


def _shapes_recipe(tmp_path) -> dict:
    tiny_train = {"epochs": 6, "batch_size": 16, "optimizer": "adamw", "lr": 0.005, "schedule": "onecycle"}
    return {
        "name": "shapes", "seed": 1, "threads": 1, "bf16": "off",
        "data": {"kind": "image_folder", "root": str(tmp_path / "data"), "val_size": 12, "test_size": 12,
                 "height": 16, "width": 16, "channels": 3, "mean": [0.2, 0.2, 0.2], "std": [0.3, 0.3, 0.3]},
        "search": {"count": 2, "stages": [2], "layers": [1], "base_widths": [4], "kernel_sizes": [3],
                   "max_macs": 1.0e6, "train": tiny_train},
        "parents": [{"name": "p", "spec": {"family": "plain", "stages": [[8], [8]], "head": "gap"},
                     "train": tiny_train}],
        "vip": {"variants_per_parent": 1, "sensitivity_samples": 12,
                "finetune": {"epochs": 1, "batch_size": 16, "optimizer": "sgd", "lr": 0.01, "schedule": "step3"}},
        "profile": {"threads": [1], "runs": 4, "warmup": 1, "rounds": 2},
        "select": {"threads": 1, "quantile": "p50", "epsilon": 0.0},
    }


def test_build_on_image_folder(tmp_path):
    _make_folder(tmp_path / "data")
    path = tmp_path / "shapes.yaml"
    path.write_text(yaml.safe_dump(_shapes_recipe(tmp_path)))
    out = tmp_path / "bank"
    assert cli(["bank", "build", "--config", str(path), "--out", str(out), "--work", str(tmp_path / "w"),
                "--no-progress"]) == 0
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
    assert cli(["bank", "build", "--config", str(path), "--out", str(tmp_path / "o"),
                "--work", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "colour" in err and "bad.yaml" in err


def _fake_profiler(models, input_shape, threads, runs, warmup, rounds, seed=0, progress=True, **_):
    """Deterministic latencies (ms): a function of the candidate's name, so two builds compare exactly."""
    out = {}
    for i, name in enumerate(sorted(models)):
        ms = 0.1 * (i + 1)
        out[name] = {t: LatencyProfile(ms, ms * 1.1, ms * 1.2, ms, runs) for t in threads}
    return out


class Interrupted(Exception):
    pass


def test_interrupted_build_resumes_without_retraining(tmp_path):
    """A build stopped after its first trained candidate skips it on the next run and ends with
    the manifest of a build that was never interrupted."""
    _make_folder(tmp_path / "data")
    path = tmp_path / "shapes.yaml"
    path.write_text(yaml.safe_dump(_shapes_recipe(tmp_path)))

    def recipe():  # a fresh copy per builder
        return load_recipe(str(path), ClassifierRecipe)

    whole = ClassifierBankBuilder(recipe(), str(tmp_path / "w_whole"), str(tmp_path / "whole"), progress=False,
                                  profiler=_fake_profiler)
    whole.run(list(PHASES))
    total = len(whole.trained)
    assert total == 4  # 2 base + 1 parent + 1 ViP variant

    def stop(name):
        raise Interrupted(name)

    work, out = str(tmp_path / "w_resumed"), str(tmp_path / "resumed")
    first = ClassifierBankBuilder(recipe(), work, out, progress=False, on_trained=stop, profiler=_fake_profiler)
    with pytest.raises(Interrupted):
        first.run(list(PHASES))
    assert first.trained == ["b000"] and not os.path.exists(os.path.join(out, "manifest.json"))
    second = ClassifierBankBuilder(recipe(), work, out, progress=False, profiler=_fake_profiler)
    second.run(list(PHASES))
    assert "b000" not in second.trained and len(second.trained) == total - 1
    assert _without_timing(read_manifest(out)) == _without_timing(read_manifest(str(tmp_path / "whole")))


def _without_timing(manifest: dict) -> dict:
    """The manifest less the wall-clock training seconds (in each member's record and so in
    candidates.json's checksum); weights' checksums, accuracies and selection stay."""
    for m in manifest["members"]:
        m["train"].pop("seconds")
    manifest["files"].pop("candidates.json")
    return manifest
