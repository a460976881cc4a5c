"""Pool fusion and folding against the unfused definition, exhaustively over small odd/even sizes."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from vip_perception.fused import (
    conv_after_vip,
    extend_small,
    fold_stride2_weight,
    vip_conv_after_vip,
    vip_max_pool2d,
)
from vip_perception.vip import vip_upsample_reference

torch.set_num_threads(1)

SIZES = [(h, w, H, W) for h, w in itertools.product(range(1, 6), repeat=2)
         for H in (2 * h - 1, 2 * h) for W in (2 * w - 1, 2 * w)]


def _slow_full(small, size):
    return vip_upsample_reference(small, size)  # obviously-correct loop version, float64 inside


@pytest.mark.parametrize("h,w,H,W", SIZES)
def test_fold_stride2_and_phases_exact(h, w, H, W):
    g = torch.Generator().manual_seed(h * 100 + w * 10 + H + W)
    small = torch.randn(2, 3, h, w, dtype=torch.float64, generator=g)
    weight = torch.randn(4, 3, 3, 3, dtype=torch.float64, generator=g)
    bias = torch.randn(4, dtype=torch.float64, generator=g)
    full = _slow_full(small, (H, W))  # (2, 3, H, W)
    want2 = F.conv2d(full, weight, bias, 2, 1)
    got2 = vip_conv_after_vip(small, (H, W), fold_stride2_weight(weight), bias)
    assert got2.shape == want2.shape
    torch.testing.assert_close(got2, want2, rtol=1e-12, atol=1e-12)
    want1 = F.conv2d(full, weight, bias, 1, 1)
    got1 = conv_after_vip(small, (H, W), weight, bias)
    assert got1.shape == want1.shape == (2, 4, H, W)
    torch.testing.assert_close(got1, want1, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("h,w,H,W", [s for s in SIZES if s[2] >= 2 and s[3] >= 2])
def test_pool_fusion_exact(h, w, H, W):
    small = torch.randn(2, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(H * 7 + W))
    want = F.max_pool2d(_slow_full(small, (H, W)), 2, 2)
    got = vip_max_pool2d(small, (H, W))
    assert got.shape == want.shape == (2, 3, H // 2, W // 2)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_one_by_one_and_groups():
    small = torch.randn(1, 4, 3, 4, dtype=torch.float64)
    w1 = torch.randn(6, 4, 1, 1, dtype=torch.float64)
    full = _slow_full(small, (6, 7))
    torch.testing.assert_close(vip_conv_after_vip(small, (6, 7), w1, None), F.conv2d(full, w1, None, 2))
    torch.testing.assert_close(conv_after_vip(small, (6, 7), w1, None), F.conv2d(full, w1))
    wg = torch.randn(4, 2, 3, 3, dtype=torch.float64)  # groups=2
    torch.testing.assert_close(conv_after_vip(small, (6, 7), wg, None, groups=2),
                               F.conv2d(full, wg, None, 1, 1, 1, 2))


def test_extension_and_channels_last_float32():
    small = torch.randn(1, 8, 5, 6).contiguous(memory_format=torch.channels_last)
    e = extend_small(small, (10, 11))  # even height (copy), odd width (zero beyond)
    assert e.shape == (1, 8, 7, 8)
    torch.testing.assert_close(e[:, :, 0, 1:-1], -small[:, :, 0])
    torch.testing.assert_close(e[:, :, -1, 1:-1], small[:, :, -1])
    torch.testing.assert_close(e[:, :, 1:-1, -1], -small[:, :, :, -1])
    weight = torch.randn(5, 8, 3, 3)
    got = conv_after_vip(small, (10, 11), weight, None)
    want = F.conv2d(_slow_full(small, (10, 11)), weight, None, 1, 1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_bad_sizes_are_named():
    with pytest.raises(ValueError, match="height"):
        vip_max_pool2d(torch.randn(1, 1, 3, 3), (8, 6))
    with pytest.raises(ValueError, match="width"):
        vip_conv_after_vip(torch.randn(1, 1, 3, 3), (6, 3), torch.randn(1, 1, 3, 3), None)


def test_gradcheck_float64():
    small = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: vip_max_pool2d(s, (6, 7)), (small,))
    assert torch.autograd.gradcheck(
        lambda s, w: vip_conv_after_vip(s, (5, 8), fold_stride2_weight(w), None), (small, weight))
    assert torch.autograd.gradcheck(lambda s: conv_after_vip(s, (6, 7), weight.detach(), None), (small,))
