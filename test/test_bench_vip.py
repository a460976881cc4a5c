"""`vip-perception bench vip` on a tiny configuration: JSON fields and errors, never speed."""
from __future__ import annotations

import json

import pytest
import torch

from vip_perception import cli

FIELDS = ("baseline_ms", "vip_ms", "speedup", "mac_ratio", "efficiency", "threads", "layers",
          "torch_version", "cpu", "per_format", "repeats", "warmup", "baseline_format", "vip_format",
          "speedup_of_minima", "loadavg_before", "loadavg_after")


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_tiny_run_writes_json(tmp_path, capsys):
    out = tmp_path / "sub" / "bench.json"
    rc = cli.main(["bench", "vip", "--arch", "resnet18", "--input", "32", "--layers", "all",
                   "--threads", "1", "--repeats", "2", "--warmup", "1", "--json", str(out)])
    assert rc == 0
    rec = json.loads(out.read_text())
    for key in FIELDS:
        assert key in rec, key
    assert rec["threads"] == 1 and rec["repeats"] == 2 and len(rec["layers"]) == 13
    assert set(rec["per_format"]) == {"nchw", "channels_last"}
    for r in rec["per_format"].values():
        assert len(r["baseline_samples_ms"]) == 2 and len(r["vip_samples_ms"]) == 2
    assert rec["baseline_ms"] == min(r["baseline_ms"] for r in rec["per_format"].values())
    assert rec["vip_ms"] == min(r["vip_ms"] for r in rec["per_format"].values())
    assert rec["speedup"] == pytest.approx(rec["baseline_ms"] / rec["vip_ms"])
    assert rec["efficiency"] == pytest.approx(rec["speedup"] / rec["mac_ratio"])
    assert rec["mac_ratio"] > 1
    text = capsys.readouterr().out
    assert "best vs best" in text and "mac" in text.lower()


def test_vgg_aliases_in_record(tmp_path):
    out = tmp_path / "b.json"
    rc = cli.main(["bench", "vip", "--arch", "vgg11", "--input", "32", "--layers", "conv1_1,features.3",
                   "--threads", "1", "--repeats", "1", "--warmup", "0", "--json", str(out)])
    assert rc == 0
    rec = json.loads(out.read_text())
    assert rec["layers"] == ["features.0", "features.3"] and rec["layer_aliases"] == ["conv1_1", "conv2_1"]


def test_bad_layer_says_what_is_valid(capsys):
    rc = cli.main(["bench", "vip", "--arch", "resnet18", "--input", "32", "--layers", "paper", "--repeats", "1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "VGG16 only" in err and "layer1.0.conv1" in err


def test_bad_arch_lists_choices(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "vip", "--arch", "alexnet"])
    assert exc.value.code == 2
    assert "vgg16" in capsys.readouterr().err


def test_bad_numbers(capsys):
    assert cli.main(["bench", "vip", "--arch", "resnet18", "--input", "8"]) == 2
    assert "--input" in capsys.readouterr().err


def test_backend_and_impl_time_every_combination_side_by_side(tmp_path, capsys):
    out = tmp_path / "matrix.json"
    rc = cli.main(["bench", "vip", "--arch", "vgg11", "--input", "32", "--layers", "conv2_1", "--layers", "all",
                   "--threads", "1", "--repeats", "1", "--warmup", "0", "--backend", "torch,onnxruntime",
                   "--impl", "reference,fused", "--no-compile", "--json", str(out)])
    assert rc == 0
    rec = json.loads(out.read_text())
    keys = {v["key"] for v in rec["variants"]}
    for impl in ("reference", "fused"):
        for spec in ("conv2_1", "all"):
            assert {f"{impl}[{spec}]/torch/eager_nchw", f"{impl}[{spec}]/onnxruntime/ort"} <= keys
    assert {"original/torch/eager_nchw", "original/onnxruntime/ort"} <= keys
    assert all(v["max_rel_error"] <= 1e-4 for v in rec["variants"] if v["role"] == "vip" and v["error"] is None)
    assert "fused_torch" in capsys.readouterr().out
    assert cli.main(["bench", "vip", "--layers", "paper", "--layers", "all"]) == 2
    assert cli.main(["bench", "vip", "--impl", "fastest"]) == 2
