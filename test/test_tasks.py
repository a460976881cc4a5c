"""Tasks as objects: the registry, each task's post-processing to frame pixels (with a roi
origin), member building, accuracy, and the engine serving a detection bank through its task."""
import numpy as np
import pytest
import torch

from test_runtime_fakes import FakeBank, FakeClock, FakeMember
from vip_perception.results import Detection
from vip_perception.runtime import Engine, EngineConfig
from vip_perception.tasks import _REGISTRY, TASK_NAMES, Task, get_task, register


def test_registry_names_the_tasks_and_rejects_unknown_ones():
    assert TASK_NAMES == ("classification", "detection")
    with pytest.raises(ValueError, match="unknown task 'segmentation'; known tasks: classification, detection"):
        get_task("segmentation")
    with pytest.raises(ValueError, match="already registered"):
        register(get_task("classification"))


def test_a_new_task_is_one_registered_class():
    class Counting(Task):
        name, output_kind, backends = "counting", "classification", ("torch",)

        def postprocess(self, output, class_names, input_hw, roi):
            return {"class_id": int(output), "class_name": str(int(output)), "score": 1.0}

    try:
        task = register(Counting())
        assert get_task("counting") is task and not task.exports_onnx
        assert task.postprocess(3, [], (1, 1), (0, 0, 1, 1))["class_id"] == 3
    finally:
        _REGISTRY.pop("counting", None)
    with pytest.raises(ValueError, match="output_kind"):
        register(type("Bad", (Task,), {"name": "bad", "output_kind": "mask"})())


def test_task_attributes():
    c, d = get_task("classification"), get_task("detection")
    assert (c.output_kind, c.backends, c.exports_onnx) == ("classification", ("torch", "onnxruntime"), True)
    assert (d.output_kind, d.backends, d.exports_onnx) == ("detection", ("torch",), False)


def test_classification_postprocess_is_top_class_with_softmax_score():
    logits = torch.tensor([[0.0, 2.0, 1.0]])  # (1, classes)
    out = get_task("classification").postprocess(logits, ["a", "b", "c"], (28, 28), (5, 5, 10, 10))
    expected = float(torch.softmax(logits, 1)[0, 1])
    assert out["class_id"] == 1 and out["class_name"] == "b" and out["score"] == pytest.approx(expected, rel=1e-6)
    out = get_task("classification").postprocess(torch.tensor([[0.0, 0.0, 9.0]]), ["a", "b"], (28, 28), (0, 0, 1, 1))
    assert (out["class_id"], out["class_name"]) == (2, "2")  # past class_names: named by its number


def test_classification_ranks_the_top_k_best_first_with_softmax_probabilities():
    from vip_perception.tasks.classification import top_classes

    logits = torch.tensor([[0.5, 3.0, -1.0, 2.0, 3.0, 0.0]])
    probs = torch.softmax(logits, 1)[0].tolist()
    task = get_task("classification")
    out = task.postprocess(logits, list("abcdef"), (28, 28), (0, 0, 1, 1), top_k=3)
    assert [(i, n) for i, n, _ in out["top"]] == [(1, "b"), (4, "e"), (3, "d")]  # ties: lower index first
    assert [p for _, _, p in out["top"]] == pytest.approx([probs[1], probs[4], probs[3]], rel=1e-5)
    assert out["top"][0] == (out["class_id"], out["class_name"], out["score"])
    every = task.postprocess(logits, list("abcdef"), (28, 28), (0, 0, 1, 1), top_k=1000)  # k past the classes
    assert [i for i, _, _ in every["top"]] == [1, 4, 3, 0, 5, 2]
    assert sum(p for _, _, p in every["top"]) == pytest.approx(1.0, rel=1e-5)
    assert len(task.postprocess(logits, [], (28, 28), (0, 0, 1, 1))["top"]) == 5  # the default k
    rng = np.random.default_rng(0)
    big = rng.normal(size=(1, 1000)).astype(np.float32)
    ranked = top_classes(big, 7)
    assert [i for i, _ in ranked] == np.argsort(-big[0], kind="stable")[:7].tolist()
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        top_classes(big, 0)


def test_engine_passes_its_top_k_to_the_task_and_validates_it():
    clock = FakeClock()
    bank = FakeBank([FakeMember("m", 0.5, {1: 1.0}, clock)], clock=clock)
    eng = Engine(bank, EngineConfig(deadline_ms=100.0, margin_ms=0.0, threads=1, top_k=2), clock=clock)
    r = eng.process(np.zeros((8, 8), np.uint8), clock())
    assert len(r.top) == 2 and r.top[0][:2] == (r.class_id, r.class_name)
    eng.update_config(EngineConfig(deadline_ms=100.0, margin_ms=0.0, threads=1, top_k=1))
    assert len(eng.process(np.zeros((8, 8), np.uint8), clock()).top) == 1
    with pytest.raises(ValueError, match="top_k must be an integer >= 1"):
        EngineConfig(deadline_ms=10.0, top_k=0)


def _detector_output():
    return {"boxes": torch.tensor([[0.0, 0.0, 200.0, 100.0], [20.0, 10.0, 40.0, 50.0], [1.0, 1.0, 2.0, 2.0],
                                   [1.0, 1.0, 2.0, 2.0]]),
            "labels": torch.tensor([1, 2, 0, 9]),  # 0 = background, 9 = past class_names: dropped
            "scores": torch.tensor([0.5, 0.9, 0.99, 0.99])}


def test_detection_postprocess_maps_boxes_to_frame_pixels_through_the_roi():
    # the detector saw 100x200 (h, w); the roi (x 10, y 20, w 50, h 40) was resized to it
    out = get_task("detection").postprocess(_detector_output(), ["shirt", "bag"], (100, 200), (10, 20, 50, 40))
    dets = out["detections"]
    assert all(isinstance(d, Detection) for d in dets) and [d.class_name for d in dets] == ["bag", "shirt"]
    assert dets[0].box == pytest.approx((15.0, 24.0, 20.0, 40.0))  # x * 0.25 + 10, y * 0.4 + 20
    assert dets[1].box == pytest.approx((10.0, 20.0, 60.0, 60.0))  # the whole input -> the whole roi
    assert (dets[0].class_id, dets[0].score) == (1, pytest.approx(0.9))


class _DetectorModule:
    def __call__(self, x):  # (1, C, H, W) -> one detector output, as DetectionTask.batch1_call gives
        return _detector_output()


def test_engine_serves_a_detection_bank_in_frame_pixels():
    clock = FakeClock()
    member = FakeMember("det", 0.5, {1: 1.0}, clock)
    member.module = _DetectorModule()
    bank = FakeBank([member], clock=clock)
    bank.task, bank.class_names = "detection", ["shirt", "bag"]
    bank.input_spec.height, bank.input_spec.width = 100, 200
    eng = Engine(bank, EngineConfig(deadline_ms=100.0, margin_ms=0.0, threads=1), clock=clock)
    frame = np.zeros((240, 320), np.uint8)
    full = eng.process(frame, clock(), roi=(10, 20, 50, 40))
    cropped = eng.process(frame[20:60, 10:60], clock(), origin=(10, 20))
    for r in (full, cropped):
        assert r.roi == (10, 20, 50, 40) and r.class_id is None and r.score is None
        assert [d.box for d in r.detections] == [pytest.approx((15.0, 24.0, 20.0, 40.0)),
                                                 pytest.approx((10.0, 20.0, 60.0, 60.0))]
    whole = eng.process(frame, clock())
    assert whole.roi == (0, 0, 320, 240) and whole.detections[1].box == pytest.approx((0.0, 0.0, 320.0, 240.0))


def test_build_member_from_manifest_specs():
    from vip_perception.models import ModelSpec
    from vip_perception.models.detector import DetectorSpec
    from vip_perception.vip import vip_layers_of

    c = get_task("classification").build_member(ModelSpec(stages=[[4], [8]]).to_dict(), ["features.s1.conv1"])
    assert not c.training and c(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    d = get_task("detection")
    spec = DetectorSpec(stages=[[4], [8]], image_size=(32, 48), anchor_sizes=(8.0,), aspect_ratios=(1.0,))
    det = d.build_member(spec.to_dict(), ["backbone.features.0"])
    assert vip_layers_of(det) and not det.training
    out = d.batch1_call(det)(torch.zeros(1, 1, 32, 48))
    assert set(out) == {"boxes", "labels", "scores"}
    with pytest.raises(ValueError, match="unknown keys"):
        d.build_member({"family": "faster_rcnn_vgg", "bogus": 1}, [])


def test_classification_accuracy_is_top1():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(2))
    images = torch.tensor([[[[1.0, 0.0]]], [[[0.0, 1.0]]], [[[0.0, 1.0]]], [[[1.0, 0.0]]]])  # (4, 1, 1, 2)
    labels = torch.tensor([0, 1, 0, 0])
    assert get_task("classification").evaluate_accuracy(model, images, labels, batch_size=3) == 0.75
