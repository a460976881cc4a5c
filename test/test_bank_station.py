"""The station-camera recipe: half-resolution training steps, the flatten-head guard, and a
quick station bank that loads and reproduces its validation accuracy from the manifest."""
import json
import os
import subprocess
import sys

import pytest
import torch

from vip_perception.bank.train_classifier import StationImages, TensorImages, TrainConfig, evaluate, train
from vip_perception.data.station_render import StationAugment
from vip_perception.models import ModelSpec, build_model


def _gap_model(size: int):
    return build_model(ModelSpec(stages=[[4], [8]], head="gap", input_size=(size, size), num_classes=3))


def test_low_res_steps_run_at_half_size_then_full():
    """The first half of the steps sees 16x16 batches, the rest 32x32; the model trains (loss
    falls on a separable toy task) and ends in contiguous layout, in eval mode."""
    torch.manual_seed(0)
    labels = torch.arange(96) % 3
    images = torch.randn(96, 1, 32, 32) * 0.1 + labels.view(-1, 1, 1, 1).float()  # class = brightness
    seen = []

    class Spy(TensorImages):
        def batch(self, idx, gen, augment, half):
            x = super().batch(idx, gen, augment, half)
            seen.append(tuple(x.shape[-2:]))
            return x

    model = _gap_model(32)
    cfg = TrainConfig(samples=32 * 20, batch_size=32, optimizer="adamw", lr=0.01, low_res_fraction=0.5)
    train(model, Spy(images, labels), cfg, progress=False)
    assert seen == [(16, 16)] * 10 + [(32, 32)] * 10
    assert not model.training
    assert all(p.is_contiguous() for p in model.parameters())
    assert evaluate(model, images, labels) > 0.9


def test_low_res_fraction_is_validated():
    with pytest.raises(ValueError, match="low_res_fraction must be in"):
        TrainConfig(samples=10, low_res_fraction=1.0)


def test_station_images_render_train_batches_at_the_requested_size():
    items = torch.randint(0, 255, (10, 28, 28), dtype=torch.uint8)
    data = StationImages(items, torch.arange(10), 40, [0.3], [0.35], False, StationAugment())
    g = torch.Generator().manual_seed(0)
    full, half = data.batch(torch.arange(4), g, True, False), data.batch(torch.arange(4), g, True, True)
    assert full.shape == (4, 1, 40, 40) and half.shape == (4, 1, 20, 20)
    nominal = data.batch(torch.arange(4), g, False, False)
    assert torch.equal(nominal, data.batch(torch.arange(4), g, False, False))  # no augmentation: no randomness


@pytest.fixture(scope="module")
def station_bank(tmp_path_factory):
    base = tmp_path_factory.mktemp("station")
    out, work = str(base / "bank"), str(base / "work")
    proc = subprocess.run([sys.executable, "-m", "vip_perception.cli", "bank", "build", "--config",
                           "config/bank_station.yaml", "--quick", "--no-progress", "--out", out, "--work", work],
                          capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_quick_station_bank_loads_and_reproduces_its_validation_accuracy(station_bank):
    from vip_perception.bank import load_bank
    from vip_perception.bank.build_classifier import load_splits
    from vip_perception.bank.recipe import ClassifierRecipe, load_recipe

    with open(os.path.join(station_bank, "manifest.json")) as fh:
        manifest = json.load(fh)
    assert manifest["input"]["height"] == manifest["input"]["width"] == 32  # the quick section's size
    assert manifest["build"]["recipe"]["data"]["kind"] == "station"
    candidates = json.load(open(os.path.join(station_bank, "candidates.json")))["candidates"]
    parent = [m for m in manifest["members"] + candidates
              if m["name"] == "tiny"][0]
    assert parent["train"]["low_res_fraction"] == 0.5
    bank = load_bank(station_bank)
    splits = load_splits(load_recipe("config/bank_station.yaml", ClassifierRecipe, quick=True))
    for m in bank.members:
        assert evaluate(m.module, splits.x_val, splits.y_val) == pytest.approx(m.val_accuracy, abs=1e-9)


def test_low_res_training_needs_a_gap_head(tmp_path):
    from vip_perception.bank.build_classifier import ClassifierBankBuilder
    from vip_perception.bank.recipe import ClassifierRecipe, load_recipe

    cfg = load_recipe("config/bank_station.yaml", ClassifierRecipe, quick=True)
    cfg.parents[0].spec = {**cfg.parents[0].spec, "head": "flatten"}
    builder = ClassifierBankBuilder(cfg, str(tmp_path / "work"), str(tmp_path / "out"), progress=False)
    with pytest.raises(ValueError, match="tiny: train.low_res_fraction needs a resolution-free head"):
        builder.phase_parents()


def test_refine_stages_run_in_order_resume_per_stage_and_renew_the_variants(tmp_path):
    """A parent's ``refine`` may list stages; a recipe that lists one more than a record holds
    trains only that one, and the parent's ViP variants (fine-tuned from the older weights) and
    its layer sensitivity are derived again."""
    from vip_perception.bank.build_classifier import ClassifierBankBuilder
    from vip_perception.bank.recipe import ClassifierRecipe, TrainRecipe, load_recipe
    from vip_perception.bank.show import _train_seconds

    cfg = load_recipe("config/bank_station.yaml", ClassifierRecipe, quick=True)
    stage = TrainRecipe(epochs=0.2, batch_size=32, optimizer="sgd", lr=0.01, schedule="cosine", augment=True)
    cfg.parents[0].refine = stage
    work = str(tmp_path / "work")
    b = ClassifierBankBuilder(cfg, work, str(tmp_path / "out"), progress=False)
    b.phase_parents()
    b.phase_vip()
    first = b.record("tiny")
    assert isinstance(first.train["refine"], dict) and first.train["refine"]["lr"] == 0.01
    variants = sorted(r.name for r in b.all_records() if r.parent == "tiny")
    assert variants == ["tiny.vip00", "tiny.vip01"]
    b.phase_parents()  # nothing pending: nothing trains, nothing is dropped
    assert b.record("tiny").to_dict() == first.to_dict()

    cfg.parents[0].refine = [stage, TrainRecipe(epochs=0.2, batch_size=32, optimizer="sgd", lr=0.005,
                                                schedule="cosine", augment=True)]
    b = ClassifierBankBuilder(cfg, work, str(tmp_path / "out"), progress=False)
    assert b._needs_refine(cfg.parents[0])
    b.phase_parents()
    rec = b.record("tiny")
    assert [st["lr"] for st in rec.train["refine"]] == [0.01, 0.005]
    assert rec.train["refine"][0] == first.train["refine"]  # the first stage is not trained again
    assert rec.train["refine"][1]["val_accuracy_before"] == first.val_accuracy
    assert _train_seconds(rec.train) == pytest.approx(
        rec.train["seconds"] + sum(st["seconds"] for st in rec.train["refine"]))
    assert not any(r.parent == "tiny" for r in b.all_records())  # stale variants gone ...
    assert not os.path.exists(os.path.join(work, "candidates", "tiny", "sensitivity.json"))
    assert not b._needs_refine(cfg.parents[0])
    b.phase_vip()  # ... and derived again from the new weights
    assert sorted(r.name for r in b.all_records() if r.parent == "tiny") == variants
    assert os.path.exists(os.path.join(work, "candidates", "tiny", "sensitivity.json"))
