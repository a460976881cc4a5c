"""Quick bank end to end: build, load_bank API, manifest round trip, corrupt-file errors, show, profile."""
import json
import os
import shutil

import numpy as np
import pytest
import torch

from vip_perception.bank import BankError, InputSpec, LatencyProfile, load_bank
from vip_perception.bank.manifest import MANIFEST_SCHEMA, read_manifest, write_manifest
from vip_perception.cli import main as cli

torch.set_num_threads(1)


@pytest.fixture
def bank_copy(quick_bank, tmp_path):
    dst = tmp_path / "bank"
    shutil.copytree(quick_bank, dst)
    return dst


def test_quick_bank_api(quick_bank):
    bank = load_bank(str(quick_bank))
    assert bank.task == "classification" and len(bank.class_names) == 10
    assert bank.input_spec == InputSpec(28, 28, 1, (0.286,), (0.353,), False)
    assert bank.members, "compact set is empty"
    sel = bank.manifest["selection"]
    lat = [m.quantile_ms(sel["threads"], sel["quantile"]) for m in bank.members]
    assert lat == sorted(lat)
    accs = [m.val_accuracy for m in bank.members]
    assert accs == sorted(accs)
    for m in bank.members:
        assert set(m.latency) == {1, 2} and isinstance(m.latency[1], LatencyProfile)
        assert m.quantile_ms(1, "p50") <= m.quantile_ms(1, "p99")
        assert not m.module.training
        with pytest.raises(KeyError, match="threads"):
            m.quantile_ms(3)
    cands = bank.candidates()
    assert len(cands) >= 5 and any(c.kind == "vip" and c.vip_layers and c.parent for c in cands)
    assert all(c.latency for c in cands)


@pytest.mark.parametrize("shape", [(28, 28), (28, 28, 1), (56, 40, 3), (30, 30, 4)])
def test_preprocess_and_forward(quick_bank, shape):
    bank = load_bank(str(quick_bank))
    img = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    x = bank.preprocess(img)
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    with torch.inference_mode():
        logits = bank.members[0].module(x)
    assert logits.shape == (1, 10)
    black = bank.preprocess(np.zeros((28, 28), np.uint8))
    assert torch.allclose(black, torch.full_like(black, -0.286 / 0.353))
    with pytest.raises(ValueError, match="uint8"):
        bank.preprocess(img.astype(np.float32))


def test_loaded_member_reproduces_val_accuracy(quick_bank):
    """Weights + spec + ViP layers in the manifest rebuild the model that was evaluated."""
    from vip_perception.bank.build_classifier import load_splits
    from vip_perception.bank.recipe import ClassifierRecipe, load_recipe
    from vip_perception.bank.train_classifier import evaluate
    from vip_perception.commands.bank_build import default_config_path

    bank = load_bank(str(quick_bank))
    splits = load_splits(load_recipe(default_config_path(), ClassifierRecipe, quick=True))
    for m in bank.members:
        assert evaluate(m.module, splits.x_val, splits.y_val) == pytest.approx(m.val_accuracy, abs=1e-9)


def test_manifest_round_trip(quick_bank):
    data = read_manifest(str(quick_bank))
    bank = load_bank(os.path.join(str(quick_bank), "manifest.json"))
    served = [d for d in data["members"] if d["served"]]  # the builder marks every member
    assert [m.name for m in bank.members] == data["selection"]["compact"]
    names = [d["name"] for d in data["members"]]
    front = data["selection"]["frontier"]
    assert names[:len(front)] == front  # the frontier's weights ship, then the parents of its ViP variants
    vip_parents = {d["parent"] for d in data["members"] if d["kind"] == "vip"}
    assert set(names[len(front):]) == vip_parents - set(front)
    for m, d in zip(bank.members, sorted(served, key=lambda d: [x.name for x in bank.members].index(d["name"]))):
        assert (m.name, m.vip_layers, m.parent, m.macs, m.param_bytes) == (
            d["name"], d["vip_layers"], d["parent"], d["macs"], d["param_bytes"])
        assert m.latency[2].p95 == d["latency"]["2"]["p95"]
    assert data["schema_version"] == 1 and data["machine"]["cpu"]
    assert set(data["files"]) == {m["file"] for m in data["members"]} | {"candidates.json"}


def _member_file(bank_dir):
    return bank_dir / json.loads((bank_dir / "manifest.json").read_text())["members"][0]["file"]


def test_missing_file_named(bank_copy):
    f = _member_file(bank_copy)
    f.unlink()
    with pytest.raises(BankError, match=str(f)):
        load_bank(str(bank_copy))


def test_truncated_file_named(bank_copy):
    f = _member_file(bank_copy)
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(BankError, match=f"{f}.*truncated"):
        load_bank(str(bank_copy))


def test_tampered_file_named(bank_copy):
    f = _member_file(bank_copy)
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(BankError, match=f"{f}.*sha256"):
        load_bank(str(bank_copy))
    c = bank_copy / "candidates.json"
    c.write_text(c.read_text().replace("0", "1", 1))
    with pytest.raises(BankError):
        load_bank(str(bank_copy))


def test_manifest_errors(bank_copy, tmp_path):
    mpath = bank_copy / "manifest.json"
    good = json.loads(mpath.read_text())

    def check(mutate, pattern):
        d = json.loads(json.dumps(good))
        mutate(d)
        mpath.write_text(json.dumps(d))
        with pytest.raises(BankError, match=pattern):
            load_bank(str(bank_copy))

    check(lambda d: d.update(schema_version=99), "schema_version")
    check(lambda d: d.pop("members"), "schema")
    check(lambda d: d["members"][0]["latency"]["2"].update(p95=-1.0), "schema")
    check(lambda d: d["input"].update(channels=2), "schema")
    check(lambda d: d["files"].update({"../evil.bin": {"sha256": "0" * 64, "bytes": 1}}), "leaves the bank")
    check(lambda d: d["members"][0]["spec"].update(family="mlp"), "rebuild")
    check(lambda d: d.update(task="segmentation"), "schema at task")
    mpath.write_text("{not json")
    with pytest.raises(BankError, match=str(mpath)):
        load_bank(str(bank_copy))
    with pytest.raises(BankError, match="no such bank directory .*shipped banks go by name"):
        load_bank(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BankError, match="empty/manifest.json: bank manifest not found"):
        load_bank(str(tmp_path / "empty"))
    assert MANIFEST_SCHEMA["properties"]["schema_version"]["const"] == 1


def test_write_manifest_sets_the_version_validates_and_replaces_atomically(bank_copy):
    mpath = bank_copy / "manifest.json"
    good = json.loads(mpath.read_text())
    good.pop("schema_version")
    write_manifest(str(bank_copy), good)
    assert json.loads(mpath.read_text())["schema_version"] == 1 and good["schema_version"] == 1
    load_bank(str(bank_copy))
    before = mpath.read_bytes()
    bad = json.loads(json.dumps(good))
    bad["input"]["channels"] = 2
    with pytest.raises(BankError, match=f"{mpath}: manifest fails its schema at input/channels"):
        write_manifest(str(bank_copy), bad)
    assert mpath.read_bytes() == before  # nothing written
    assert sorted(p.name for p in bank_copy.iterdir() if ".tmp" in p.name) == []


def test_show_json_and_plot(quick_bank, tmp_path, capsys):
    jpath, ppath = tmp_path / "show.json", tmp_path / "show.png"
    assert cli(["bank", "show", str(quick_bank), "--json", str(jpath), "--plot", str(ppath)]) == 0
    out = capsys.readouterr().out
    report = json.loads(jpath.read_text())
    fields = {"name", "latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "val_accuracy", "test_accuracy",
              "vip_layers", "parent", "macs", "param_bytes"}
    assert report["members"] and report["candidates"]
    for row in report["members"] + report["candidates"]:
        assert fields <= set(row) and 0.0 <= row["val_accuracy"] <= 1.0
    assert report["members"][0]["name"] in out
    assert {"with_vip", "without_vip", "reference"} <= set(report["selection"]["hypervolume"])
    assert ppath.stat().st_size > 10_000


def test_profile_command_updates_manifest(bank_copy):
    before = json.loads((bank_copy / "manifest.json").read_text())
    assert cli(["bank", "profile", str(bank_copy), "--runs", "6", "--warmup", "1", "--rounds", "2", "--threads", "1",
                "--no-progress"]) == 0
    after = json.loads((bank_copy / "manifest.json").read_text())
    assert after["machine"]["reprofiled"] is True
    assert all(m["latency"]["1"]["runs"] == 6 and set(m["latency"]) == {"1"} for m in after["members"])
    assert {m["name"] for m in after["members"]} == {m["name"] for m in before["members"]}
    r = after["selection"]["reselected"]  # re-selected on the new profile, at the only thread count
    assert (r["backend"], r["threads"]) == ("torch", 1) and r["served"] == after["selection"]["compact"]
    assert [m.name for m in load_bank(str(bank_copy)).members] == r["served"]
