"""A bank's members on PyTorch and another backend side by side: the same predictions on the
whole test split, and each backend's batch-1 latency (``vip-perception bank compare-backends``).

A backend is only worth selecting if it changes nothing but time. Predictions are compared
image by image at batch 1 (the serving shape) on the Fashion-MNIST test split; latencies are
measured interleaved in one run (``bank.profile.profile_models``: both backends meet the same
machine noise), back to back and, with gaps, paced like a camera stream.
"""
from __future__ import annotations

import os

from ..data.fashion_mnist import load_fashion_mnist
from ..machine import machine_info
from .bank import backend_runners, load_bank, load_weights, require_backend
from .profile import profile_models

__all__ = ["compare", "compare_predictions"]


def compare_predictions(bank, backend_runners: dict, images, threads: int) -> dict:
    """Per member: {"images", "predictions_differ" (images whose argmax differs between torch
    and the backend), "max_abs_logit_diff"}. ``images``: (N, H, W[, C]) uint8;
    ``backend_runners``: member name -> thread count -> callable."""
    out = {}
    for m in bank.members:
        other = backend_runners[m.name][threads]
        differ, worst = 0, 0.0
        for im in images:
            x = bank.preprocess(im)  # (1, C, H, W)
            a, b = m.run(x, threads), other(x)  # (1, classes)
            differ += int(a.argmax(1) != b.argmax(1))
            worst = max(worst, float((a - b).abs().max()))
        out[m.name] = {"images": len(images), "predictions_differ": differ, "max_abs_logit_diff": worst}
    return out


def _latency_rows(bank, runners: dict, backend: str, threads: list[int], runs: int, rounds: int,
                  gap: float, progress: bool) -> dict:
    """member -> thread count -> torch and backend p50/p95 (ms) and the p50 speed-up, at ``gap``."""
    s = bank.input_spec
    models = {}
    for m in bank.members:
        models[f"{m.name}|torch"] = {t: (lambda x, m=m, t=t: m.run(x, t)) for t in threads}
        models[f"{m.name}|{backend}"] = runners[m.name]
    prof = profile_models(models, (1, s.channels, s.height, s.width), threads, runs, warmup=10,
                          rounds=rounds, progress=progress, gap_ms=gap)
    rows = {}
    for m in bank.members:
        for t in threads:
            a, b = prof[f"{m.name}|torch"][t], prof[f"{m.name}|{backend}"][t]
            rows.setdefault(m.name, {})[str(t)] = {
                "torch_p50_ms": a.p50, "torch_p95_ms": a.p95, f"{backend}_p50_ms": b.p50,
                f"{backend}_p95_ms": b.p95, "p50_speedup": a.p50 / b.p50}
    return rows


def compare(path: str, backend: str, threads: list[int], n_images: int, runs: int, rounds: int,
            gaps_ms: list[float], data_root: str | None, progress: bool) -> dict:
    """The comparison record of the bank in ``path``: predictions on the first ``n_images`` test
    images (0 = all) at ``threads[0]``, latency per gap in ``gaps_ms``, the machine. BankError
    when the bank's task cannot run on ``backend``."""
    bank = load_bank(path)
    task = require_backend(bank.task, backend, path)
    runners = {}
    for m in bank.members:
        fpath = os.path.join(bank.path, m.file)
        plain = load_weights(task.build_member(m.spec, m.vip_layers), fpath)
        runners[m.name] = backend_runners(backend, plain, bank.manifest["input"], threads, fpath)
    images = load_fashion_mnist("test", data_root or None).images
    if n_images:
        images = images[:n_images]
    if images.shape[-1] == 1:
        images = images[..., 0]  # (N, 28, 28)
    preds = compare_predictions(bank, runners, images, threads[0])
    latency = {f"gap_{gap:g}ms": _latency_rows(bank, runners, backend, threads, runs, rounds, gap, progress)
               for gap in gaps_ms}
    return {"bank": os.path.abspath(path), "backend": backend, "threads": threads, "runs": runs,
            "machine": machine_info(), "predictions": preds, "latency": latency,
            "all_predictions_identical": all(p["predictions_differ"] == 0 for p in preds.values())}
