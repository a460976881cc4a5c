"""vip_upsample: fast path against the slow reference, and the reference against hand values."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vip_perception.vip import SUPPORTED_DTYPES, vip_upsample, vip_upsample_reference

# Small-map sizes; every one is expanded to both the odd (2n-1) and even (2n) target.
SMALL = [(1, 1), (1, 3), (2, 2), (3, 4), (5, 7)]
TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-6, atol=1e-6),
       torch.bfloat16: dict(rtol=1e-2, atol=1e-2)}


def _targets(h, w):
    return [(H, W) for H in (2 * h - 1, 2 * h) for W in (2 * w - 1, 2 * w)]


def _upsample(x, size, path):
    """Run one of the two implementations: 'fast' (inference) or 'autograd' (x requires grad)."""
    if path == "autograd":
        return vip_upsample(x.detach().requires_grad_(True), size).detach()
    with torch.no_grad():
        return vip_upsample(x, size)


PATHS = ["fast", "autograd"]


def test_reference_matches_hand_computed_values():
    x = torch.tensor([[0.0, 2.0], [4.0, 8.0]]).view(1, 1, 2, 2)
    odd = torch.tensor([[0.0, 1.0, 2.0], [2.0, 3.5, 5.0], [4.0, 6.0, 8.0]])
    even = torch.tensor([[0.0, 1.0, 2.0, 2.0], [2.0, 3.5, 5.0, 5.0], [4.0, 6.0, 8.0, 8.0], [4.0, 6.0, 8.0, 8.0]])
    assert torch.equal(vip_upsample_reference(x, (3, 3))[0, 0], odd)
    assert torch.equal(vip_upsample_reference(x, (4, 4))[0, 0], even)
    assert torch.equal(vip_upsample(x, (3, 3))[0, 0], odd)
    assert torch.equal(vip_upsample(x, (4, 4))[0, 0], even)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
@pytest.mark.parametrize("hw", SMALL)
def test_fast_path_matches_reference(hw, dtype, path):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *hw).to(dtype)  # (N, C, h, w), batch > 1
    for size in _targets(*hw):
        fast = _upsample(x, size, path)
        ref = vip_upsample_reference(x, size)
        assert fast.shape == (2, 3, *size) and fast.dtype == dtype
        torch.testing.assert_close(fast, ref, **TOL[dtype])
        assert torch.equal(fast[..., ::2, ::2], x), "even positions must be exact copies"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
def test_channels_last_kept_and_equal(dtype, path):
    torch.manual_seed(1)
    x = torch.randn(2, 5, 4, 3).to(dtype)
    xc = x.contiguous(memory_format=torch.channels_last)
    for size in _targets(4, 3):
        out = _upsample(xc, size, path)
        assert out.is_contiguous(memory_format=torch.channels_last), size
        torch.testing.assert_close(out, vip_upsample_reference(x, size), **TOL[dtype])


@pytest.mark.parametrize("path", PATHS)
def test_non_contiguous_input(path):
    x = torch.randn(2, 3, 10, 12)[..., ::2, 1::2]  # (2, 3, 5, 6) strided view
    torch.testing.assert_close(_upsample(x, (10, 11), path), vip_upsample_reference(x, (10, 11)))


def test_larger_maps_both_paths_agree():
    """Real layer sizes (VGG/ResNet): both paths agree, both formats, odd and even targets."""
    torch.manual_seed(2)
    for shape, size in [((1, 64, 28, 28), (56, 56)), ((2, 32, 4, 4), (7, 7)), ((1, 16, 13, 10), (25, 20))]:
        x = torch.randn(*shape)
        for xf in (x, x.contiguous(memory_format=torch.channels_last)):
            torch.testing.assert_close(_upsample(xf, size, "fast"), _upsample(xf, size, "autograd"),
                                       rtol=1e-6, atol=1e-6)


def test_gradcheck_float64():
    for hw, size in [((3, 4), (5, 8)), ((2, 3), (4, 5)), ((1, 2), (2, 4))]:
        x = torch.randn(1, 2, *hw, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda t: vip_upsample(t, size), (x,), fast_mode=True)


def test_not_the_same_as_half_pixel_bilinear():
    """F.interpolate(scale_factor=2, align_corners=False) shifts by half a pixel: not ViP."""
    x = torch.arange(16.0).view(1, 1, 4, 4)
    shifted = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert not torch.allclose(shifted, vip_upsample(x, (8, 8)))


@pytest.mark.parametrize("size", [(4, 9), (6, 8), (3, 8)])
def test_bad_size_names_the_axis(size):
    with pytest.raises(ValueError, match="height|width"):
        vip_upsample(torch.zeros(1, 1, 4, 4), size)


def test_bad_dtype_and_rank():
    with pytest.raises(ValueError, match="dtype"):
        vip_upsample(torch.zeros(1, 1, 2, 2, dtype=torch.int64), (3, 3))
    with pytest.raises(ValueError, match="4-D"):
        vip_upsample(torch.zeros(1, 2, 2), (3, 3))
