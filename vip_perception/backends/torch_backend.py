"""Eager (or torch.compile'd) PyTorch execution, NCHW or channels-last."""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

__all__ = ["TorchBackend", "TorchRunner", "run_torch"]


def run_torch(module, x: torch.Tensor, threads: int):
    """``module(x)`` under ``torch.inference_mode()`` with ``threads`` intra-op threads.

    torch's thread count is process-wide, so it is set before the call, and only when it
    differs (setting it is not free). The one place that does "set threads + inference mode".
    """
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    with torch.inference_mode():
        return module(x)


class TorchRunner:
    """``run_torch(fn, x, threads)`` at a fixed thread count: a member's runner on torch."""

    def __init__(self, fn, threads: int) -> None:
        self.fn, self.threads = fn, threads

    def __call__(self, x: torch.Tensor):
        return run_torch(self.fn, x, self.threads)


def _lean_copy(module: nn.Module) -> nn.Module:
    """deepcopy that shares every parameter/buffer a memory-format change leaves alone (not 4-D)."""
    memo = {id(t): t for t in list(module.parameters()) + list(module.buffers()) if t.dim() != 4}
    return copy.deepcopy(module, memo)


class TorchBackend:
    """Runs the module in inference mode with its own intra-op thread count.

    torch's thread count is process-wide, so it is set before each call only when it differs
    (cheap), letting backends with different thread counts share a process.
    """

    kind = "torch"

    def __init__(self, module: nn.Module, example_input: torch.Tensor, threads: int,
                 channels_last: bool = False, compile: bool = False):
        self.threads = threads
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # channels-last converts a copy (the caller's module keeps its format); tensors that
        # are not 4-D (linear layers: most of VGG's 0.5 GB) are shared, not copied
        self.module = _lean_copy(module).to(memory_format=self.memory_format) if channels_last else module
        self.module.eval()
        self.fn = torch.compile(self.module) if compile else self.module
        self.compiled = compile
        if compile:  # compile now (for this shape), not inside the first timed/deadline call
            self(example_input)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return run_torch(self.fn, x.contiguous(memory_format=self.memory_format), self.threads)
