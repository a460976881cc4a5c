"""The native channels-last kernels against their PyTorch references (and the slow loop)."""
import subprocess
import sys

import pytest
import torch

from vip_perception.fused import native
from vip_perception.fused.pool_fusion import vip_max_pool2d
from vip_perception.vip import vip_upsample, vip_upsample_reference

torch.set_num_threads(1)

needs_native = pytest.mark.skipif(not native.native_available(), reason=native.native_status())

CASES = [(1, 1, 1, 2), (3, 4, 5, 8), (4, 4, 8, 8), (5, 3, 10, 5), (2, 7, 3, 14)]


@needs_native
@pytest.mark.parametrize("h,w,H,W", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_upsample_matches_reference(h, w, H, W, dtype):
    x = torch.randn(2, 5, h, w, dtype=dtype).contiguous(memory_format=torch.channels_last)
    got = torch.ops.vip_perception.upsample_cl(x, H, W)
    assert got.is_contiguous(memory_format=torch.channels_last) and got.shape == (2, 5, H, W)
    torch.testing.assert_close(got, vip_upsample(x, (H, W)), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got, vip_upsample_reference(x, (H, W)), rtol=1e-6, atol=1e-6)


@needs_native
@pytest.mark.parametrize("h,w,H,W", [c for c in CASES if c[2] >= 2 and c[3] >= 2])
def test_native_pool_matches_reference(h, w, H, W):
    x = torch.randn(2, 6, h, w).contiguous(memory_format=torch.channels_last)
    got = torch.ops.vip_perception.max_pool_cl(x, H, W)
    assert torch.equal(got, vip_max_pool2d(x, (H, W)))  # same arithmetic, bit for bit
    torch.testing.assert_close(got, torch.nn.functional.max_pool2d(vip_upsample_reference(x, (H, W)), 2, 2))


@needs_native
def test_native_rejects_bad_sizes():
    with pytest.raises(RuntimeError, match="cannot expand height"):
        torch.ops.vip_perception.upsample_cl(torch.randn(1, 2, 3, 3), 9, 6)


def test_dispatch_uses_fallback_for_nchw_and_bfloat16():
    x = torch.randn(1, 4, 3, 5)  # NCHW: PyTorch path
    torch.testing.assert_close(native.upsample(x, (6, 9)), vip_upsample(x, (6, 9)))
    xb = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(native.upsample(xb, (5, 10)), vip_upsample(xb, (5, 10)))
    torch.testing.assert_close(native.max_pool(x, (6, 10)), vip_max_pool2d(x, (6, 10)))


def test_fallback_when_disabled():
    """VIP_PERCEPTION_NATIVE=0 (as with no compiler): same results, status says why."""
    code = (
        "import torch; from vip_perception.fused import native;"
        "x = torch.randn(1, 3, 4, 4).contiguous(memory_format=torch.channels_last);"
        "y = native.upsample(x, (8, 7)); print(native.native_status()); print(y.shape)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "VIP_PERCEPTION_NATIVE": "0"})
    assert out.returncode == 0, out.stderr
    assert "fallback: disabled by VIP_PERCEPTION_NATIVE=0" in out.stdout
    assert "torch.Size([1, 3, 8, 7])" in out.stdout


def test_cache_folder_is_per_source_cpu_and_torch_install(monkeypatch, tmp_path):
    """One folder per source, CPU capability and torch install: the same torch shares it (a
    checkout and its colcon install), another environment's torch of the same version does not
    (ninja's command line names torch's headers, so sharing rebuilt the folder in turn)."""
    src = b"// kernel source"
    digest, tag = native._cache_tag(src, "AVX512")
    assert native._cache_tag(src, "AVX512") == (digest, tag)
    assert tag.startswith(f"torch{torch.__version__.split('+')[0]}-avx512-{digest}-")
    assert native._cache_tag(src, "AVX2")[1] != tag and native._cache_tag(src + b" ", "AVX512")[1] != tag
    other_env = tmp_path / "other" / ".venv" / "lib" / "python3.11" / "site-packages" / "torch"
    monkeypatch.setattr(torch, "__file__", str(other_env / "__init__.py"))
    other_digest, other_tag = native._cache_tag(src, "AVX512")
    assert other_digest == digest and other_tag != tag  # same module name, another folder


_IMPORT_CPP_EXTENSION = """
import logging, sys
logging.basicConfig(stream=sys.stderr)
if sys.argv[1] == "tool":
    from vip_perception.fused import native
    native._import_cpp_extension()
else:  # a plain import, for comparison
    from torch.utils import cpp_extension
print(logging.getLogger("torch.utils.cpp_extension").level)
"""


@pytest.mark.skipif(torch.cuda.is_available(), reason="the warning is only logged without a CUDA runtime")
@pytest.mark.parametrize("how", ["tool", "plain"])
def test_loading_the_kernels_logs_no_cuda_warning_on_a_cpu_machine(tmp_path, how):
    """A CUDA build of torch without a GPU warns about CUDA_HOME when cpp_extension is imported;
    the CPU kernels' loader keeps that line out of the node's log (and leaves the logger's level
    as it was). CUDA_HOME is set so that torch finds a toolkit and would warn."""
    env = {**__import__("os").environ, "CUDA_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", _IMPORT_CPP_EXTENSION, how], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"  # NOTSET: the level is restored
    assert ("No CUDA runtime" in out.stderr) == (how == "plain"), out.stderr
