"""The interface every task offers: what the engine, the bank and the tools ask a task for.

A task is what a bank's members compute (its manifest's ``task``). Everything that differs
between tasks lives in the task's module; code elsewhere asks ``get_task(bank.task)`` instead of
testing the task's name.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

OUTPUT_KINDS = ("classification", "detection")


class Task:
    """Base class of a task. Subclasses set the class attributes and implement the methods.

    name: the manifest's ``task`` value.
    output_kind: which message family the ROS layer publishes ("classification" | "detection").
    backends: execution backends that can serve this task's members (names from
        ``vip_perception.backends.BACKENDS``); a bank of this task refuses the others.
    accuracy_name: what a member's ``val_accuracy`` / ``test_accuracy`` hold (e.g. "top-1").
    """

    name: str = ""
    output_kind: str = ""
    backends: tuple[str, ...] = ("torch",)
    accuracy_name: str = ""

    @property
    def exports_onnx(self) -> bool:
        """True when members can be exported to ONNX (the onnxruntime backend runs the export)."""
        return "onnxruntime" in self.backends

    def build_member(self, spec, vip_layers: Sequence[str]):
        """The member's architecture (untrained, eval mode) from its manifest ``spec`` (a dict or
        the task's spec object), with ViP applied to the convolutions named in ``vip_layers``.
        Raises ValueError / TypeError / KeyError for a spec that does not describe a model."""
        raise NotImplementedError

    def batch1_call(self, module) -> Callable:
        """A callable taking the preprocessed frame (1, C, H, W) float32 and returning the model
        output ``postprocess`` expects; what runners and latency profiles time."""
        return module

    def postprocess(self, output, class_names: Sequence[str], input_hw: tuple[int, int],
                    roi: tuple[int, int, int, int]) -> dict:
        """The model output of one frame -> the task's ``FrameResult`` fields, in full-frame
        pixels. ``input_hw``: (height, width) the model saw; ``roi``: (x, y, w, h) of the frame
        region that was resized to ``input_hw``."""
        raise NotImplementedError

    def evaluate_accuracy(self, model, *args, **kwargs):
        """The task's accuracy metric of ``model`` on a labelled split (see each task)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<task {self.name}>"
