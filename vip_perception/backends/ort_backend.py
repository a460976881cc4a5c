"""ONNX Runtime execution of an exported model (CPU execution provider).

Small models are dominated by per-call overhead, where ONNX Runtime's static graph beats
eager PyTorch. The export is verified against the module (on a random input of the example's
shape) before use, and the session owns its weights (the export bytes are dropped unless kept).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

__all__ = ["OrtBackend", "session_options"]

_LEVELS = {"none": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
           "all": "ORT_ENABLE_ALL"}  # optimization name -> ort.GraphOptimizationLevel member


def session_options(threads: int, allow_spinning: bool = True, optimization: str = "all"):
    """The ``onnxruntime.SessionOptions`` every session of this package runs with: ``threads``
    intra-op threads, one inter-op thread, sequential execution, graph optimisation level
    ``optimization`` (one of none | basic | extended | all) and intra-op spinning on or off.
    ValueError for an unknown level."""
    import onnxruntime as ort

    if optimization not in _LEVELS:
        raise ValueError(f"onnxruntime optimization must be one of {sorted(_LEVELS)}, got {optimization!r}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[optimization])
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return opts


class OrtBackend:
    kind = "onnxruntime"

    def __init__(self, module: nn.Module, example_input: torch.Tensor, threads: int,
                 allow_spinning: bool = True, optimization: str = "all", onnx_bytes: bytes | None = None,
                 verify_rtol: float | None = 1e-4, keep_onnx: bool = False):
        import onnxruntime as ort

        from vip_perception.export import export_onnx, verify_onnx

        opts = session_options(threads, allow_spinning, optimization)  # ValueError first, before exporting
        x = example_input.detach().float().contiguous()
        self.onnx_bytes = onnx_bytes if onnx_bytes is not None else export_onnx(module, x)
        if verify_rtol is not None:  # on a random input: an all-zero example would prove little
            probe = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))  # (N, C, H, W)
            check = verify_onnx(module, self.onnx_bytes, probe, rtol=verify_rtol)
            if not check.ok:
                raise RuntimeError(
                    f"ONNX export of {type(module).__name__} differs from PyTorch by "
                    f"{check.max_rel_error:.2e} relative (> {verify_rtol})"
                )
        self.session = ort.InferenceSession(self.onnx_bytes, opts, providers=["CPUExecutionProvider"])
        if not keep_onnx:  # a VGG16 export is 0.5 GB; the session holds its own copy
            self.onnx_bytes = None
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = tuple(x.shape)
        self.threads = threads

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape) != self.input_shape:
            raise ValueError(f"onnxruntime backend was exported for input {self.input_shape}, got {tuple(x.shape)}")
        arr = np.ascontiguousarray(x.detach().to(torch.float32).contiguous().numpy())  # (N, C, H, W)
        return torch.from_numpy(self.session.run(None, {self.input_name: arr})[0])
