"""Imported ONNX models (graphs from another framework) on ONNX Runtime, and the decoders that
turn their raw outputs into what a task's ``postprocess`` reads.

A bank member made by ``bank import-onnx`` is an opaque graph: its input is one float32 image
tensor (1, C, H, W), or (C, H, W) as torchvision detectors export, with a fixed H and W (the
bank's preprocessing makes it: resize and normalisation are the manifest's), and its outputs follow one of three layouts
(``FORMATS``), each with its decoder:

- ``logits``: one output (1, C), C the bank's class count -> the (1, C) tensor classification
  post-processing ranks (scores are its softmax, so a model that already ends in a softmax
  ranks the same).
- ``torchvision``: three outputs, boxes (K, 4) x0 y0 x1 y1 in input pixels, labels (K,) and
  scores (K,), as torchvision detectors export (matched by name when the graph names them
  ``boxes``, ``labels``, ``scores``, else in that order; a leading batch axis of 1 is allowed).
  Model label ``label_offset + k`` is class k (torchvision: 1, 0 being the background).
- ``yolo``: one output (1, 4 + C, N), N candidates of centre x, centre y, width, height (input
  pixels) and C class scores (the ultralytics export layout): best class per candidate, those
  above ``score_threshold``, then per-class NMS (``torchvision.ops.batched_nms``) at
  ``iou_threshold``, at most ``max_detections``.

Detection decoders return torchvision's output dict with labels as class index + 1 (the
convention of ``tasks.detection.to_detections``), highest score first, plus ``"letterbox"``:
whether the input was letterboxed, so post-processing maps the boxes back through it. A model
whose input or outputs do not fit raises ``OnnxModelError`` naming the tensor and its shape.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from .ort_backend import session_options

__all__ = ["FORMATS", "TASK_OF_FORMAT", "Decoder", "ImportedRunner", "OnnxModelError", "decode", "input_layout"]

FORMATS = ("logits", "torchvision", "yolo")
TASK_OF_FORMAT = {"logits": "classification", "torchvision": "detection", "yolo": "detection"}


class OnnxModelError(ValueError):
    """An ONNX model whose input or outputs do not fit the layout it was imported with."""


@dataclass(frozen=True)
class Decoder:
    """How one imported model's outputs are read (the manifest member's ``spec.decoder``)."""

    format: str  # one of FORMATS
    num_classes: int  # C: the bank's class count, what the outputs must hold
    letterbox: bool = False  # the input was letterboxed (boxes map back through it)
    score_threshold: float = 0.25  # detections: lower scores are dropped
    iou_threshold: float = 0.45  # yolo: NMS overlap above which the lower score goes
    max_detections: int = 100  # detections kept per frame, best first
    label_offset: int = 1  # torchvision: model label of class 0

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise OnnxModelError(f"unknown output format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if self.num_classes < 1 or self.max_detections < 1:
            raise OnnxModelError(f"num_classes and max_detections must be >= 1, got {self.num_classes}, "
                                 f"{self.max_detections}")
        if not (0.0 <= self.score_threshold <= 1.0 and 0.0 <= self.iou_threshold <= 1.0):
            raise OnnxModelError(f"score and IoU thresholds must be in [0, 1], got {self.score_threshold}, "
                                 f"{self.iou_threshold}")

    def to_dict(self) -> dict:
        """The manifest's ``spec.decoder``; ``letterbox`` is left out: the bank's ``input.resize``
        says it, once for all members."""
        return {k: v for k, v in asdict(self).items() if k != "letterbox"}

    @classmethod
    def from_dict(cls, d: dict, letterbox: bool = False) -> "Decoder":
        """``to_dict``'s record back, for a bank whose input is (or is not) ``letterbox``ed;
        TypeError for an unknown field."""
        return cls(**d, letterbox=letterbox)


def _shape(a) -> str:
    return "(" + ", ".join(str(v) for v in a) + ("," if len(a) == 1 else "") + ")"


def input_layout(session) -> tuple[str, tuple[int, int, int, int], bool]:
    """(input name, (1, C, H, W), batched) of an ONNX Runtime session: one float32 input
    (1, C, H, W) (batch 1 or symbolic) or (C, H, W) (``batched`` false: torchvision detectors
    export one image without a batch axis), C 1 or 3 and a fixed H and W; OnnxModelError
    naming the input otherwise."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise OnnxModelError(f"the model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                             "an imported model takes one image tensor (1, C, H, W)")
    i = inputs[0]
    shape = list(i.shape)
    batched = len(shape) == 4
    chw = shape[1:] if batched else shape
    fixed = len(chw) == 3 and all(isinstance(d, int) and d > 0 for d in chw)
    batch_ok = not batched or shape[0] == 1 or not isinstance(shape[0], int)  # 1 or symbolic
    if i.type != "tensor(float)" or not fixed or not batch_ok or chw[0] not in (1, 3):
        raise OnnxModelError(f"input {i.name!r} is {i.type} of shape {_shape(shape)}; expected float32 (1, C, H, W) "
                             "or (C, H, W) with C 1 or 3 and a fixed H and W (export the model at a fixed input size)")
    return i.name, (1, *chw), batched


def _squeeze_batch(a: np.ndarray, rank: int) -> np.ndarray:
    """Drop a leading batch axis of 1 when ``a`` has one axis more than ``rank``."""
    return a[0] if a.ndim == rank + 1 and a.shape[0] == 1 else a


def decode_logits(outputs: list, names: list[str], dec: Decoder) -> torch.Tensor:
    """The first output, (1, C) logits -> a float32 tensor (1, C)."""
    out = np.asarray(outputs[0])
    if out.shape != (1, dec.num_classes):
        raise OnnxModelError(f"output {names[0]!r} has shape {_shape(out.shape)}; the logits layout is (1, C) "
                             f"with C = {dec.num_classes} classes")
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))  # (1, C)


def _detections(boxes: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor, dec: Decoder) -> dict:
    order = torch.argsort(scores, descending=True, stable=True)[:dec.max_detections]
    return {"boxes": boxes[order].float(), "labels": labels[order].long(), "scores": scores[order].float(),
            "letterbox": dec.letterbox}


def decode_torchvision(outputs: list, names: list[str], dec: Decoder) -> dict:
    """boxes (K, 4), labels (K,), scores (K,) -> the detection dict, scores above the threshold,
    labels outside the bank's classes dropped."""
    if {"boxes", "labels", "scores"} <= set(names):
        idx = [names.index(n) for n in ("boxes", "labels", "scores")]
    elif len(outputs) >= 3:
        idx = [0, 1, 2]
    else:
        raise OnnxModelError(f"the model has {len(outputs)} outputs ({', '.join(names)}); the torchvision layout "
                             "has boxes (K, 4), labels (K,) and scores (K,)")
    b, lab, s = (_squeeze_batch(np.asarray(outputs[i]), r) for i, r in zip(idx, (2, 1, 1)))
    k = b.shape[0] if b.ndim == 2 else -1
    for i, a, want in zip(idx, (b, lab, s), ("(K, 4)", "(K,)", "(K,)")):
        if a.shape != ((k, 4) if want == "(K, 4)" else (k,)):
            raise OnnxModelError(f"output {names[i]!r} has shape {_shape(a.shape)}; the torchvision layout expects "
                                 f"{want} with boxes {_shape(b.shape)} (boxes, labels, scores)")
    boxes, scores = torch.from_numpy(b.astype(np.float32)), torch.from_numpy(s.astype(np.float32))
    classes = torch.from_numpy(lab.astype(np.int64)) - dec.label_offset  # class index
    keep = (scores > dec.score_threshold) & (classes >= 0) & (classes < dec.num_classes)
    return _detections(boxes[keep], classes[keep] + 1, scores[keep], dec)


def decode_yolo(outputs: list, names: list[str], dec: Decoder) -> dict:
    """(1, 4 + C, N) centre-size boxes and class scores -> the detection dict after per-class NMS."""
    from torchvision.ops import batched_nms, box_convert

    out = np.asarray(outputs[0])
    rows = 4 + dec.num_classes
    if out.ndim != 3 or out.shape[:2] != (1, rows):
        raise OnnxModelError(f"output {names[0]!r} has shape {_shape(out.shape)}; the yolo layout is (1, 4 + C, N) "
                             f"with C = {dec.num_classes} classes, i.e. (1, {rows}, N)")
    pred = torch.from_numpy(np.ascontiguousarray(out[0].T, dtype=np.float32))  # (N, 4 + C)
    scores, classes = pred[:, 4:].max(dim=1)  # (N,), (N,)
    keep = scores > dec.score_threshold
    boxes = box_convert(pred[keep, :4], "cxcywh", "xyxy")  # (M, 4)
    scores, classes = scores[keep], classes[keep]
    kept = batched_nms(boxes, scores, classes, dec.iou_threshold)  # indices, score descending
    return _detections(boxes[kept], classes[kept] + 1, scores[kept], dec)


_DECODERS = {"logits": decode_logits, "torchvision": decode_torchvision, "yolo": decode_yolo}


def decode(outputs: list, names: list[str], dec: Decoder):
    """The raw session outputs (arrays, in graph order, named ``names``) -> the task's model
    output: (1, C) logits or a detection dict (see the module docstring)."""
    return _DECODERS[dec.format](outputs, names, dec)


class ImportedRunner:
    """An imported ONNX model at a fixed thread count: (1, C, H, W) float32 tensor -> decoded
    output. ``model``: the .onnx file's path or bytes. Spinning is off by default: between
    frames the cores belong to whoever else runs on them (as the bank's other sessions)."""

    def __init__(self, model, decoder: Decoder, threads: int, allow_spinning: bool = False) -> None:
        import onnxruntime as ort

        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        try:
            self.session = ort.InferenceSession(model, session_options(threads, allow_spinning),
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
            raise OnnxModelError(f"ONNX Runtime cannot load the model ({str(exc).splitlines()[0]})") from None
        self.input_name, self.input_shape, self.batched = input_layout(self.session)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.decoder, self.threads = decoder, threads

    def raw(self, x: torch.Tensor) -> list:
        """The session's outputs (arrays, graph order) for ``x`` (1, C, H, W)."""
        if tuple(x.shape) != self.input_shape:
            raise ValueError(f"input {self.input_name!r} is {self.input_shape}, got {tuple(x.shape)}")
        arr = np.ascontiguousarray(x.detach().to(torch.float32).numpy())  # (1, C, H, W)
        return self.session.run(None, {self.input_name: arr if self.batched else arr[0]})

    def __call__(self, x: torch.Tensor):
        return decode(self.raw(x), self.output_names, self.decoder)
