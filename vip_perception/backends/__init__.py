"""Execution backends (torch | onnxruntime) behind one callable interface:
``make_backend(...)(x) -> Tensor``. Importing this package does not import torch.

A backend is a callable: preprocessed input (N, C, H, W) float32 -> output tensor. Models are
exported for the example input's shape; the callable runs in inference mode.
"""
from __future__ import annotations

from collections.abc import Callable

__all__ = ["BACKENDS", "Backend", "make_backend"]

BACKENDS = ("torch", "onnxruntime")  # the one list of backend names (node parameter, CLI, bank)

Backend = Callable  # (N, C, H, W) float32 tensor -> output tensor


def make_backend(kind: str, module, example_input, threads: int = 1, **options) -> Backend:
    """Build a backend of ``kind`` ('torch' | 'onnxruntime') running ``module`` (eval mode) with
    ``threads`` intra-op threads; ValueError for an unknown kind, threads < 1 or an example
    input that is not (N, C, H, W).

    options: torch: channels_last (bool), compile (bool); onnxruntime: allow_spinning (bool),
    optimization (str), onnx_bytes (reuse an export), verify_rtol (float | None),
    keep_onnx (bool: keep .onnx_bytes for saving).
    """
    if threads < 1:
        raise ValueError(f"backend threads must be >= 1, got {threads}")
    if example_input.dim() != 4:
        raise ValueError(f"example_input must be (N, C, H, W), got shape {tuple(example_input.shape)}")
    if kind == "torch":
        from .torch_backend import TorchBackend

        return TorchBackend(module, example_input, threads, **options)
    if kind == "onnxruntime":
        from .ort_backend import OrtBackend

        return OrtBackend(module, example_input, threads, **options)
    raise ValueError(f"unknown backend {kind!r}; choose one of: {', '.join(BACKENDS)}")
