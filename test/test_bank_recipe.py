"""The one recipe loader for both bank builders, portable build records, the Fashion-MNIST root,
and the shipped manifests (no build-machine paths, still checksum-valid)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vip_perception.bank.manifest import read_manifest
from vip_perception.bank.provenance import EXTERNAL, portable_command, portable_path
from vip_perception.bank.recipe import (
    ClassifierRecipe,
    DetectorRecipe,
    DetectorTrainRecipe,
    RecipeError,
    TrainRecipe,
    load_recipe,
    to_dict,
)
from vip_perception.data import fashion_mnist
from vip_perception.data.conveyor import ConveyorConfig

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_recipes_load_full_and_quick():
    full = load_recipe(str(ROOT / "config" / "bank_fashion_mnist.yaml"), ClassifierRecipe)
    quick = load_recipe(str(ROOT / "config" / "bank_fashion_mnist.yaml"), ClassifierRecipe, quick=True)
    assert full.data.root == ""  # the default root: $VIP_FASHION_MNIST_DIR or Debian's
    assert isinstance(full.search.train, TrainRecipe) and full.search.count > quick.search.count
    assert [p.name for p in quick.parents] == ["tiny", "tinyres"]
    det = load_recipe(str(ROOT / "config" / "detector_conveyor.yaml"), DetectorRecipe)
    det_quick = load_recipe(str(ROOT / "config" / "detector_conveyor.yaml"), DetectorRecipe, quick=True)
    assert isinstance(det.scene, ConveyorConfig) and det.scene.light_range == (0.75, 1.15)
    assert isinstance(det.parent, DetectorTrainRecipe) and det_quick.parent.steps < det.parent.steps
    json.dumps(to_dict(det))  # JSON-able, as the manifest's build record needs
    json.dumps(to_dict(full))


@pytest.mark.parametrize("text, field, recipe_type", [
    ("search: {count: 2, colour: red}\n", "search", ClassifierRecipe),  # unknown key, named with its section
    ("search: {train: {lr: fast}}\n", "search.train.lr", ClassifierRecipe),
    ("threads: 1.5\n", "threads", ClassifierRecipe),
    ("data: {mean: [0.1, x]}\n", "data.mean[1]", ClassifierRecipe),
    ("parents: [{spec: {}}]\n", "parents[0]", ClassifierRecipe),  # name is required
    ("parent: {steps: many}\n", "parent.steps", DetectorRecipe),
    ("scene: {width: 10}\n", "scene", DetectorRecipe),  # ConveyorConfig's own check
    ("val_scenes: 2\nsensitivity_scenes: 3\n", "sensitivity_scenes", DetectorRecipe),
    ("select: {vip_max_val_drop: 1.5}\n", "vip_max_val_drop is a fraction", ClassifierRecipe),  # 1.5 points?
    ("select: {vip_min_speedup: 0}\n", "vip_min_speedup must be > 0", ClassifierRecipe),
    ("select: {latency_tie: 5}\n", "latency_tie is a fraction", ClassifierRecipe),  # 5%?
])
def test_bad_recipe_names_file_and_field(tmp_path, text, field, recipe_type):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError) as err:
        load_recipe(str(path), recipe_type)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and field in message


def test_unreadable_recipe_is_named(tmp_path):
    with pytest.raises(RecipeError, match="nowhere.yaml"):
        load_recipe(str(tmp_path / "nowhere.yaml"), ClassifierRecipe)
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(RecipeError, match="list.yaml: a recipe is a mapping"):
        load_recipe(str(tmp_path / "list.yaml"), DetectorRecipe)


def test_quick_section_merges_over_the_rest(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("search: {count: 9, train: {lr: 0.5, epochs: 2}}\nquick: {search: {train: {lr: 0.01}}}\n")
    quick = load_recipe(str(path), ClassifierRecipe, quick=True)
    assert (quick.search.count, quick.search.train.lr, quick.search.train.epochs) == (9, 0.01, 2.0)
    assert load_recipe(str(path), ClassifierRecipe).search.train.lr == 0.5


def test_portable_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert portable_path(ROOT / "config" / "bank_fashion_mnist.yaml") == "config/bank_fashion_mnist.yaml"
    assert portable_path(tmp_path / "out" / "bank") == "out/bank"  # relative to the current directory
    assert portable_path("/somewhere/else/work") == f"{EXTERNAL}/work"
    assert portable_path("") == ""
    command = portable_command(["--config", str(ROOT / "config" / "x.yaml"), "--work=/tmp/w", "--quick",
                                "--out", "/data/banks/b"], ("--config", "--work", "--out"))
    assert command == f"--config config/x.yaml --work={EXTERNAL}/w --quick --out {EXTERNAL}/b"


def test_fashion_mnist_root_honours_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(fashion_mnist.ROOT_ENV, raising=False)
    assert fashion_mnist.default_root() == fashion_mnist.DEFAULT_ROOT
    monkeypatch.setenv(fashion_mnist.ROOT_ENV, str(tmp_path))
    assert fashion_mnist.default_root() == str(tmp_path)
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        fashion_mnist.load_fashion_mnist("test")  # no root given: the variable's directory is read


@pytest.mark.parametrize("bank", ["fashion_mnist", "conveyor_detector"])
def test_shipped_manifest_has_no_machine_paths_and_checks(bank):
    directory = ROOT / "config" / "banks" / bank
    if not (directory / "manifest.json").is_file():
        pytest.skip(f"shipped bank {bank} not present")
    read_manifest(str(directory))  # schema and every file's sha256 still hold

    def strings(value):
        if isinstance(value, dict):
            for v in value.values():
                yield from strings(v)
        elif isinstance(value, list):
            for v in value:
                yield from strings(v)
        elif isinstance(value, str):
            yield value

    manifest = json.loads((directory / "manifest.json").read_text())
    for text in strings(manifest):
        for word in text.split():
            word = word.split("=", 1)[-1]
            assert not os.path.isabs(word), f"{bank}/manifest.json records a build-machine path: {text!r}"


def test_save_manifest_validates_before_writing(tmp_path):
    from vip_perception.bank import BankError
    from vip_perception.bank.manifest import SCHEMA_VERSION
    from vip_perception.bank.provenance import save_manifest

    shipped = ROOT / "config" / "banks" / "conveyor_detector" / "manifest.json"
    if not shipped.is_file():
        pytest.skip("shipped detector bank not present")
    manifest = json.loads(shipped.read_text())
    manifest.pop("schema_version")
    written = save_manifest(str(tmp_path), manifest)
    assert next(iter(written)) == "schema_version" and written["schema_version"] == SCHEMA_VERSION
    assert json.loads((tmp_path / "manifest.json").read_text()) == written
    broken = dict(manifest, task="segmentation")
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(BankError, match="manifest.json"):
        save_manifest(str(tmp_path), broken)
    assert not (tmp_path / "manifest.json").exists()
