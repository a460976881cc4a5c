"""Execution backends (torch | onnxruntime) behind one callable interface: make_backend(...)(x) -> Tensor."""
from .base import BACKENDS, Backend, make_backend

__all__ = ["BACKENDS", "Backend", "make_backend"]
