"""ONNX models as bank members: decoders of each output layout checked numerically on tiny
models exported here, the letterbox round trip, the one-line errors for models that do not
fit, and an imported YOLO-layout bank served by the engine, switching members with the
deadline."""
from __future__ import annotations

import json
import os
import time
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from vip_perception.backends.onnx_decoders import FORMATS, Decoder, ImportedRunner, OnnxModelError
from vip_perception.bank import BankError, load_bank
from vip_perception.bank.import_onnx import ImportOnnxError, ImportOptions, import_onnx, read_labels
from vip_perception.bank.manifest import MANIFEST_SCHEMA, read_manifest
from vip_perception.bank.profile import reprofile
from vip_perception.bank.show import summarise
from vip_perception.letterbox import boxes_from_letterbox, letterbox_geometry, letterbox_image
from vip_perception.runtime.engine import Engine, EngineConfig

# onnxruntime is a required test group (required_groups.py): a run without it stops before this

SIZE = 64  # model input side
FRAME_HW = (48, 80)  # (h, w) of the data's images: letterboxed into SIZE x SIZE
CLASSES = {3: "gadget", 7: "widget"}  # COCO ids, out of order on purpose: class index 0 gadget, 1 widget
LEFT, RIGHT = (8.0, 12.0, 32.0, 36.0), (48.0, 12.0, 72.0, 36.0)  # object boxes (x0, y0, x1, y1), frame pixels


def export(module: nn.Module, path, shape=(1, 3, SIZE, SIZE), outputs=("output0",), dynamic=None) -> str:
    """``module`` as an ONNX file (TorchScript exporter, opset 17) at ``path``."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.zeros(shape),), str(path), dynamo=False, opset_version=17,
                          input_names=["images"], output_names=list(outputs), dynamic_axes=dynamic)
    return str(path)


class Constant(nn.Module):
    """Returns fixed tensors whatever the input (plus 0 x input, so the graph keeps its input)."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        super().__init__()
        self.tensors = [t.clone() for t in tensors]

    def forward(self, x):
        zero = x.mean() * 0.0
        out = [t + zero.to(t.dtype) for t in self.tensors]
        return out[0] if len(out) == 1 else tuple(out)


def yolo_tensor(candidates: list[tuple]) -> torch.Tensor:
    """[(cx, cy, w, h, score_0, score_1, ...)] -> (1, 4 + C, N) in the ultralytics layout."""
    return torch.tensor(candidates, dtype=torch.float32).T.unsqueeze(0)


# ---------------------------------------------------------------------------------------------
# decoders


def test_yolo_decoder_gives_known_boxes_after_per_class_nms(tmp_path):
    out = yolo_tensor([
        (10, 10, 8, 8, 0.9, 0.1),  # -> (6, 6, 14, 14) class 0, 0.9
        (11, 10, 8, 8, 0.8, 0.0),  # same class, IoU 0.78 with the first: suppressed
        (11, 10, 8, 8, 0.0, 0.7),  # same place, other class: kept (NMS is per class)
        (40, 40, 4, 4, 0.1, 0.2),  # below the 0.25 score threshold
        (50, 20, 10, 6, 0.3, 0.6),  # -> (45, 17, 55, 23) class 1, 0.6
    ])
    runner = ImportedRunner(export(Constant(out), tmp_path / "y.onnx"), Decoder("yolo", 2), threads=1)
    got = runner(torch.zeros(1, 3, SIZE, SIZE))
    assert got["boxes"].tolist() == [[6, 6, 14, 14], [7, 6, 15, 14], [45, 17, 55, 23]]
    assert got["labels"].tolist() == [1, 2, 2]  # class index + 1, as torchvision detectors
    assert np.allclose(got["scores"].numpy(), [0.9, 0.7, 0.6])
    assert got["letterbox"] is False


def test_torchvision_decoder_keeps_classes_and_scores_in_range(tmp_path):
    boxes = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 9, 12, 12], [0, 0, 2, 2]], dtype=torch.float32)
    labels = torch.tensor([2, 1, 3, 1])  # label 3 is no class of a 2-class bank (offset 1)
    scores = torch.tensor([0.5, 0.95, 0.9, 0.1])  # 0.1: below the threshold
    # one (C, H, W) image, no batch axis: how torchvision detectors export
    path = export(Constant(scores, boxes, labels), tmp_path / "tv.onnx", shape=(3, SIZE, SIZE),
                  outputs=("scores", "boxes", "labels"))
    runner = ImportedRunner(path, Decoder("torchvision", 2), 1)
    assert runner.input_shape == (1, 3, SIZE, SIZE) and not runner.batched
    got = runner(torch.zeros(1, 3, SIZE, SIZE))
    assert got["boxes"].tolist() == [[5, 6, 7, 8], [1, 2, 3, 4]]  # matched by name, best first
    assert got["labels"].tolist() == [1, 2] and np.allclose(got["scores"].numpy(), [0.95, 0.5])


def test_logits_decoder_passes_the_logits(tmp_path):
    logits = torch.tensor([[0.5, 2.0, -1.0]])
    got = ImportedRunner(export(Constant(logits), tmp_path / "c.onnx"), Decoder("logits", 3), 1)(
        torch.zeros(1, 3, SIZE, SIZE))
    assert torch.equal(got, logits)


def test_letterbox_round_trip_maps_boxes_back_to_frame_pixels():
    scale, (nh, nw), (top, left) = letterbox_geometry(FRAME_HW, (SIZE, SIZE))
    assert (nh, nw, top, left) == (38, 64, 13, 0) and scale == pytest.approx(0.8)
    image = np.zeros((*FRAME_HW, 3), np.uint8)
    boxed = letterbox_image(image, SIZE, SIZE, 3, pad_value=114)
    assert boxed.shape == (SIZE, SIZE, 3) and (boxed[:top] == 114).all() and (boxed[top:top + nh] == 0).all()
    into = np.array([[LEFT[0] * nw / 80 + left, LEFT[1] * nh / 48 + top, LEFT[2] * nw / 80 + left,
                      LEFT[3] * nh / 48 + top]])
    assert np.allclose(boxes_from_letterbox(into, FRAME_HW, (SIZE, SIZE)), [LEFT])
    assert boxes_from_letterbox(np.array([[0, 0, 64, 64]]), FRAME_HW, (SIZE, SIZE)).tolist() == [[0, 0, 80, 48]]


# ---------------------------------------------------------------------------------------------
# models that do not fit: one line naming the tensor and its shape


@pytest.mark.parametrize("case, message", [
    ("logits_classes", "output 'output0' has shape (1, 5); the logits layout is (1, C) with C = 3 classes"),
    ("yolo_rows", "output 'output0' has shape (1, 9, 4); the yolo layout is (1, 4 + C, N) with C = 3 classes, "
                  "i.e. (1, 7, N)"),
    ("tv_boxes", "output 'boxes' has shape (4, 5); the torchvision layout expects (K, 4)"),
    ("dynamic", "input 'images' is tensor(float) of shape (1, 3, h, w); expected float32 (1, C, H, W)"),
    ("channels", "input 'images' is tensor(float) of shape (1, 2, 64, 64)"),
])
def test_models_that_do_not_fit_are_named(tmp_path, case, message):
    fmt = {"logits_classes": "logits", "yolo_rows": "yolo"}.get(case, "torchvision")
    if case == "logits_classes":
        path = export(Constant(torch.zeros(1, 5)), tmp_path / "m.onnx")
    elif case == "yolo_rows":
        path = export(Constant(torch.zeros(1, 9, 4)), tmp_path / "m.onnx")
    elif case == "tv_boxes":
        path = export(Constant(torch.zeros(4, 5), torch.zeros(4, dtype=torch.int64), torch.zeros(4)),
                      tmp_path / "m.onnx", outputs=("boxes", "labels", "scores"))
    elif case == "dynamic":
        path = export(Constant(torch.zeros(1, 3)), tmp_path / "m.onnx", dynamic={"images": {2: "h", 3: "w"}})
        fmt = "logits"
    else:
        path = export(Constant(torch.zeros(1, 3)), tmp_path / "m.onnx", shape=(1, 2, SIZE, SIZE))
        fmt = "logits"
    with pytest.raises(OnnxModelError) as err:
        runner = ImportedRunner(path, Decoder(fmt, 3), 1)
        runner(torch.zeros(runner.input_shape))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_manifest_schema_knows_every_format():
    decoder = MANIFEST_SCHEMA["properties"]["members"]["items"]["then"]["properties"]["spec"]["properties"]["decoder"]
    assert tuple(decoder["properties"]["format"]["enum"]) == FORMATS


# ---------------------------------------------------------------------------------------------
# an imported YOLO-layout bank: data on disk, two members of different cost


class SideYolo(nn.Module):
    """A YOLO-layout (1, 4 + 2, 2) detector of one 'widget' (class 1) left or right in a
    letterboxed 64x64 input. ``looks``: score each side by its brightness (right every time);
    otherwise always say left (right on half the images). ``depth`` convolutions of ``width``
    channels only add cost (their output enters the scores at 1e-9 weight)."""

    def __init__(self, looks: bool, depth: int, width: int = 8) -> None:
        super().__init__()
        self.looks = looks
        layers = [nn.Conv2d(3, width, 3, padding=1)]
        layers += [nn.Conv2d(width, width, 3, padding=1) for _ in range(depth - 1)]
        self.body = nn.Sequential(*layers)
        _, (nh, nw), (top, left) = letterbox_geometry(FRAME_HW, (SIZE, SIZE))
        sx, sy = nw / FRAME_HW[1], nh / FRAME_HW[0]
        centre = [((b[0] + b[2]) / 2 * sx + left, (b[1] + b[3]) / 2 * sy + top, (b[2] - b[0]) * sx,
                   (b[3] - b[1]) * sy) for b in (LEFT, RIGHT)]
        self.register_buffer("geometry", torch.tensor(centre, dtype=torch.float32).T.unsqueeze(0))  # (1, 4, 2)

    def forward(self, x):  # (1, 3, 64, 64)
        cost = self.body(x).mean() * 1e-9
        if self.looks:
            p_left = torch.sigmoid((x[..., :SIZE // 2].mean() - x[..., SIZE // 2:].mean()) * 50.0)
        else:
            p_left = torch.ones(()) + x.mean() * 0.0
        widget = torch.stack([0.3 + 0.6 * p_left, 0.9 - 0.6 * p_left]) + cost  # (2,) left, right
        scores = torch.stack([torch.zeros_like(widget), widget]).unsqueeze(0)  # (1, 2 classes, 2)
        return torch.cat([self.geometry, scores], dim=1)  # (1, 6, 2)


def write_coco(root, split: str, sides: list[str], classes: dict = CLASSES) -> None:
    """``root/<split>/<i>.png`` (FRAME_HW, one bright square on ``sides[i]``) and
    ``root/annotations/instances_<split>.json`` with its widget box."""
    import cv2

    os.makedirs(os.path.join(root, split), exist_ok=True)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    images, annotations = [], []
    for i, side in enumerate(sides):
        box = LEFT if side == "left" else RIGHT
        img = np.full((*FRAME_HW, 3), 40, np.uint8)
        img[int(box[1]):int(box[3]), int(box[0]):int(box[2])] = 230
        cv2.imwrite(os.path.join(root, split, f"{i}.png"), img)
        images.append({"id": i + 1, "file_name": f"{i}.png", "height": FRAME_HW[0], "width": FRAME_HW[1]})
        annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 7, "iscrowd": 0, "area": 24.0 * 24,
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    categories = [{"id": k, "name": n} for k, n in classes.items()]
    with open(os.path.join(root, "annotations", f"instances_{split}.json"), "w") as fh:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, fh)


@pytest.fixture(scope="module")
def yolo_bank(tmp_path_factory):
    """(bank path, data root, manifest): two YOLO-layout members imported on a COCO directory."""
    base = tmp_path_factory.mktemp("import_onnx")
    data = str(base / "data")
    write_coco(data, "train", ["left", "right"])
    write_coco(data, "val", ["left", "right"] * 3)
    models = [export(SideYolo(looks=False, depth=1), base / "yolo_n.onnx"),  # about 0.9 M MACs
              export(SideYolo(looks=True, depth=6, width=64), base / "yolo_m.onnx")]  # about 0.8 G MACs
    opts = ImportOptions(threads=[1], runs=30, warmup=3, rounds=3, progress=False)
    manifest = import_onnx(models, data, str(base / "bank"), opts)
    return str(base / "bank"), data, manifest


def test_import_measures_accuracy_and_latency_and_serves_both(yolo_bank):
    path, _, manifest = yolo_bank
    m = {x["name"]: x for x in manifest["members"]}
    assert manifest["class_names"] == ["gadget", "widget"] and manifest["input"]["resize"] == "letterbox"
    assert m["yolo_m"]["metrics"]["val_map50"] == pytest.approx(1.0)  # boxes map back through the letterbox
    assert m["yolo_m"]["metrics"]["val_map"] == pytest.approx(1.0)
    assert 0.3 < m["yolo_n"]["val_accuracy"] < 0.7  # right on half the images
    assert m["yolo_n"]["test_accuracy"] == 0.0  # no test split
    lat = {n: x["backend_latency"]["onnxruntime"]["1"]["p50"] for n, x in m.items()}
    assert lat["yolo_n"] < lat["yolo_m"]
    assert manifest["selection"]["compact"] == ["yolo_n", "yolo_m"]
    assert all(x["kind"] == "imported" and x["spec"]["decoder"]["format"] == "yolo" for x in m.values())
    assert read_manifest(path)["members"] == manifest["members"]  # written, schema-valid, hashes match


def test_engine_serves_the_imported_bank_and_switches_with_the_deadline(yolo_bank):
    import cv2

    path, data, _ = yolo_bank
    bank = load_bank(path, backend="onnxruntime")
    fast, slow = bank.members
    assert (fast.name, slow.name) == ("yolo_n", "yolo_m")
    frame = cv2.cvtColor(cv2.imread(os.path.join(data, "val", "1.png")), cv2.COLOR_BGR2RGB)  # widget on the right
    between = (fast.quantile_ms(1) + slow.quantile_ms(1)) / 2
    for deadline, want in ((between + 1.0, "yolo_n"), (between * 50 + 1.0, "yolo_m")):
        engine = Engine(bank, EngineConfig(deadline_ms=deadline, margin_ms=1.0, threads=1), clock=lambda: 100.0)
        result = engine.process(frame, capture_time=100.0)
        assert result.timing.member == want
        best = result.detections[0]
        assert best.class_name == "widget"
        if want == "yolo_m":  # the accurate member finds it on the right, in frame pixels
            assert np.allclose(best.box, RIGHT, atol=1e-3)
        else:
            assert np.allclose(best.box, LEFT, atol=1e-3)


def test_reprofile_on_onnxruntime_and_torch_refused(yolo_bank, tmp_path):
    """``bank profile --backend onnxruntime`` re-profiles an imported bank; torch is refused
    with the way out; ``bank show`` reports the onnxruntime profile."""
    import shutil

    path = str(tmp_path / "bank")
    shutil.copytree(yolo_bank[0], path)
    manifest = reprofile(path, [1, 2], runs=4, warmup=1, rounds=2, progress=False, backend="onnxruntime")
    assert set(manifest["members"][0]["backend_latency"]["onnxruntime"]) == {"1", "2"}
    assert load_bank(path, backend="onnxruntime").threads == [1, 2]
    manifest = reprofile(path, [2], runs=4, warmup=1, rounds=2, progress=False, backend="onnxruntime")
    assert manifest["selection"]["threads"] == 2  # its only profile: the selection follows it
    rows = summarise(manifest, [], 2)["members"]
    assert all(r["kind"] == "imported" and r["latency_ms_p50"] > 0 for r in rows)
    with pytest.raises(BankError, match="members are imported ONNX models, served on onnxruntime only"):
        reprofile(path, [1], runs=2, warmup=1, rounds=1, progress=False, backend="torch")
    with pytest.raises(BankError, match="-p backend:=onnxruntime"):
        load_bank(path)


def test_import_errors_name_the_file_or_option(yolo_bank, tmp_path):
    _, data, _ = yolo_bank
    small = export(Constant(torch.zeros(1, 6, 3)), tmp_path / "small.onnx", shape=(1, 3, 32, 32))
    other = export(Constant(torch.zeros(1, 6, 3)), tmp_path / "other.onnx")
    opts = ImportOptions(threads=[1], runs=2, warmup=1, rounds=1, progress=False)
    with pytest.raises(ImportOnnxError, match=r"other.onnx: input 'images' is \(1, 3, 64, 64\), but .*small.onnx "
                                              r"takes \(1, 3, 32, 32\); a bank's members share one input size"):
        import_onnx([small, other], data, str(tmp_path / "b"), opts)
    wrong = export(Constant(torch.zeros(1, 5, 3)), tmp_path / "wrong.onnx")
    with pytest.raises(ImportOnnxError, match=r"wrong.onnx: output 'output0' has shape \(1, 5, 3\)"):
        import_onnx([wrong], data, str(tmp_path / "b"), opts)
    with pytest.raises(ImportOnnxError, match="--format logits gives classification outputs, not detection"):
        import_onnx([wrong], data, str(tmp_path / "b"), ImportOptions(task="detection", format="logits"))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a graph")
    with pytest.raises(ImportOnnxError, match="garbage.onnx: ONNX Runtime cannot load the model"):
        import_onnx([str(garbage)], data, str(tmp_path / "b"), opts)
    with pytest.raises(ImportOnnxError, match="missing.onnx: ONNX model not found"):
        import_onnx([str(tmp_path / "missing.onnx")], data, str(tmp_path / "b"), opts)
    labels = tmp_path / "labels.txt"
    labels.write_text("person\nwidget\n")
    with pytest.raises(ValueError, match=r"classes of .*data \['gadget', 'widget'\] do not match those of bank "
                                         r".*b \(--labels\) \['person', 'widget'\]"):
        import_onnx([other], data, str(tmp_path / "b"), ImportOptions(labels=read_labels(str(labels))))
    labels.write_text("one\n")
    with pytest.raises(ImportOnnxError, match="labels.txt: a labels file names at least two classes"):
        read_labels(str(labels))
    one = str(tmp_path / "one_class")
    for split in ("train", "val"):
        write_coco(one, split, ["left"], classes={7: "widget"})
    with pytest.raises(ImportOnnxError, match="one_class: 1 class; a bank names at least two classes"):
        import_onnx([other], one, str(tmp_path / "b"), opts)
    assert not os.path.exists(tmp_path / "b")  # nothing written by a failed import


def test_manifest_of_an_imported_member_is_checked(yolo_bank, tmp_path):
    import shutil

    path = str(tmp_path / "bank")
    shutil.copytree(yolo_bank[0], path)
    manifest = json.loads(open(os.path.join(path, "manifest.json")).read())
    assert "letterbox" not in manifest["members"][0]["spec"]["decoder"]  # input.resize says it, once
    del manifest["members"][0]["spec"]["decoder"]
    with open(os.path.join(path, "manifest.json"), "w") as fh:
        json.dump(manifest, fh)
    with pytest.raises(BankError, match=r"manifest fails its schema at members/0/spec: 'decoder' is a required"):
        load_bank(path, backend="onnxruntime")


# ---------------------------------------------------------------------------------------------
# classification: logits models on an ImageFolder, class order from --labels


class Brightness(nn.Module):
    """Logits (1, 2) from the mean pixel: [m - 0.5, 0.5 - m] x 10 (first class = bright)."""

    def __init__(self, bright_first: bool) -> None:
        super().__init__()
        self.sign = 1.0 if bright_first else -1.0

    def forward(self, x):  # (1, 3, 32, 32) in [0, 1]
        m = x.mean() - 0.5
        return (torch.stack([m, -m]) * 10.0 * self.sign).unsqueeze(0)  # (1, 2)


def write_folder(root) -> None:
    """``root/{train,val}/{bright,dark}/<i>.png``, 30x40 (h, w) images."""
    import cv2

    for split, n in (("train", 2), ("val", 4)):
        for name, value in (("bright", 220), ("dark", 30)):
            os.makedirs(os.path.join(root, split, name), exist_ok=True)
            for i in range(n):
                cv2.imwrite(os.path.join(root, split, name, f"{i}.png"), np.full((30, 40, 3), value + i, np.uint8))


def test_logits_models_on_an_image_folder_with_labels_in_model_order(tmp_path):
    data = str(tmp_path / "data")
    write_folder(data)
    models = [export(Brightness(True), tmp_path / "bright_first.onnx", shape=(1, 3, 32, 32)),
              export(Brightness(False), tmp_path / "dark_first.onnx", shape=(1, 3, 32, 32))]
    opts = ImportOptions(threads=[1], runs=4, warmup=1, rounds=2, progress=False)
    manifest = import_onnx(models, data, str(tmp_path / "bank"), opts)
    acc = {m["name"]: m["val_accuracy"] for m in manifest["members"]}
    assert manifest["task"] == "classification" and manifest["input"].get("resize", "stretch") == "stretch"
    assert acc == {"bright_first": 1.0, "dark_first": 0.0}  # the data's order: bright, dark
    labels = tmp_path / "labels.txt"
    labels.write_text("dark\nbright\n")  # the second model's output order
    opts.labels = read_labels(str(labels))
    manifest = import_onnx(models, data, str(tmp_path / "bank2"), opts)
    assert {m["name"]: m["val_accuracy"] for m in manifest["members"]} == {"bright_first": 0.0, "dark_first": 1.0}
    bank = load_bank(str(tmp_path / "bank2"), backend="onnxruntime")
    result = Engine(bank, EngineConfig(deadline_ms=1e4, threads=1)).process(np.full((30, 40, 3), 10, np.uint8),
                                                                            capture_time=time.time())
    assert result.class_name == "dark" and result.timing.member == "dark_first"


def test_command_prints_one_line_errors(tmp_path, capsys):
    from vip_perception.cli import main

    data = str(tmp_path / "data")
    write_folder(data)
    model = export(Constant(torch.zeros(1, 3)), tmp_path / "three.onnx", shape=(1, 3, 32, 32))
    rc = main(["bank", "import-onnx", "--data", data, "--out", str(tmp_path / "b"), "--no-progress", model])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "three.onnx: output 'output0' has shape (1, 3); the logits layout is (1, C) with C = 2 classes" in err
    rc = main(["bank", "import-onnx", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "b"), model])
    assert rc == 2 and "none: data directory not found" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# the real node (rclpy, DDS) serving the imported bank


def test_node_serves_the_imported_bank_and_switches_with_the_deadline(yolo_bank, ctx):
    import cv2

    from test_ros_node import Rig
    from vip_perception.ros import convert

    path, data, _ = yolo_bank
    fast, slow = load_bank(path, backend="onnxruntime").members
    # no start-up calibration: the selector predicts from the profile itself (factor 1), so
    # half the slow member's profiled p95 leaves it out whatever this machine's load is now
    tight = slow.quantile_ms(1) / 2
    rig = Rig(ctx, path, topics=("cam",), name="vip_onnx", backend="onnxruntime", deadline_ms=tight,
              margin_ms=0.1, calibrate_on_start=False)
    try:
        rgb = cv2.cvtColor(cv2.imread(os.path.join(data, "val", "1.png")), cv2.COLOR_BGR2RGB)  # widget right

        def send(frame_id: str) -> dict:
            # A frame older than the deadline when the worker reaches it is dropped as stale (a
            # stall on a busy or slow machine): send another; every frame served is checked.
            for attempt in range(20):
                msg = convert.array_to_image(np.ascontiguousarray(rgb), "rgb8")
                msg.header.frame_id = f"{frame_id}{attempt}"
                msg.header.stamp = rig.probe.get_clock().now().to_msg()
                rig.send_and_wait(msg, topic="cam")
                got = [d for d in rig.detections if d["header"]["frame_id"] == msg.header.frame_id]
                if got:
                    return got[-1]
            raise AssertionError(f"no {frame_id} frame served in 20 (each dropped as stale)")

        tight_result = send("tight")  # the fast member: fits, or runs as the fastest anyway
        assert tight_result["member"] == fast.name and np.allclose(tight_result["boxes"][0], LEFT, atol=0.01)
        assert all(r.successful for r in rig.set(deadline_ms=5000.0))
        loose = send("loose")
        assert loose["member"] == slow.name and loose["class_names"][0] == "widget"
        assert np.allclose(loose["boxes"][0], RIGHT, atol=0.01)  # frame pixels, through the letterbox
    finally:
        rig.close()
