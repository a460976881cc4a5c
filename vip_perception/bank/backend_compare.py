"""`vip-perception bank compare-backends DIR`: a bank's members on PyTorch and ONNX Runtime side
by side: the same predictions on the whole test split, and each backend's batch-1 latency.

Why a command: a backend is only worth selecting in the bank, the engine and the node if it
changes nothing but time. Predictions are compared image by image at batch 1 (the serving
shape) on the Fashion-MNIST test split; latencies are measured interleaved in one run
(``bank.profile.profile_models``: both backends meet the same machine noise), back to back
and, with ``--gap-ms``, paced like a camera stream.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bank", help="classification bank directory (manifest.json)")
    parser.add_argument("--backend", default="onnxruntime", choices=("onnxruntime",), help="backend compared with torch")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--images", type=int, default=0, help="test images to compare (default 0 = all)")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per member, backend and thread count")
    parser.add_argument("--rounds", type=int, default=10, help="interleaving rounds")
    parser.add_argument("--gap-ms", default="0", help="comma list of idle gaps before each timed run (default 0)")
    parser.add_argument("--data-root", default=None, help="Fashion-MNIST IDX directory (default: Debian's)")
    parser.add_argument("--json", default=None, help="write the comparison here")
    parser.add_argument("--no-progress", action="store_true")


def compare_predictions(bank, backend_runners: dict, images, threads: int) -> dict:
    """Per member: images whose argmax differs between torch and the backend, and the largest
    logit difference. ``images``: (N, H, W[, C]) uint8."""
    import torch

    out = {}
    for m in bank.members:
        ort = backend_runners[m.name][threads]
        differ, worst = 0, 0.0
        with torch.inference_mode():
            for im in images:
                x = bank.preprocess(im)  # (1, C, H, W)
                a, b = m.run(x, threads), ort(x)  # (1, classes)
                differ += int(a.argmax(1) != b.argmax(1))
                worst = max(worst, float((a - b).abs().max()))
        out[m.name] = {"images": len(images), "predictions_differ": differ, "max_abs_logit_diff": worst}
    return out


def compare(path: str, backend: str, threads: list[int], n_images: int, runs: int, rounds: int,
            gaps_ms: list[float], data_root: str | None, progress: bool) -> dict:
    from ..data.fashion_mnist import DEFAULT_ROOT, load_fashion_mnist
    from .bank import backend_runners, build_member_module, load_bank, load_weights
    from .profile import machine_info, profile_models

    bank = load_bank(path)
    if bank.task != "classification":
        from .records import BankError

        raise BankError(f"{path}: compare-backends compares classification banks (this is a {bank.task} bank)")
    runners = {}
    for m in bank.members:
        fpath = os.path.join(bank.path, m.file)
        plain = load_weights(build_member_module(m.spec, m.vip_layers, bank.task), fpath)
        runners[m.name] = backend_runners(backend, plain, bank.manifest["input"], threads, fpath)
    images = load_fashion_mnist("test", data_root or DEFAULT_ROOT).images
    if n_images:
        images = images[:n_images]
    if images.shape[-1] == 1:
        images = images[..., 0]  # (N, 28, 28)
    preds = compare_predictions(bank, runners, images, threads[0])
    s = bank.input_spec
    latency = {}
    for gap in gaps_ms:
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
        latency[f"gap_{gap:g}ms"] = rows
    return {"bank": os.path.abspath(path), "backend": backend, "threads": threads, "runs": runs,
            "machine": machine_info(), "predictions": preds, "latency": latency,
            "all_predictions_identical": all(p["predictions_differ"] == 0 for p in preds.values()),
            "command": "vip-perception " + " ".join(sys.argv[1:])}


def run(args) -> int:
    from .records import BankError

    try:
        threads = sorted({int(t) for t in args.threads.split(",") if t.strip()})
        gaps = [float(g) for g in args.gap_ms.split(",") if g.strip()]
    except ValueError:
        print("error: --threads and --gap-ms take comma-separated numbers", file=sys.stderr)
        return 2
    if not threads or min(threads) < 1 or not gaps or min(gaps) < 0 or args.runs < 1 or args.images < 0:
        print("error: --threads must list positive integers, --gap-ms values >= 0, --runs >= 1", file=sys.stderr)
        return 2
    try:
        rec = compare(args.bank, args.backend, threads, args.images, args.runs, args.rounds, gaps,
                      args.data_root, not args.no_progress)
    except BankError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, p in rec["predictions"].items():
        print(f"{name:<14} {p['predictions_differ']} of {p['images']} predictions differ "
              f"(max |logit diff| {p['max_abs_logit_diff']:.1e})")
    for gap, rows in rec["latency"].items():
        for name, per_t in rows.items():
            cells = "  ".join(f"{t}t torch {r['torch_p50_ms']:.3f} / {rec['backend']} {r[rec['backend'] + '_p50_ms']:.3f} ms "
                              f"({r['p50_speedup']:.2f}x)" for t, r in per_t.items())
            print(f"{gap:<10} {name:<14} {cells}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(rec, fh, indent=1)
            fh.write("\n")
    return 0
