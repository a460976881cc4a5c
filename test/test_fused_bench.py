"""run_matrix: every variant present, ViP variants checked against the reference, JSON-ready."""
import json

import pytest
import torch

from vip_perception import cli
from vip_perception.bench import fused_bench
from vip_perception.models import ModelSpec, build_model

torch.set_num_threads(1)


def test_run_matrix_records_every_variant():
    torch.manual_seed(0)
    spec = ModelSpec(family="plain", stages=[[8, 8], [16, 16]], input_size=(28, 28))
    rec = fused_bench.run_matrix("plain", 28, ["all", "features.s1.conv2"], threads=1, repeats=1, warmup=0,
                                 model=build_model(spec),
                                 in_channels=1, compile=())
    keys = {v["key"] for v in rec["variants"]}
    assert {"original/torch/eager_nchw", "original/torch/eager_channels_last",
            "original/torch/eager_channels_last_packed", "reference[all]/torch/eager_nchw",
            "fused[all]/torch/eager_channels_last"} <= keys
    assert all(v["error"] is None for v in rec["variants"]), rec["variants"]
    assert all(v["max_rel_error"] <= 1e-4 for v in rec["variants"] if v["role"] == "vip")
    assert {"original/onnxruntime/ort", "reference[all]/onnxruntime/ort", "fused[all]/onnxruntime/ort"} <= keys
    for spec in ("all", "features.s1.conv2"):
        summary = rec["layer_sets"][spec]["summary"]
        assert summary["fused_torch"]["speedup"] > 0 and summary["fused_onnxruntime"]["speedup"] > 0
    assert rec["layer_sets"]["features.s1.conv2"]["fused_stages"] == {"features.s1.conv2": "pool+0 folded"}
    assert rec["cpu"] and rec["threads"] == 1 and rec["layer_sets"]["all"]["fused_stages"]
    json.dumps(rec)
    assert "fused_torch" in fused_bench.format_matrix(rec)


def test_cli_flags_are_validated(capsys):
    assert cli.main(["bench", "vip", "--backend", "tensorrt"]) == 2
    assert "--backend 'tensorrt': choose from torch, onnxruntime" in capsys.readouterr().err
    assert cli.main(["bench", "vip", "--impl", "fastest"]) == 2
    with pytest.raises(ValueError, match="--impl"):
        fused_bench.parse_choices("", fused_bench.IMPLS, "--impl")
