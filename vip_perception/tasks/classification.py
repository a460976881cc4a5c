"""Classification: a CNN from a ``ModelSpec``, logits -> (class, softmax score), top-1 accuracy."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import Task


def top_class(logits) -> tuple[int, float]:
    """(argmax, its softmax probability) of (1, num_classes) logits (a torch tensor or array).

    In NumPy: cheaper than torch ops on the cold core a frame meets after the stream's idle gap.
    """
    a = np.asarray(logits.detach().float().numpy() if hasattr(logits, "detach") else logits,
                   dtype=np.float32)[0]  # (num_classes,)
    k = int(a.argmax())
    return k, float(1.0 / np.exp(a - a[k]).sum())


class ClassificationTask(Task):
    name = "classification"
    output_kind = "classification"
    backends = ("torch", "onnxruntime")
    accuracy_name = "top-1"

    def build_member(self, spec, vip_layers: Sequence[str]):
        """``ModelSpec`` (or its dict) -> classifier in eval mode, ViP on ``vip_layers``."""
        from ..models import ModelSpec, build_model
        from ..vip import apply_vip

        model = build_model(spec if isinstance(spec, ModelSpec) else ModelSpec.from_dict(spec))
        if vip_layers:
            model = apply_vip(model, list(vip_layers))
        return model.eval()

    def postprocess(self, output, class_names: Sequence[str], input_hw: tuple[int, int],
                    roi: tuple[int, int, int, int]) -> dict:
        """(1, num_classes) logits -> {"class_id", "class_name", "score"}; a class index past
        ``class_names`` is named by its number. The roi does not change a class."""
        class_id, score = top_class(output)
        class_name = class_names[class_id] if class_id < len(class_names) else str(class_id)
        return {"class_id": class_id, "class_name": class_name, "score": score}

    def evaluate_accuracy(self, model, images, labels, batch_size: int = 500) -> float:
        """Top-1 accuracy in [0, 1] of ``model`` on preprocessed ``images`` (N, C, H, W) float32
        with integer ``labels`` (N,); 0.0 for an empty split."""
        import torch

        model.eval()
        correct = 0
        with torch.inference_mode():
            for i in range(0, images.shape[0], batch_size):
                logits = model(images[i:i + batch_size])  # (B, num_classes)
                correct += int((logits.argmax(1) == labels[i:i + batch_size]).sum())
        return correct / max(1, images.shape[0])


TASK = ClassificationTask()
