"""Quick detector bank: build, resume after a lost candidate, load with hash checks, evaluate to JSON."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from vip_perception.bank import BankError
from vip_perception.bank import (
    load_bank as load_detector_bank,  # one loader for every task
)
from vip_perception.bank.build_detector import DetectorBankBuilder
from vip_perception.bank.manifest import SCHEMA_VERSION, read_manifest
from vip_perception.bank.recipe import DetectorRecipe, load_recipe
from vip_perception.cli import main as cli
from vip_perception.commands.bank_build_detector import default_config_path
from vip_perception.tasks.detection import to_detections


@pytest.fixture(scope="module")
def quick_build(tmp_path_factory) -> tuple[str, str]:
    """(bank directory, work directory) of one quick detector build through the CLI."""
    base = tmp_path_factory.mktemp("det_bank")
    out, work = str(base / "bank"), str(base / "work")
    torch.set_num_threads(1)
    assert cli(["bank", "build-detector", "--quick", "--out", out, "--work", work, "--no-progress"]) == 0
    return out, work


@pytest.fixture(scope="module")
def quick_detector_bank(quick_build) -> str:
    return quick_build[0]


def test_quick_build_loads_with_checked_members(quick_detector_bank):
    bank = load_detector_bank(quick_detector_bank)
    assert bank.task == "detection" and len(bank.class_names) == 10
    assert any(m.name == "parent" for m in bank.members)
    assert all(m.parent == "parent" and m.vip_layers for m in bank.members if m.name != "parent")
    lat = [m.quantile_ms(1, "p50") for m in bank.members]
    assert lat == sorted(lat)
    frame = np.full((96, 128, 3), 30, np.uint8)
    x = bank.preprocess(frame)  # mean 0 / std 1: [0, 1] grey pixels, the detector normalises inside
    assert x.shape == (1, 1, 96, 128) and 0.0 <= float(x.min()) <= float(x.max()) <= 1.0
    with torch.inference_mode():
        out = bank.members[0].module(list(x))[0]
    dets = to_detections(out, bank.class_names, (96, 128), (96, 128))
    assert all(0 <= d.class_id < 10 for d in dets)


def test_evaluate_writes_per_member_metrics(quick_detector_bank, tmp_path):
    path = str(tmp_path / "eval.json")
    assert cli(["evaluate", "detector", "--bank", quick_detector_bank, "--json", path, "--runs", "3",
                "--rounds", "1", "--plot", str(tmp_path / "plot.png"), "--no-progress"]) == 0
    assert os.path.getsize(tmp_path / "plot.png") > 1000
    with open(path) as fh:
        result = json.load(fh)
    rows = {r["name"]: r for r in result["members"]}
    for r in rows.values():
        for key in ("map50", "map", "latency_ms_p50", "backbone_latency_ms_p50", "vip_layers"):
            assert key in r
    vip = [r for r in rows.values() if r["parent"]]
    assert vip and all({"speedup", "map50_loss", "map_loss"} <= set(r) for r in vip)
    assert cli(["evaluate", "detector", "--bank", quick_detector_bank, "--runs", "0", "--no-progress"]) == 0


def _comparable(manifest: dict) -> dict:
    """The manifest less wall-clock training seconds and the command-line provenance."""
    for m in manifest["members"]:
        m["train"].pop("seconds")
    for key in ("config", "command", "quick"):
        manifest["build"].pop(key, None)
    return manifest


def test_rerun_retrains_only_the_missing_candidate(quick_build, tmp_path):
    """A finished build with one candidate's output deleted: the re-run trains that candidate
    alone, reuses every other step, and writes the same manifest."""
    out, work = quick_build
    copy = tmp_path / "work"
    shutil.copytree(work, copy)
    vips = sorted(d for d in os.listdir(copy) if d.startswith("vip"))
    assert len(vips) == 2
    shutil.rmtree(copy / vips[-1])
    cfg = load_recipe(default_config_path(), DetectorRecipe, quick=True)
    builder = DetectorBankBuilder(cfg, str(copy), str(tmp_path / "bank"), progress=False)
    builder.run()
    assert builder.trained == [vips[-1]]
    again = _comparable(read_manifest(str(tmp_path / "bank")))
    assert again == _comparable(read_manifest(out))


def test_tampering_and_a_wrong_task_are_caught(quick_detector_bank, tmp_path):
    with open(os.path.join(quick_detector_bank, "manifest.json")) as fh:
        manifest = json.load(fh)
    assert manifest["schema_version"] == SCHEMA_VERSION
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in os.listdir(quick_detector_bank):
        data = open(os.path.join(quick_detector_bank, name), "rb").read()
        if name == manifest["members"][0]["file"]:
            data = data[:-1] + bytes([data[-1] ^ 1])
        (bad / name).write_bytes(data)
    with pytest.raises(BankError, match="sha256"):
        load_detector_bank(str(bad))
    (bad / "manifest.json").write_text(json.dumps({**manifest, "task": "segmentation"}))
    with pytest.raises(BankError, match="task"):
        load_detector_bank(str(bad))
    with pytest.raises(BankError, match="missing: no such bank directory"):
        load_detector_bank(str(tmp_path / "missing"))


def test_shipped_bank_loads_and_records_its_figures():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "config", "banks", "conveyor_detector")
    if not os.path.isfile(os.path.join(path, "manifest.json")):
        pytest.skip("shipped detector bank not built")
    bank = load_detector_bank(path)
    parent = bank.member("parent")
    assert bank.input_spec.height == 240 and bank.input_spec.width == 320
    assert parent.test_accuracy >= 0.80  # test mAP@0.5 of the parent
    assert all(m.parent == "parent" for m in bank.members if m is not parent)
