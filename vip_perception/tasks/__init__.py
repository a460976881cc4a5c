"""Tasks as objects: one module per task, a registry keyed by the bank manifest's ``task``.

A new task is one module defining a ``Task`` subclass and ``TASK = ThatTask()``, plus its
import in ``_MODULES`` below. Importing this package does not import torch.
"""
from __future__ import annotations

from . import classification, detection
from .base import OUTPUT_KINDS, Task

__all__ = ["OUTPUT_KINDS", "TASK_NAMES", "Task", "get_task", "register"]

_REGISTRY: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Add ``task`` to the registry under ``task.name``; ValueError for a duplicate name or an
    unknown ``output_kind``."""
    if not task.name or task.name in _REGISTRY:
        raise ValueError(f"task name {task.name!r} is empty or already registered")
    if task.output_kind not in OUTPUT_KINDS:
        raise ValueError(f"task {task.name}: output_kind must be one of {OUTPUT_KINDS}, got {task.output_kind!r}")
    _REGISTRY[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The registered task called ``name``; ValueError listing the known tasks otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(_REGISTRY)}") from None


_MODULES = (classification, detection)  # registration by import: one line per task module
for _module in _MODULES:
    register(_module.TASK)

TASK_NAMES: tuple[str, ...] = tuple(_REGISTRY)
