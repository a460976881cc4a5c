"""run_matrix: every variant present, ViP variants checked against the reference, JSON-ready."""
import argparse
import json

import torch

from vip_perception.bench import fused_bench
from vip_perception.models import ModelSpec, build_model

torch.set_num_threads(1)


def test_run_matrix_records_every_variant():
    torch.manual_seed(0)
    spec = ModelSpec(family="plain", stages=[[8, 8], [16, 16]], input_size=(28, 28))
    rec = fused_bench.run_matrix("plain", 28, "all", threads=1, repeats=1, warmup=0, model=build_model(spec),
                                 in_channels=1, compile=False)
    keys = {v["key"] for v in rec["variants"]}
    assert {"original/torch/eager_nchw", "original/torch/eager_channels_last",
            "original/torch/eager_channels_last_packed", "reference/torch/eager_nchw",
            "fused/torch/eager_channels_last"} <= keys
    assert all(v["max_rel_error"] <= 1e-4 for v in rec["variants"] if v["role"] == "vip")
    assert {"original/onnxruntime/ort", "reference/onnxruntime/ort", "fused/onnxruntime/ort"} <= keys
    assert rec["summary"]["fused_torch"]["speedup"] > 0 and rec["summary"]["fused_onnxruntime"]["speedup"] > 0
    assert rec["cpu"] and rec["threads"] == 1 and rec["fused_stages"]
    json.dumps(rec)
    assert "fused_torch" in fused_bench.format_matrix(rec)


def test_cli_flags_are_validated(capsys):
    parser = argparse.ArgumentParser()
    fused_bench.add_arguments(parser)
    args = parser.parse_args(["--backend", "tensorrt"])
    assert fused_bench.run(args) == 2
    assert "--backend 'tensorrt': choose from torch, onnxruntime" in capsys.readouterr().err
    args = parser.parse_args(["--impl", "fastest"])
    assert fused_bench.run(args) == 2
