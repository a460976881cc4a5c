"""Training layout: channels-last except where oneDNN cannot train a model in it.

oneDNN's 1x1 backward-weights kernel on channels-last input with stride 2 and few input channels
writes past its workspace (uxlfoundation/oneDNN#6035); on an AVX2-only host the quick station
bank's 4-channel shortcut aborted the build with a corrupted heap. These tests pin the rule and
train such a model in a child process, so a crash fails one test instead of the whole session.
"""
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from vip_perception.bank.train_classifier import training_layout

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("conv, layout", [
    (nn.Conv2d(4, 8, 1, stride=2), torch.contiguous_format),   # the defect's case
    (nn.Conv2d(15, 8, 1, stride=2), torch.contiguous_format),  # below AVX-512's block of 16
    (nn.Conv2d(16, 32, 1, stride=2), torch.channels_last),
    (nn.Conv2d(4, 8, 1, stride=1), torch.channels_last),       # stride 1: not the strided path
    (nn.Conv2d(4, 8, 3, stride=2, padding=1), torch.channels_last),
])
def test_layout_rule(conv, layout):
    model = nn.Sequential(nn.Conv2d(1, conv.in_channels, 3, padding=1), conv)
    assert training_layout(model) == layout


def test_the_quick_station_models_shape_trains_without_corrupting_the_heap():
    """A ResNet with a 4-channel strided 1x1 shortcut (the quick station bank's b000), trained
    through ``train`` with one intra-op thread: the child exits 0 with a finite loss."""
    code = textwrap.dedent("""
        import math, torch
        from vip_perception.bank.train_classifier import TensorImages, TrainConfig, train, training_layout
        from vip_perception.models import build_model, spec_from_dict
        torch.set_num_threads(1)
        spec = spec_from_dict({"family": "resnet", "in_channels": 1, "input_size": [32, 32],
                               "num_classes": 10, "stages": [[4], [8], [16]], "head": "gap"})
        model = build_model(spec)
        assert training_layout(model) == torch.contiguous_format
        g = torch.Generator().manual_seed(0)
        data = TensorImages(torch.randn(256, 1, 32, 32, generator=g), torch.randint(0, 10, (256,), generator=g))
        loss = train(model, data, TrainConfig(samples=20 * 32, batch_size=32, lr=0.05), progress=False)
        assert math.isfinite(loss), loss
        print("loss", loss)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.startswith("loss ")
