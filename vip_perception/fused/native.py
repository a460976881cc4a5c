"""Loads the native channels-last ViP kernels (kernels/vip_upsample.cpp), falling back to PyTorch.

The C++ source is compiled on first use with ``torch.utils.cpp_extension.load`` into a cache
directory keyed by the source's hash, the torch version, the CPU capability (a build for
AVX-512 must not be loaded on an AVX2-only machine) and the torch install it links against, and
only from this package's own sources. The build compiles a copy of the source kept in that
directory, so the cached build serves every install of the same source over one torch
(checkout, colcon workspace, pip): compiling the installed path instead would change ninja's
command line and rebuild (~15 s) per install. Why the torch install too: ninja's command line
names torch's include directories, so two environments with the same torch version (two
checkouts' ``.venv``) sharing one folder rebuilt it in turn, each over the library the other
had loaded.
Without a compiler (or with ``VIP_PERCEPTION_NATIVE=0``) everything still works: the
pure-PyTorch paths are the references the kernels are tested against, and ``native_status()``
says which one runs and why. Loading happens when a bank with fused ViP members is loaded,
never inside a frame; ``load_seconds()`` says how long it took (the node's start-up phase
"kernels").
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path

import torch

from vip_perception.share import share_path
from vip_perception.vip import vip_upsample

from .pool_fusion import vip_max_pool2d

__all__ = ["kernel_build_dir", "kernel_source", "load_native", "load_seconds", "max_pool", "native_available",
           "native_status", "upsample"]

SOURCE_NAME = "vip_upsample.cpp"
_lock = threading.Lock()
_state: dict = {"loaded": None, "reason": "not tried yet", "seconds": None, "build_dir": None}



def _shown(path: Path) -> str:
    """``path`` relative to the source checkout when inside it (status strings land in records)."""
    root = Path(__file__).resolve().parents[2]
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return str(path)

def kernel_source() -> Path | None:
    """The C++ source ``kernels/vip_upsample.cpp`` wherever the package is installed (ament
    share, source checkout, pip data files; ``share.share_path``), or None when missing."""
    return share_path(f"kernels/{SOURCE_NAME}")


def _cache_dir(tag: str) -> Path:
    root = os.environ.get("VIP_PERCEPTION_KERNEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "vip_perception", "kernels")
    path = Path(root) / tag
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cached_source(src: Path, build_dir: Path) -> Path:
    """``src`` copied into ``build_dir`` (written only when missing or different, atomically:
    a rewrite would touch its mtime and make ninja rebuild)."""
    data = src.read_bytes()
    copy = build_dir / SOURCE_NAME
    if not copy.is_file() or copy.read_bytes() != data:
        tmp = build_dir / f".{SOURCE_NAME}.{os.getpid()}"
        tmp.write_bytes(data)
        os.replace(tmp, copy)
    return copy


def _cache_tag(source: bytes, capability: str) -> tuple[str, str]:
    """(digest of the source and its flags, cache folder name): torch version, CPU capability,
    that digest and a digest of the torch install's path (see the module docstring)."""
    digest = hashlib.sha256(source + " ".join(_flags(capability)).encode()).hexdigest()[:12]
    install = hashlib.sha256(str(Path(torch.__file__).resolve().parent).encode()).hexdigest()[:8]
    return digest, f"torch{torch.__version__.split('+')[0]}-{capability.lower()}-{digest}-{install}"


def _flags(capability: str) -> list[str]:
    flags = ["-O3"]
    if capability in ("AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma"]
    if capability == "AVX512":
        flags += ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq"]
    return flags


def load_native() -> bool:
    """Build/load the kernels once per process; True when torch.ops.vip_perception is usable."""
    with _lock:
        if _state["loaded"] is not None:
            return _state["loaded"]
        t0 = time.perf_counter()
        _state["loaded"], _state["reason"] = _try_load()
        _state["seconds"] = time.perf_counter() - t0
        return _state["loaded"]


def kernel_build_dir() -> Path | None:
    """The cache directory the loaded kernels were built in (keyed by torch version, CPU
    capability, source digest and torch install, never by this package's install path); None
    when they are not loaded."""
    return _state["build_dir"] if load_native() else None


def load_seconds() -> float | None:
    """Wall seconds the one build/load of this process took; None when not tried yet."""
    return _state["seconds"]


def _try_load() -> tuple[bool, str]:
    if os.environ.get("VIP_PERCEPTION_NATIVE", "1") == "0":
        return False, "disabled by VIP_PERCEPTION_NATIVE=0"
    if hasattr(torch.ops, "vip_perception") and hasattr(torch.ops.vip_perception, "upsample_cl"):
        return True, "already registered"
    src = kernel_source()
    if src is None:
        return False, f"kernel source {SOURCE_NAME} not found"
    try:
        cpp_extension = _import_cpp_extension()
        capability = torch.backends.cpu.get_cpu_capability()
        digest, tag = _cache_tag(src.read_bytes(), capability)
        os.environ.setdefault("MAX_JOBS", "1")  # one compile job: the machine is shared
        build_dir = _state["build_dir"] = _cache_dir(tag)
        cpp_extension.load(
            name=f"vip_perception_kernels_{digest}",
            sources=[str(_cached_source(src, build_dir))],
            extra_cflags=_flags(capability),
            build_directory=str(build_dir),
            is_python_module=False,
            verbose=False,
        )
        torch.ops.vip_perception.upsample_cl  # noqa: B018 - raises if registration failed
        return True, f"built from {_shown(src)} ({tag})"
    except Exception as exc:  # noqa: BLE001 - any build/load failure means: use the fallback
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
        return False, f"native build failed ({type(exc).__name__}: {last})"


def _import_cpp_extension():
    """``torch.utils.cpp_extension`` without its import-time CUDA warning. A CUDA build of torch
    on a machine without a GPU logs "No CUDA runtime is found, using CUDA_HOME=..." when the
    module is imported; these kernels are CPU-only and never use that toolkit, so the line
    would only mislead a user reading the node's log (it was its first line)."""
    log = logging.getLogger("torch.utils.cpp_extension")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        log.setLevel(level)
    return cpp_extension


def native_available() -> bool:
    return load_native()


def native_status() -> str:
    """'native: <how>' or 'fallback: <why>' (for benchmark records and --help output)."""
    ok = load_native()
    return ("native: " if ok else "fallback: ") + _state["reason"]


def _use_native(x: torch.Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and x.dim() == 4
        and x.shape[1] > 1
        and x.is_contiguous(memory_format=torch.channels_last)
        and not torch.jit.is_tracing()
        and not torch.onnx.is_in_onnx_export()
        and not torch.compiler.is_compiling()
        and load_native()
    )


def upsample(x: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """vip_upsample with the native kernel for channels-last CPU float maps; exact same values."""
    H, W = (int(v) for v in out_size)
    if torch.onnx.is_in_onnx_export():
        from vip_perception.export.resize import resize_vip  # ONNX Resize, linear/asymmetric

        return resize_vip(x, (H, W))
    if _use_native(x) and not (torch.is_grad_enabled() and x.requires_grad):
        return torch.ops.vip_perception.upsample_cl(x, H, W)  # (N, C, H, W) channels-last
    return vip_upsample(x, (H, W))


def max_pool(small: torch.Tensor, full_size: tuple[int, int]) -> torch.Tensor:
    """vip_max_pool2d with the native kernel for channels-last CPU float maps."""
    H, W = (int(v) for v in full_size)
    if _use_native(small) and not (torch.is_grad_enabled() and small.requires_grad):
        return torch.ops.vip_perception.max_pool_cl(small, H, W)  # (N, C, H//2, W//2) channels-last
    return vip_max_pool2d(small, (H, W))
