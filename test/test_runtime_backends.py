"""Banks served on another backend (ONNX Runtime) and detection banks served by the engine."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from vip_perception.bank import BankError, load_bank
from vip_perception.cli import main as cli
from vip_perception.runtime import Engine, EngineConfig

torch.set_num_threads(1)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DETECTOR_BANK = os.path.join(ROOT, "config", "banks", "conveyor_detector")


@pytest.fixture(scope="module")
def ort_bank(quick_bank, tmp_path_factory) -> str:
    """A copy of the quick bank with an onnxruntime profile (few runs: values do not matter)."""
    pytest.importorskip("onnxruntime")
    path = str(tmp_path_factory.mktemp("ort") / "bank")
    shutil.copytree(quick_bank, path)
    assert cli(["bank", "profile", path, "--backend", "onnxruntime", "--threads", "1,2", "--runs", "4",
                "--warmup", "1", "--rounds", "2", "--gap-ms", "0.5", "--no-progress"]) == 0
    return path


def _images(n: int = 40) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def test_backend_profile_is_written_beside_the_torch_one(quick_bank, ort_bank):
    with open(os.path.join(quick_bank, "manifest.json")) as fh:
        before = json.load(fh)
    with open(os.path.join(ort_bank, "manifest.json")) as fh:
        after = json.load(fh)
    for old, new in zip(before["members"], after["members"]):
        assert new["latency"] == old["latency"]  # the torch profile and member order are untouched
        prof = new["backend_latency"]["onnxruntime"]
        assert set(prof) == {"1", "2"} and all(p["runs"] == 4 and p["gap_ms"] == 0.5 for p in prof.values())
    assert after["machine"]["backend_profiles"]["onnxruntime"]["gap_ms"] == 0.5


def test_onnxruntime_bank_predicts_like_torch_at_every_thread_count(quick_bank, ort_bank):
    """Every member with weights (frontier=True): the served set is re-selected on the ONNX
    Runtime profile, whose 4 runs may leave a ViP variant short of its 1.3x there, so the two
    backends' served sets may differ; every member must still predict alike."""
    ref, ort = load_bank(quick_bank, frontier=True), load_bank(ort_bank, backend="onnxruntime", frontier=True)
    by_name = {m.name: m for m in ort.members}  # re-profiling may reorder the manifest's members
    assert ort.backend == "onnxruntime" and sorted(by_name) == sorted(m.name for m in ref.members)
    xs = [ref.preprocess(im) for im in _images()]  # each (1, 1, 28, 28)
    for m_ref, m_ort in ((m, by_name[m.name]) for m in ref.members):
        assert set(m_ort.runners) == {1, 2}
        assert m_ort.latency[1].runs == 4  # the backend's own profile drives its predictions
        for t in (1, 2):
            want = torch.cat([m_ref.run(x, t) for x in xs])  # (N, classes)
            got = torch.cat([m_ort.run(x, t) for x in xs])
            assert torch.equal(got.argmax(1), want.argmax(1)), m_ref.name
            assert torch.allclose(got, want, rtol=1e-4, atol=1e-4), m_ref.name


def test_engine_serves_an_onnxruntime_bank(ort_bank):
    bank = load_bank(ort_bank, backend="onnxruntime")
    engine = Engine(bank, EngineConfig(deadline_ms=1e6, margin_ms=0.0))
    res = engine.process(_images(1)[0], capture_time=engine._clock())
    assert not res.skipped and res.class_id is not None and res.detections is None
    assert res.timing.member == bank.members[-1].name  # everything fits: the most accurate


def test_backend_errors_name_the_reason(quick_bank):
    with pytest.raises(BankError, match="no onnxruntime latency profile.*bank profile"):
        load_bank(quick_bank, backend="onnxruntime")
    with pytest.raises(BankError, match="unknown backend 'tensorrt'"):
        load_bank(quick_bank, backend="tensorrt")
    if os.path.isfile(os.path.join(DETECTOR_BANK, "manifest.json")):
        with pytest.raises(BankError, match="backend onnxruntime does not serve detection banks"):
            load_bank(DETECTOR_BANK, backend="onnxruntime")
    assert cli(["bank", "profile", quick_bank, "--gap-ms", "-1", "--no-progress"]) == 1


@pytest.mark.skipif(not os.path.isfile(os.path.join(DETECTOR_BANK, "manifest.json")), reason="no shipped detector bank")
def test_engine_detects_garments_on_the_belt_in_frame_pixels():
    from torchvision.ops import box_iou

    from vip_perception.data.conveyor import BeltStream

    bank = load_bank(DETECTOR_BANK)
    assert bank.task == "detection"
    from vip_perception.fused import fused_stages

    vip = [m for m in bank.members if m.vip_layers]
    assert vip and all(fused_stages(m.module) for m in vip)  # ViP backbones are served fused
    stream = BeltStream("test")
    frame = next(f for f in (stream.frame(i) for i in range(0, 400, 7)) if len(f.boxes) >= 2)
    gt = torch.as_tensor(np.asarray(frame.boxes, dtype=np.float32))  # (K, 4) xyxy
    engine = Engine(bank, EngineConfig(deadline_ms=1e6, margin_ms=0.0, threads=1))
    res = engine.process(frame.image, capture_time=engine._clock())
    assert res.class_id is None and res.timing.member == bank.members[-1].name
    dets = [d for d in res.detections if d.score >= 0.5]
    assert dets and all(d.class_name == bank.class_names[d.class_id] for d in dets)
    assert [d.score for d in res.detections] == sorted((d.score for d in res.detections), reverse=True)
    iou = box_iou(torch.tensor([d.box for d in dets]), gt)  # (D, K)
    found = iou.max(0).values > 0.5  # (K,) garments matched by a confident detection
    assert int(found.sum()) >= max(1, len(gt) // 2), iou
    # with a roi the engine crops and reports boxes in full-frame pixels
    pad = np.zeros((frame.image.shape[0] + 40, frame.image.shape[1] + 30, *frame.image.shape[2:]), np.uint8)
    pad[40:, 30:] = frame.image
    h, w = frame.image.shape[:2]
    res2 = engine.process(pad, capture_time=engine._clock(), roi=(30, 40, w, h))
    b1 = torch.tensor([d.box for d in res.detections[:3]])
    b2 = torch.tensor([d.box for d in res2.detections[:3]]) - torch.tensor([30.0, 40.0, 30.0, 40.0])
    assert torch.allclose(b1, b2, atol=1e-3)


def test_compare_backends_reports_identical_predictions_and_both_latencies(quick_bank, tmp_path):
    out = tmp_path / "cmp.json"
    assert cli(["bank", "compare-backends", quick_bank, "--images", "60", "--runs", "3", "--rounds", "1",
                "--gap-ms", "0,0.5", "--json", str(out), "--no-progress"]) == 0
    rec = json.loads(out.read_text())
    assert rec["all_predictions_identical"] and rec["threads"] == [1, 2]
    assert all(p["images"] == 60 and p["max_abs_logit_diff"] < 1e-3 for p in rec["predictions"].values())
    for gap in ("gap_0ms", "gap_0.5ms"):
        rows = rec["latency"][gap]
        assert set(rows) == set(rec["predictions"])
        assert all(r["torch_p50_ms"] > 0 and r["onnxruntime_p50_ms"] > 0
                   for per_t in rows.values() for r in per_t.values())
    assert cli(["bank", "compare-backends", quick_bank, "--gap-ms", "-1"]) == 2


def test_export_onnx_writes_verified_members(quick_bank, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    out = tmp_path / "onnx"
    bank = load_bank(quick_bank)
    name = bank.members[-1].name
    assert cli(["bank", "export-onnx", quick_bank, "--out", str(out), "--member", name]) == 0
    rec = json.loads((out / "export.json").read_text())
    assert list(rec["members"]) == [name] and rec["members"][name]["max_rel_error"] <= 1e-4
    sess = ort.InferenceSession(str(out / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    x = bank.preprocess(_images(1)[0])  # (1, 1, 28, 28)
    got = torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])
    assert torch.allclose(got, bank.members[-1].run(x, 1), rtol=1e-4, atol=1e-4)
    assert cli(["bank", "export-onnx", quick_bank, "--out", str(out), "--member", "nope"]) == 1


def test_engine_swaps_to_a_bank_on_its_own_backend(quick_bank, ort_bank):
    engine = Engine(load_bank(ort_bank, backend="onnxruntime"), EngineConfig(deadline_ms=1e6, margin_ms=0.0))
    engine.swap_bank(ort_bank)
    assert engine.bank.backend == "onnxruntime"
    with pytest.raises(BankError, match="no onnxruntime latency profile"):
        engine.swap_bank(quick_bank)  # the old bank keeps serving
    assert engine.bank.backend == "onnxruntime" and engine.bank.path == ort_bank
