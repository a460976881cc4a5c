"""`bank build --data DIR`: the one-command classifier build on an ImageFolder on disk (no
recipe), its budget plan (pure functions, fake throughputs), resuming, and every bad flag."""
import json

import cv2
import numpy as np
import pytest
import torch

from shape_folders import SHAPES, write_shape_folder
from vip_perception.bank import LatencyProfile, load_bank
from vip_perception.bank.auto_recipe import (
    BuildRequest,
    RequestError,
    default_input_size,
    parent_configs,
    parse_input_size,
    planned_recipe,
)
from vip_perception.bank.build_classifier import PHASES, ClassifierBankBuilder
from vip_perception.bank.plan import ParentCost, plan_build
from vip_perception.bank.recipe import ClassifierRecipe, load_recipe, to_dict
from vip_perception.bank.train_classifier import StreamImages, normalise
from vip_perception.cli import main as cli
from vip_perception.data.image_folder import to_model_array
from vip_perception.data.user_data import detect_dataset, open_split

torch.set_num_threads(1)
CLASSES = SHAPES


def _make_folder(root, per_class=12, size=32):
    write_shape_folder(root, per_class, size, radius=7, centre=(10, 22), half=3, margin=3)


# ---- the plan: pure functions of throughputs ----------------------------------------------------
def test_plan_splits_the_budget_as_computed_by_hand():
    cost = ParentCost("p", train_ips=10.0, eval_ips=100.0, latency_ms=10.0, vip_layers=5)
    plan = plan_build(1000.0, n_train=1000, n_val=200, costs=[cost])
    # training: 55 % of 1000 s at 10 img/s over 1000 images = 5.5 epochs
    assert [(p.name, p.epochs, p.vip_variants) for p in plan.parents] == [("p", 5.5, 3)]
    # ViP: 370 s; sensitivity 5 layers x 200 images at 100 img/s = 10 s; fine-tunes of 100 s: 3 fit
    assert plan.sensitivity_samples == 200 and plan.finetune_epochs == 1.0
    assert plan.profile_runs == 200  # 80 s for 4 candidates x 10 ms: the cap
    assert plan.seconds == {"parents": 550.0, "vip": 310.0, "profile": 8.0}
    assert plan.skipped == ["ViP variants of p: 3 of 6 left out, 3 built (each fine-tune takes 100 s, 360 s left)"]


def test_more_time_buys_more_epochs_and_variants_up_to_the_caps():
    costs = [ParentCost("a", 50.0, 200.0, 5.0, 8), ParentCost("b", 20.0, 80.0, 12.0, 12)]
    plans = [plan_build(b, 2000, 300, costs) for b in (600.0, 2400.0, 20000.0)]
    for lo, hi in zip(plans, plans[1:]):
        for p, q in zip(lo.parents, hi.parents):
            assert q.epochs >= p.epochs and q.vip_variants >= p.vip_variants
    assert all(p.epochs == 30.0 and p.vip_variants == 6 for p in plans[-1].parents)
    assert plans[-1].skipped == []


def test_a_tight_budget_drops_the_slowest_parent_and_says_why():
    costs = [ParentCost("fast", 100.0, 400.0, 1.0, 4), ParentCost("slow", 5.0, 20.0, 20.0, 4)]
    plan = plan_build(60.0, 1000, 100, costs)
    assert [p.name for p in plan.parents] == ["fast"]
    assert plan.skipped[0] == "parent slow: 1 epoch needs 200 s, its share was 16 s"
    assert plan.parents[0].epochs == pytest.approx(3.3)
    alone = plan_build(10.0, 1000, 100, [costs[1]])
    assert alone.parents[0].epochs == 0.028  # 5.5 s x 5 img/s over 1000 images, 3 decimals
    assert "parent slow: trained 0.03 epochs only (wanted >= 1)" in alone.skipped
    assert alone.profile_runs == 40  # 8 % of 10 s = 0.8 s over 20 ms runs
    assert plan_build(1.0, 1000, 100, [costs[1]]).profile_runs == 10  # the floor


def test_plan_says_when_vip_cannot_be_derived():
    plan = plan_build(100.0, 100, 50, [ParentCost("flat", 100.0, 1.0, 1.0, 0), ParentCost("deep", 100.0, 1.0, 1.0, 40)])
    assert "ViP variants of flat: no ViP-able convolution" in plan.skipped
    assert "ViP variants of deep: sensitivity of 40 layers does not fit 18 s" in plan.skipped
    assert all(p.vip_variants == 0 for p in plan.parents)
    with pytest.raises(ValueError, match="no parent"):
        plan_build(100.0, 100, 50, [])


# ---- request parsing ----------------------------------------------------------------------------
def test_input_size_arch_and_weights_flags():
    assert parse_input_size("64") == (64, 64) and parse_input_size("48x64") == (48, 64)
    for bad in ("", "big", "4", "64x", "0x10"):
        with pytest.raises(RequestError, match="--input-size"):
            parse_input_size(bad)
    parents = parent_configs(["resnet18", "vgg_s", "resnet18"], ["w.pth"])
    assert [p.name for p in parents] == ["resnet18", "vgg_s", "resnet18_2"]
    assert parents[0].weights.endswith("w.pth") and parents[1].weights == "" and parents[0].spec == {"arch": "resnet18"}
    assert [p.name for p in parent_configs([], [])] == ["resnet18", "vgg_m"]
    with pytest.raises(RequestError, match=r"--arch: unknown \['resnet9'\]; known: resnet18, resnet34"):
        parent_configs(["resnet9"], [])
    with pytest.raises(RequestError, match="--weights: 2 files for 1 architectures"):
        parent_configs(["resnet18"], ["a.pth", "b.pth"])
    with pytest.raises(RequestError, match="--weights a.pth: vgg_s is one of the project's own families"):
        parent_configs(["vgg_s"], ["a.pth"])
    assert default_input_size((480, 640), True) == (168, 224) and default_input_size((20, 20), True) == (32, 32)


# ---- streaming --------------------------------------------------------------------------------
def test_stream_batches_are_the_resized_normalised_images(tmp_path):
    _make_folder(tmp_path / "data", per_class=4)
    info = detect_dataset(str(tmp_path / "data"), "classification")
    ds = open_split(info, "train")
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.2, 0.2]
    stream = StreamImages(ds, ds.labels, 16, 16, 3, mean, std, workers=0)
    tail = stream[2:]
    assert len(tail) == len(ds) - 2 and torch.equal(tail.labels, torch.as_tensor(ds.labels[2:]))
    (x, y), = list(tail.batches([[0, 3]]))
    want = np.stack([to_model_array(ds[i][0], 16, 16, 3) for i in (2, 5)])
    assert x.shape == (2, 3, 16, 16) and torch.allclose(x, normalise(want, mean, std))
    assert y.tolist() == [int(ds.labels[2]), int(ds.labels[5])]


# ---- the build --------------------------------------------------------------------------------
def _fake_measure(name, spec, batch, decode_s, workers):
    """Fixed throughputs: with a 1-minute budget and 24 training images, the plan gives a parent
    about 4 epochs and two ViP variants (a few seconds of real training)."""
    return ParentCost(name, train_ips=3.0, eval_ips=50.0, latency_ms=2.0, vip_layers=10)


def _macs_profiler(models, input_shape, threads, runs, warmup, rounds, seed=0, progress=True, **_):
    """Latency proportional to MACs (deterministic): ViP variants are faster than their parent."""
    from vip_perception.vip import count_macs

    out = {}
    for name, m in models.items():
        ms = count_macs(m, input_shape).total / 1e7
        out[name] = {t: LatencyProfile(ms, ms * 1.1, ms * 1.2, ms, runs) for t in threads}
    return out


def test_one_command_build_gives_a_bank_with_a_torchvision_parent_and_vip_members(tmp_path):
    _make_folder(tmp_path / "data")
    req = BuildRequest(data=str(tmp_path / "data"), archs=["resnet18"], budget_min=1.0, threads=1, workers=0)
    cfg, plan, recipe_path = planned_recipe(req, str(tmp_path / "work"), measure=_fake_measure)
    assert cfg.data.kind == "user_data" and (cfg.data.height, cfg.data.width, cfg.data.channels) == (32, 32, 3)
    assert plan.parents[0].vip_variants >= 1 and cfg.parents[0].vip_variants == plan.parents[0].vip_variants
    builder = ClassifierBankBuilder(cfg, str(tmp_path / "work"), str(tmp_path / "bank"), progress=False,
                                    build={"plan": plan.to_dict()}, profiler=_macs_profiler)
    builder.run(list(PHASES))
    bank = load_bank(str(tmp_path / "bank"), frontier=True)
    assert bank.class_names == CLASSES and bank.input_spec.channels == 3
    kinds = {m.name: (m.spec.get("arch"), bool(m.vip_layers)) for m in bank.members}
    assert ("resnet18", True) in kinds.values()  # the fastest ViP variant is on the frontier
    assert {c.kind for c in bank.candidates()} == {"parent", "vip"}
    img = cv2.cvtColor(cv2.imread(str(tmp_path / "data" / "hbar" / "000.png")), cv2.COLOR_BGR2RGB)
    with torch.inference_mode():
        assert bank.members[0].module(bank.preprocess(img)).shape == (1, 3)
    recorded = bank.manifest["build"]["recipe"]
    assert recorded["data"]["kind"] == "user_data" and recorded["parents"][0]["spec"] == {"arch": "resnet18"}
    again = to_dict(load_recipe(recipe_path, ClassifierRecipe))  # the written recipe repeats the build
    assert {k: v for k, v in again.items() if k != "data"} == {k: v for k, v in recorded.items() if k != "data"}


def test_resume_reuses_the_plan_and_refuses_another_request(tmp_path):
    _make_folder(tmp_path / "data", per_class=4)
    calls = []

    def measure(*a):
        calls.append(a[0])
        return _fake_measure(*a)

    req = BuildRequest(data=str(tmp_path / "data"), archs=["vgg_s"], budget_min=1.0, threads=1, workers=0)
    first = planned_recipe(req, str(tmp_path / "w"), measure)
    second = planned_recipe(req, str(tmp_path / "w"), measure)
    assert calls == ["vgg_s"] and to_dict(first[0]) == to_dict(second[0]) and first[1] == second[1]
    req.archs = ["res_s"]
    with pytest.raises(RequestError, match="--work .*/w: planned for another request"):
        planned_recipe(req, str(tmp_path / "w"), measure)


def test_cli_one_command_build_end_to_end(tmp_path, capsys):
    _make_folder(tmp_path / "data", per_class=6)
    out = tmp_path / "bank"
    assert cli(["bank", "build", "--data", str(tmp_path / "data"), "--out", str(out), "--arch", "vgg_s",
                "--time-budget", "0.2", "--threads", "1", "--workers", "0", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "member" in printed and "val" in printed and "recipe: " in printed
    bank = load_bank(str(out))
    build = bank.manifest["build"]
    assert build["plan"]["parents"][0]["name"] == "vgg_s" and build["request"]["archs"] == ["vgg_s"]
    assert json.loads((tmp_path / "bank.work" / "request.json").read_text())["archs"] == ["vgg_s"]


@pytest.mark.parametrize("flags, message", [
    (["--weights", "ResNet18_Weights.IMAGENET1K_V1"], "hub weight name; nothing is downloaded here"),
    (["--weights", "IMAGENET1K_V1"], "hub weight name; nothing is downloaded here"),
    (["--arch", "resnet9"], "--arch: unknown ['resnet9']"),
    (["--input-size", "tiny"], "--input-size 'tiny'"),
    (["--input-size", "16"], "--input-size 16x16: torchvision architectures need at least 32x32"),
    (["--task", "detection"], "--arch resnet18: not a detector; known: fasterrcnn_resnet18_fpn"),
    (["--config", "x.yaml"], "--data builds without a recipe"),
    (["--time-budget", "0.001"], "--time-budget 0.001: detecting and measuring took"),
])
def test_cli_bad_flags_are_one_line_errors(tmp_path, capsys, flags, message):
    _make_folder(tmp_path / "data", per_class=3)
    assert cli(["bank", "build", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "b"), "--arch",
                "resnet18", "--time-budget", "0.05", "--threads", "1", *flags]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and message in err[0]


def test_cli_weights_that_do_not_fit_fail_before_training(tmp_path, capsys):
    from vip_perception.models import TorchvisionSpec, build_classifier

    _make_folder(tmp_path / "data", per_class=3)
    torch.save(build_classifier(TorchvisionSpec("resnet34", 3)).state_dict(), tmp_path / "r34.pth")
    assert cli(["bank", "build", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "b"), "--arch",
                "resnet18", "--weights", str(tmp_path / "r34.pth"), "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "r34.pth: weights do not fit resnet18: unexpected 96 [layer1.2.conv1.weight, " in err
    assert not (tmp_path / "b.work" / "candidates").exists() or not list((tmp_path / "b.work" / "candidates").iterdir())


def test_cli_missing_data_dir_and_coco_data(tmp_path, capsys):
    assert cli(["bank", "build", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b")]) == 2
    assert "nowhere: data directory not found" in capsys.readouterr().err
    coco = tmp_path / "coco"
    (coco / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        cv2.imwrite(str(coco / f"{split}.png"), np.zeros((8, 8, 3), np.uint8))
        (coco / "annotations" / f"instances_{split}.json").write_text(json.dumps({
            "images": [{"id": 1, "file_name": f"{split}.png", "width": 8, "height": 8}], "annotations": [],
            "categories": [{"id": 1, "name": "box"}, {"id": 2, "name": "bag"}]}))
    assert cli(["bank", "build", "--data", str(coco), "--out", str(tmp_path / "b"), "--task", "classification"]) == 2
    assert "coco: a COCO directory (annotations/instances_*.json) holds detection data; classification needs an " \
        "ImageFolder" in capsys.readouterr().err


def test_spent_budget_skips_the_remaining_vip_variants_and_lists_them(tmp_path):
    _make_folder(tmp_path / "data", per_class=6)
    req = BuildRequest(data=str(tmp_path / "data"), archs=["vgg_s"], budget_min=1.0, threads=1, workers=0)
    cfg, plan, _ = planned_recipe(req, str(tmp_path / "work"), measure=_fake_measure)
    n = plan.parents[0].vip_variants
    assert n >= 1
    builder = ClassifierBankBuilder(cfg, str(tmp_path / "work"), str(tmp_path / "bank"), progress=False,
                                    profiler=_macs_profiler)
    builder.deadline = 0.0  # long past
    builder.run(["parents", "vip"])
    assert builder.trained == ["vgg_s"]
    assert builder.skipped == [f"vgg_s.vip{i:02d}: the ViP time of the budget was spent" for i in range(n)]
