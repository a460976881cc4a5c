"""A detector bank from a COCO directory on disk with a torchvision parent: the builder end to
end at toy size (ViP variant, manifest, loading, one served frame), the budget planner, the
one-command flag checks, and torchvision checkpoints with another class count."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vip_perception.bank import load_bank
from vip_perception.bank.auto_detector import DetectorCost, default_detector_size, plan_detector
from vip_perception.bank.auto_recipe import RequestError
from vip_perception.bank.build_detector import DetectorBankBuilder
from vip_perception.bank.detection_data import CocoSource
from vip_perception.bank.manifest import read_manifest
from vip_perception.bank.recipe import DetectorProfileRecipe, DetectorRecipe, DetectorTrainRecipe
from vip_perception.cli import main as cli
from vip_perception.data.conveyor import ConveyorConfig
from vip_perception.data.export import export_conveyor
from vip_perception.data.user_data import detect_dataset
from vip_perception.models.torchvision_arch import WeightsError
from vip_perception.models.torchvision_detector import (
    TorchvisionDetectorSpec,
    build_torchvision_detector,
    coco_class_names,
    fit_detector_weights,
)
from vip_perception.tasks import get_task

SMALL = ConveyorConfig(width=128, height=96, min_items=1, max_items=2, min_scale=0.9, max_scale=1.1)


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("coco") / "conveyor")
    export_conveyor(out, 40, SMALL)  # 28 train, 6 val, 6 test
    return out


def _recipe(data: str) -> DetectorRecipe:
    train = DetectorTrainRecipe(steps=2, batch=2, scenes=0, warmup=1, threads=1, ckpt_every=1, log_every=1,
                                hflip=True)
    return DetectorRecipe(name="coco_toy", data=data, arch="fasterrcnn_resnet18_fpn", input_size=[96, 128],
                          detector={"proposals": 16, "box_representation": 32}, anchor_scenes=20, val_scenes=6,
                          sensitivity_scenes=3, test_scenes=6, parent=train,
                          finetune=DetectorTrainRecipe(steps=1, batch=2, scenes=0, warmup=1, threads=1),
                          vip_groups=1, max_vip_layers=3,
                          profile=DetectorProfileRecipe(threads=[1], runs=2, rounds=1, warmup=1))


def test_coco_source_scales_images_and_boxes_to_the_input(coco_dir):
    info = detect_dataset(coco_dir, "detection")
    src = CocoSource(info, "train", (48, 64), 3)  # half the 96x128 images
    x, target = src[0]
    raw_boxes = src.items[0][1]["boxes"]
    assert x.shape == (3, 48, 64) and 0.0 <= float(x.min()) <= float(x.max()) <= 1.0
    assert torch.allclose(target["boxes"], torch.from_numpy(raw_boxes / 2.0))
    assert target["labels"].min() >= 1  # torchvision's label 0 is background
    items = list(src.eval_items(3))
    assert [i[2] for i in items] == [(2.0, 2.0)] * 3  # input pixels -> the image's own
    gt = src.ground_truth([it[1] for it in items])
    assert len(gt["images"]) == 3 and {a["image_id"] for a in gt["annotations"]} <= {it[1] for it in items}


def test_builds_a_torchvision_detector_bank_from_a_coco_directory(coco_dir, tmp_path):
    out, work = str(tmp_path / "bank"), str(tmp_path / "work")
    torch.set_num_threads(1)
    builder = DetectorBankBuilder(_recipe(coco_dir), work, out, progress=False)
    builder.run()
    assert builder.trained == ["parent", "vip01"]
    m = read_manifest(out)
    assert m["task"] == "detection" and m["class_names"][0] == "T-shirt/top" and len(m["class_names"]) == 10
    assert m["input"]["channels"] == 3 and (m["input"]["height"], m["input"]["width"]) == (96, 128)
    parent = next(r for r in m["members"] if r["name"] == "parent")
    assert parent["spec"] == {"arch": "fasterrcnn_resnet18_fpn", "num_classes": 10, "image_size": [96, 128],
                              "proposals": 16, "box_representation": 32}
    vip = m["build"]["candidates"]["vip01"]  # shipped only if on the frontier: toy training decides that
    assert len(vip["vip_layers"]) >= 1 and all(n.startswith(("backbone.body.", "backbone.fpn."))
                                               for n in vip["vip_layers"])
    assert set(vip["latency"]) == {"1"} and vip["latency"]["1"]["p50"] > 0
    assert 0.0 <= parent["metrics"]["val_map50"] <= 1.0 and "test_map" in parent["metrics"]
    assert m["build"]["recipe"]["data"] != coco_dir or not coco_dir.startswith("/")  # no machine path recorded
    # served like any bank: a frame of another size in, boxes in frame pixels out
    bank = load_bank(out)
    frame = np.full((192, 256, 3), 40, np.uint8)
    x = bank.preprocess(frame)
    assert x.shape == (1, 3, 96, 128)
    member = bank.member("parent")
    out_dict = member.run(x, 1)
    result = get_task(bank.task).postprocess(out_dict, bank.class_names, (96, 128), (0, 0, 256, 192))
    assert all(0 <= d.class_id < 10 for d in result["detections"])
    # evaluate accuracy on the COCO split through the serving path: served members, or every shipped one
    for flags, want in (([], {r["name"] for r in m["members"] if r.get("served", True)}),
                        (["--frontier"], {r["name"] for r in m["members"]})):
        path = str(tmp_path / "acc.json")
        assert cli(["evaluate", "accuracy", "--bank", out, "--data", coco_dir, "--split", "test", "--json", path,
                    "--no-progress", *flags]) == 0
        with open(path) as fh:
            scored = json.load(fh)
        assert {r["name"] for r in scored["members"]} == want and scored["images"] == 6
        assert all(0.0 <= r["map50"] <= 1.0 for r in scored["members"])
    # resumable: a second run trains nothing
    again = DetectorBankBuilder(_recipe(coco_dir), work, out, progress=False)
    again.run()
    assert again.trained == []


def test_plan_splits_the_budget_and_refuses_one_too_short():
    cost = DetectorCost(step_s=2.0, infer_s=0.05, vip_layers=12)
    plan = plan_detector(3600.0, 420, 90, 90, cost)
    assert plan.vip_groups == 3 and plan.parent_steps > 3 * plan.finetune_steps > 0
    assert sum(plan.seconds.values()) <= 3600.0
    small = plan_detector(3600.0, 20, 5, 5, cost)  # 20 images: capped at MAX_EPOCHS passes, and says so
    assert small.parent_steps == 400 and "capped" in small.skipped[0]
    with pytest.raises(RequestError, match=r"--time-budget 2 min is too short: a training step takes 2\.0 s"):
        plan_detector(120.0, 420, 90, 90, cost)
    assert default_detector_size((480, 640)) == (480, 640) and default_detector_size((1080, 1920)) == (352, 640)


def test_the_planned_recipe_is_written_and_read_back_on_resume(coco_dir, tmp_path):
    from vip_perception.bank.auto_detector import planned_detector_recipe
    from vip_perception.bank.auto_recipe import BuildRequest
    from vip_perception.bank.recipe import load_recipe

    seen = []

    def measure(spec, threads, weights):
        seen.append(spec)
        return DetectorCost(step_s=0.5, infer_s=0.01, vip_layers=17)

    req = BuildRequest(data=coco_dir, budget_min=5.0, threads=2)
    cfg, plan, path = planned_detector_recipe(req, str(tmp_path / "work"), "belt", measure)
    assert seen == [{"arch": "fasterrcnn_resnet18_fpn", "num_classes": 10, "image_size": [96, 128],
                     "proposals": 64, "box_representation": 256}]
    assert cfg.arch == "fasterrcnn_resnet18_fpn" and cfg.input_size == [96, 128] and cfg.parent.hflip
    assert cfg.parent.steps == plan.parent_steps > 0 and cfg.vip_groups == 3 and cfg.val_scenes == 6
    assert load_recipe(path, DetectorRecipe) == cfg
    again, plan2, _ = planned_detector_recipe(BuildRequest(data=coco_dir, budget_min=9.0, threads=2),
                                              str(tmp_path / "work"), "belt", measure)
    assert again == cfg and plan2.parent_steps == plan.parent_steps and len(seen) == 1  # resumed, not re-planned
    with pytest.raises(RequestError, match="planned for another request"):
        planned_detector_recipe(BuildRequest(data=coco_dir, budget_min=5.0, threads=1), str(tmp_path / "work"),
                                "belt", measure)


def test_one_command_flags_name_what_is_wrong(coco_dir, tmp_path, capsys):
    assert cli(["bank", "build", "--data", coco_dir, "--out", str(tmp_path / "b"), "--arch", "resnet18"]) == 2
    assert "--arch resnet18: not a detector; known: fasterrcnn_resnet18_fpn" in capsys.readouterr().err
    assert cli(["bank", "build", "--data", coco_dir, "--out", str(tmp_path / "b"),
                "--arch", "fasterrcnn_resnet18_fpn,ssd300_vgg16"]) == 2
    assert "a detection bank has one parent" in capsys.readouterr().err
    assert cli(["bank", "build", "--data", coco_dir, "--out", str(tmp_path / "b"), "--weights",
                "FasterRCNN_ResNet50_FPN_Weights.COCO_V1"]) == 2
    assert "nothing is downloaded here" in capsys.readouterr().err
    assert cli(["bank", "build", "--data", coco_dir, "--out", str(tmp_path / "b"), "--input-size", "16"]) == 2
    assert "need num_classes >= 1 and image sides >= 32, got 10, (16, 16)" in capsys.readouterr().err


def test_a_coco_checkpoint_loads_and_its_head_is_replaced_for_other_classes(tmp_path):
    coco = TorchvisionDetectorSpec("fasterrcnn_mobilenet_v3_large_320_fpn", len(coco_class_names()))
    torch.manual_seed(0)
    state = build_torchvision_detector(coco).state_dict()  # a checkpoint as torchvision publishes it (91 labels)
    path = str(tmp_path / "coco.pth")
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, path)
    from vip_perception.models.torchvision_arch import read_weights

    same = build_torchvision_detector(coco)
    assert fit_detector_weights(same, coco, read_weights(path), path) == []  # loads unchanged
    assert torch.equal(same.state_dict()["roi_heads.box_predictor.cls_score.weight"],
                       state["roi_heads.box_predictor.cls_score.weight"])
    assert coco_class_names()[0] == "person" and len(coco_class_names()) == 90
    mine = TorchvisionDetectorSpec("fasterrcnn_mobilenet_v3_large_320_fpn", 4)
    notes = fit_detector_weights(build_torchvision_detector(mine), mine, read_weights(path), path)
    assert len(notes) == 1 and "replaced and trained for the data's 4 classes" in notes[0]
    other = TorchvisionDetectorSpec("fasterrcnn_resnet18_fpn", 4)
    with pytest.raises(WeightsError, match=r"coco\.pth: weights do not fit fasterrcnn_resnet18_fpn: missing \d+ \["):
        fit_detector_weights(build_torchvision_detector(other), other, read_weights(path), path)


def test_a_coco_checkpoint_is_served_as_it_is(tmp_path, capsys):
    coco = TorchvisionDetectorSpec("fasterrcnn_mobilenet_v3_large_320_fpn", len(coco_class_names()), (96, 128))
    torch.manual_seed(0)
    path = str(tmp_path / "coco.pth")
    torch.save(build_torchvision_detector(coco).state_dict(), path)
    out = str(tmp_path / "bank")
    args = ["bank", "build", "--task", "detection", "--arch", coco.arch, "--weights", path, "--out", out,
            "--input-size", "96x128", "--threads", "1"]
    assert cli(args) == 0
    assert "as it is (90 COCO classes, 128x96 input)" in capsys.readouterr().out  # COCO's 80 and 10 unused ids
    bank = load_bank(out)
    assert bank.class_names[:3] == ["person", "bicycle", "car"] and [m.name for m in bank.members] == ["parent"]
    assert read_manifest(out)["members"][0]["metrics"]["accuracy"].startswith("not measured")
    x = bank.preprocess(np.zeros((120, 160, 3), np.uint8))
    assert set(bank.member("parent").run(x, 1)) >= {"boxes", "labels", "scores"}
    other = TorchvisionDetectorSpec(coco.arch, 4, (96, 128))
    torch.save(build_torchvision_detector(other).state_dict(), tmp_path / "four.pth")
    assert cli([*args[:7], str(tmp_path / "four.pth"), *args[8:]]) == 2
    assert "four.pth: not a COCO-trained fasterrcnn_mobilenet_v3_large_320_fpn" in capsys.readouterr().err


def test_recipe_records_the_request(coco_dir, tmp_path):
    from vip_perception.bank.recipe import RecipeError, load_recipe

    bad = tmp_path / "r.yaml"
    bad.write_text(json.dumps({"data": coco_dir, "arch": "fasterrcnn_resnet18_fpn"}))
    with pytest.raises(RecipeError, match="input_size .height, width. is required with data"):
        load_recipe(str(bad), DetectorRecipe)
