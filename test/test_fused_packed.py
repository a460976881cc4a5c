"""PackedConv2d (oneDNN weights packed once) against F.conv2d over shapes, strides, groups, bias, ReLU."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from vip_perception.fused import PackedConv2d, packing_available

torch.set_num_threads(1)


@pytest.mark.parametrize("groups,stride,kernel,padding,bias,relu", [
    c for c in itertools.product((1, 2), (1, 2), ((3, 3), (3, 2), (1, 3)), ((0, 0), (1, 1), (0, 1)),
                                 (True, False), (True, False))
    if c[3][0] <= c[2][0] // 2 + 1
][::3])
def test_packed_matches_conv2d(groups, stride, kernel, padding, bias, relu):
    g = torch.Generator().manual_seed(hash((groups, stride, kernel, padding, bias, relu)) % 1000)
    w = torch.randn(6, 4 // groups, *kernel, generator=g)
    b = torch.randn(6, generator=g) if bias else None
    conv = PackedConv2d(w, b, stride, padding, groups, relu)
    for shape in ((1, 4, 7, 9), (2, 4, 6, 5), (1, 4, 7, 9)):  # repeated shape: served from the cache
        x = torch.randn(*shape, generator=g).contiguous(memory_format=torch.channels_last)
        want = F.conv2d(x, w, b, stride, padding, 1, groups)
        want = F.relu(want) if relu else want
        with torch.inference_mode():
            got = conv(x)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    if packing_available():
        assert len(conv._packed) == 2


def test_fallback_paths_and_errors():
    w = torch.randn(3, 2, 3, 3)
    conv = PackedConv2d(w, None, 1, 1)
    x = torch.randn(1, 2, 5, 5, requires_grad=True)  # NCHW + autograd: the F.conv2d path
    y = conv(x)
    y.sum().backward()
    assert x.grad is not None and not conv._packed
    with pytest.raises(ValueError, match="zero numeric padding"):
        PackedConv2d.from_conv(torch.nn.Conv2d(2, 3, 3, padding="same"))
