"""Faster R-CNN with a VGG-style backbone: spec round trip, ViP by name, anchors, resumable
training, COCO mAP and box mapping back to frame pixels."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vip_perception.bank.detection_data import SceneSource
from vip_perception.bank.recipe import DetectorTrainRecipe as TrainConfig
from vip_perception.bank.train_detector import scene_order, train_detector
from vip_perception.data.conveyor import ConveyorConfig, ConveyorScenes, coco_dict
from vip_perception.models.detector import DetectorSpec, backbone_layer_names, build_detector, fit_anchors
from vip_perception.tasks.detection import coco_map, to_detections
from vip_perception.vip import apply_vip, vip_layers_of

TINY = dict(stages=[[4], [8], [8]], image_size=(64, 96), representation=16, rpn_post_nms_test=10,
            anchor_sizes=(12.0, 20.0), aspect_ratios=(1.0,))


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_spec_round_trip_and_errors():
    spec = DetectorSpec(**TINY)
    d = json.loads(json.dumps(spec.to_dict()))
    assert d["family"] == "faster_rcnn_vgg" and DetectorSpec.from_dict(d) == spec
    assert spec.stride == 4
    with pytest.raises(ValueError, match="unknown keys"):
        DetectorSpec.from_dict({**d, "depth": 3})
    with pytest.raises(ValueError, match="stages"):
        DetectorSpec(stages=[[4], []])
    with pytest.raises(ValueError, match="in_channels"):
        DetectorSpec(in_channels=3)


def test_vip_by_backbone_name_keeps_outputs_and_reloads_weights():
    torch.manual_seed(0)
    det = build_detector(DetectorSpec(**TINY)).eval()
    names = backbone_layer_names(det)
    assert names == ["backbone.features.0", "backbone.features.4", "backbone.features.8"]
    vip = apply_vip(det, names[1:])
    assert vip_layers_of(vip) == names[1:] and vip_layers_of(det) == []  # original untouched
    x = torch.rand(1, 64, 96)
    with torch.inference_mode():
        f0, f1 = det.backbone(x[None])["0"], vip.backbone(x[None])["0"]
        assert f0.shape == f1.shape == (1, 8, 16, 24)
        out = vip([x])[0]
    assert set(out) == {"boxes", "labels", "scores"} and out["boxes"].shape[1] == 4
    fresh = apply_vip(build_detector(DetectorSpec(**TINY)), names[1:])  # rebuild, then load
    fresh.load_state_dict(vip.state_dict(), strict=True)
    with torch.inference_mode():
        assert torch.equal(fresh.eval().backbone(x[None])["0"], f1)


def test_fit_anchors_uses_quantiles():
    sizes, ratios = fit_anchors(np.arange(10, 51, dtype=float), np.linspace(0.5, 2.0, 41))
    assert sizes == (14.0, 30.0, 46.0) and ratios[1] == 1.25 and len(ratios) == 3


def test_scene_order_is_a_seeded_epoch_permutation():
    cfg = TrainConfig(batch=3, seed=1)
    seen = scene_order(cfg, 0, 6) + scene_order(cfg, 1, 6)
    assert sorted(seen) == list(range(6)) and (
        scene_order(cfg, 0, 6) == scene_order(TrainConfig(batch=3, seed=1), 0, 6)) and (
        scene_order(cfg, 2, 6) != scene_order(cfg, 0, 6))  # the next pass is another permutation


def test_training_resumes_from_its_checkpoint(tmp_path):
    imgs = np.zeros((10, 28, 28), np.uint8)
    imgs[:, 4:24, 6:22] = 220
    scenes = ConveyorScenes("train", ConveyorConfig(width=96, height=64, min_items=1, max_items=2, min_scale=0.8,
                                                    max_scale=1.0), imgs, np.arange(10))
    torch.manual_seed(0)
    model = build_detector(DetectorSpec(**TINY))
    cfg = TrainConfig(steps=2, batch=2, scenes=4, warmup=1, ckpt_every=1, log_every=1)
    source = SceneSource(scenes, 4, 1)
    train_detector(model, source, cfg, str(tmp_path), progress=False, log=lambda *_: None)
    messages = []
    info = train_detector(model.train(), source, TrainConfig(**{**cfg.__dict__, "steps": 3}), str(tmp_path),
                          progress=False, log=messages.append)
    assert messages == [f"resumed {tmp_path} at step 2"]
    steps = [json.loads(line)["step"] for line in open(tmp_path / "train.jsonl")]
    assert steps == [1, 2, 3] and info["recipe"]["steps"] == 3 and not model.training


def test_coco_map_perfect_and_empty():
    imgs = np.zeros((10, 28, 28), np.uint8)
    imgs[:, 4:24, 6:22] = 220
    scenes = ConveyorScenes("test", ConveyorConfig(width=96, height=64, min_items=1, max_items=2, min_scale=0.8,
                                                   max_scale=1.0), imgs, np.arange(10))
    gt = coco_dict(scenes, 4)
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
               for a in gt["annotations"]]
    assert coco_map(gt, perfect) == {"map": 1.0, "map50": 1.0}
    wrong = [{**r, "category_id": r["category_id"] % 10 + 1} for r in perfect]
    assert coco_map(gt, wrong)["map50"] == 0.0
    assert coco_map(gt, []) == {"map": 0.0, "map50": 0.0}


def test_detections_map_back_to_frame_pixels():
    out = {"boxes": torch.tensor([[10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 8.0, 8.0]]),
           "labels": torch.tensor([3, 1]), "scores": torch.tensor([0.5, 0.9])}
    dets = to_detections(out, ["a", "b", "c"], input_hw=(240, 320), image_hw=(480, 640), offset_xy=(5, 7),
                         min_score=0.1)
    assert [d.class_name for d in dets] == ["a", "c"]  # label 1 -> class 0; sorted by score
    assert dets[1].box == (25.0, 47.0, 65.0, 87.0) and dets[1].class_id == 2
    assert dets[0].to_dict()["score"] == 0.9


def test_fast_max_pool_equals_max_pool2d():
    from vip_perception.models.detector import MaxPool2x2

    for shape in [(1, 3, 8, 10), (2, 4, 7, 9), (1, 1, 2, 3)]:
        x = torch.randn(shape)
        assert torch.equal(MaxPool2x2()(x), torch.nn.functional.max_pool2d(x, 2, 2))
