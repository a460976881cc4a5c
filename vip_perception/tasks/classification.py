"""Classification: a CNN from a ``ModelSpec``, logits -> the top-k (class, softmax score), best
first; top-1 accuracy."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import Task

DEFAULT_TOP_K = 5  # hypotheses reported per frame unless the caller asks for another k


def _logits(output) -> np.ndarray:
    """(1, num_classes) logits (a torch tensor or array) -> (num_classes,) float32."""
    return np.asarray(output.detach().float().numpy() if hasattr(output, "detach") else output,
                      dtype=np.float32)[0]


def top_class(logits) -> tuple[int, float]:
    """(argmax, its softmax probability) of (1, num_classes) logits (a torch tensor or array).

    In NumPy: cheaper than torch ops on the cold core a frame meets after the stream's idle gap.
    """
    a = _logits(logits)
    k = int(a.argmax())
    return k, float(1.0 / np.exp(a - a[k]).sum())


def top_classes(logits, k: int = DEFAULT_TOP_K) -> list[tuple[int, float]]:
    """The ``k`` most probable classes of (1, num_classes) logits, best first, as (index,
    softmax probability); all classes when there are at most ``k``. Equal scores keep the lower
    index first (which of several tied classes enters at the k-th place is unspecified).
    ValueError for k < 1.

    Cost: one exp over the classes (the softmax denominator) plus, when k < num_classes, an
    O(num_classes) ``argpartition`` and a sort of k values only (about 8 us for 10 classes, 21 us
    for 1000 at k=5, on an AVX-512 core shared with other work); so a 1000-class bank with k=5
    does not sort 1000 scores or build 1000 tuples per frame."""
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    a = _logits(logits)
    e = np.exp(a - a.max())  # (num_classes,) unnormalised softmax
    n = a.shape[0]
    idx = np.arange(n) if k >= n else np.argpartition(-a, k - 1)[:k]
    idx = idx[np.lexsort((idx, -a[idx]))]  # score descending, index ascending on ties
    return list(zip(idx.tolist(), (e[idx] / e.sum()).tolist()))


class ClassificationTask(Task):
    name = "classification"
    output_kind = "classification"
    backends = ("torch", "onnxruntime")
    accuracy_name = "top-1"
    ranks_top_k = True  # postprocess takes top_k: the engine passes its config's

    def build_member(self, spec, vip_layers: Sequence[str]):
        """``ModelSpec`` / ``TorchvisionSpec`` (or its dict) -> classifier in eval mode, ViP on
        ``vip_layers``."""
        from ..models import build_classifier
        from ..vip import apply_vip

        model = build_classifier(spec)
        if vip_layers:
            model = apply_vip(model, list(vip_layers))
        return model.eval()

    def postprocess(self, output, class_names: Sequence[str], input_hw: tuple[int, int],
                    roi: tuple[int, int, int, int], top_k: int = DEFAULT_TOP_K) -> dict:
        """(1, num_classes) logits -> {"class_id", "class_name", "score", "top"}: the best
        class and the ``top_k`` best (``top_classes``) as (class_id, class_name, probability),
        best first; a class index past ``class_names`` is named by its number. The roi does
        not change a class."""
        def name(i: int) -> str:
            return class_names[i] if i < len(class_names) else str(i)

        top = tuple((i, name(i), p) for i, p in top_classes(output, top_k))
        class_id, class_name, score = top[0]
        return {"class_id": class_id, "class_name": class_name, "score": score, "top": top}

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
