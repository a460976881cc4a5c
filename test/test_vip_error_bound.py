"""ViP's interpolation error stays within the second-difference bound, on a trained network."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from vip_perception.data.fashion_mnist import default_root
from vip_perception.vip import ViPConv2d, bound_report, vip_error_bound, vip_from_full

torch.set_num_threads(1)
FMNIST = Path(default_root())  # a required test group: scripts/test fails early without it


def _idx(name: str) -> np.ndarray:
    with gzip.open(FMNIST / name) as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


@pytest.fixture(scope="module")
def trained():
    """A tiny CNN trained for a few seconds on 3000 Fashion-MNIST images (1 thread)."""
    # (N, 1, 28, 28)
    x = torch.from_numpy(_idx("train-images-idx3-ubyte.gz")[:3500].copy()).float().div(255).unsqueeze(1)
    y = torch.from_numpy(_idx("train-labels-idx1-ubyte.gz")[:3500].astype(np.int64))
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),  # 14x14: even, copied last row
        nn.Conv2d(16, 16, 3), nn.BatchNorm2d(16), nn.ReLU(),  # 12x12 ... and a valid conv
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        for i in range(0, 3000, 100):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i : i + 100]), y[i : i + 100]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x[3000:]).argmax(1) == y[3000:]).float().mean().item()
    return model.double(), x[3000:3032].double(), acc


def test_bound_holds_on_trained_feature_maps(trained):
    model, x, acc = trained
    assert acc > 0.5, f"tiny CNN did not train (held-out accuracy {acc:.2f})"
    lines = [f"\ntrained tiny CNN, held-out accuracy {acc:.2f}"]
    h = x
    with torch.no_grad():
        for i, m in enumerate(model):
            if isinstance(m, nn.Conv2d) and m.stride == (1, 1):
                conv, bn, act = model[i], model[i + 1], model[i + 2]
                full = act(bn(conv(h)))  # (N, C, H, W) what the layer computes at stride 1
                vip = ViPConv2d(conv, bn, act)(h)  # what ViP computes from the stride-2 run
                bound = vip_error_bound(full)
                err = (vip - full).abs()
                assert (err <= bound + 1e-9).all(), f"bound violated at layer {i}"
                rep = bound_report(full, vip)
                assert rep.even_max_error < 1e-9 and rep.max_excess < 1e-9
                assert 0 < rep.mean_ratio <= 1 and rep.median_ratio == pytest.approx(1.0)
                assert 0 < rep.diagonal_mean_ratio <= 1
                lines.append(f"layer {i} {tuple(full.shape[1:])}: mean |full| {rep.mean_abs_full:.3f}, "
                             f"at odd positions mean |err| {rep.mean_error:.4f}, mean bound {rep.mean_bound:.4f}, "
                             f"err/bound mean {rep.mean_ratio:.3f} (diagonal {rep.diagonal_mean_ratio:.3f})")
            h = m(h)
    print("\n".join(lines))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_bound_holds_on_random_maps(H, W, seed):
    g = torch.Generator().manual_seed(seed)
    full = torch.randn(2, 2, H, W, generator=g, dtype=torch.float64)
    err = (vip_from_full(full) - full).abs()
    bound = vip_error_bound(full)
    assert (err <= bound + 1e-12).all()
    assert (bound[..., ::2, ::2] == 0).all()


def test_exact_formula_off_the_diagonal():
    """Odd row, even column (interior): the error is exactly half the second difference."""
    full = torch.randn(1, 1, 9, 9, dtype=torch.float64)
    err = vip_from_full(full) - full
    second = (full[..., :-2, :] - 2 * full[..., 1:-1, :] + full[..., 2:, :]) / 2  # centred at rows 1..7
    torch.testing.assert_close(err[..., 1:-1:2, ::2], second[..., ::2, ::2])
    torch.testing.assert_close(vip_error_bound(full)[..., 1:-1:2, ::2], second[..., ::2, ::2].abs())


def test_linear_ramp_is_reproduced_exactly():
    """A linear map through an identity conv: ViP is exact at even and interior odd positions."""
    H = W = 10
    rows = torch.arange(H, dtype=torch.float32).view(H, 1)
    cols = torch.arange(W, dtype=torch.float32).view(1, W)
    ramp = (3 * rows - 2 * cols + 5).expand(1, 1, H, W).contiguous()  # (1, 1, 10, 10) integers
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1.0
        out = ViPConv2d(conv)(ramp)
        full = conv(ramp)
    assert torch.equal(full, ramp)
    assert torch.equal(out[..., ::2, ::2], full[..., ::2, ::2])
    assert torch.equal(out[..., : H - 1, : W - 1], full[..., : H - 1, : W - 1])  # all but the copied edge
    # copied last row/column: error is the first difference, and the bound says so exactly
    bound = vip_error_bound(full)
    assert torch.equal(bound[..., : H - 1, : W - 1], torch.zeros(1, 1, H - 1, W - 1, dtype=torch.float64))
    assert torch.equal((out - full)[..., -1, :-1], torch.full((1, 1, W - 1), -3.0))
    assert torch.equal(bound[..., -1, :-1].float(), torch.full((1, 1, W - 1), 3.0))
