#!/usr/bin/env python3
"""Preprocessing time beside a busy process: the shipped path against the one it replaced.

    python scripts/measure_preprocess_load.py [--bank config/banks/station] [--frames 400]
        [--out benchmarks/preprocess_under_load.json]

A station-camera roi (480x480 RGB, random pixels, as the node crops it from a 640x480 frame) is
preprocessed for the station bank (64x64 grey) once every ``--gap-ms`` (20 ms: frames are
paced), interleaving two implementations run for run, first on a quiet machine and then with
one busy process (a Python spin loop) started beside them:

- ``shipped``: ``Bank.preprocess`` (grey before averaging, the area products on one BLAS thread);
- ``numpy_default_threads``: the formulation it replaced, written out here: three RGB planes
  averaged with the same area weights at NumPy's default BLAS thread count, then made grey.

Both give the same tensor (checked at the start, within float32 rounding). The JSON names the
machine, the BLAS library and its default thread count, and per phase and implementation the
p50 / p90 / p99 / max in ms and the number of runs over 10 ms.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_info

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from vip_perception.bank import load_bank  # noqa: E402
from vip_perception.bank.bank import _GREY, area_weights  # noqa: E402
from vip_perception.machine import machine_info  # noqa: E402
from vip_perception.quantiles import percentile  # noqa: E402


def numpy_default_threads(bank, image: np.ndarray) -> torch.Tensor:
    """The replaced formulation: per-plane area products at NumPy's default BLAS threads."""
    s = bank.input_spec
    ry, rx_t = area_weights(image.shape[0], s.height), area_weights(image.shape[1], s.width).T
    out = np.stack([ry @ image[:, :, c].astype(np.float32) @ rx_t for c in range(3)])
    x = np.tensordot(_GREY, out, axes=1)[None].astype(np.float32)  # (1, H, W)
    scale, shift = bank._affine
    return torch.from_numpy(x * scale + shift).unsqueeze(0)


def _stats(ms: list[float]) -> dict:
    return {"runs": len(ms), "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99), "max_ms": max(ms), "over_10ms": sum(v > 10.0 for v in ms)}


def _phase(bank, image, frames: int, gap_s: float) -> dict:
    impls = {"shipped": bank.preprocess, "numpy_default_threads": lambda im: numpy_default_threads(bank, im)}
    times = {k: [] for k in impls}
    for i in range(frames):
        for name in (list(impls) if i % 2 == 0 else list(impls)[::-1]):  # alternate who goes first
            time.sleep(gap_s)
            t0 = time.perf_counter()
            impls[name](image)
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {k: _stats(v) for k, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bank", default="config/banks/station")
    ap.add_argument("--frames", type=int, default=400)
    ap.add_argument("--gap-ms", type=float, default=20.0)
    ap.add_argument("--out", default="benchmarks/preprocess_under_load.json")
    args = ap.parse_args()
    bank = load_bank(args.bank)
    image = np.random.default_rng(0).integers(0, 256, (480, 480, 3), dtype=np.uint8)
    a, b = bank.preprocess(image), numpy_default_threads(bank, image)
    if not torch.allclose(a, b, atol=1e-3):
        raise SystemExit(f"the two implementations disagree (max diff {float((a - b).abs().max()):.4g})")
    for _ in range(20):  # warm both paths
        bank.preprocess(image)
        numpy_default_threads(bank, image)
    gap_s = args.gap_ms / 1e3
    phases = {"quiet": _phase(bank, image, args.frames, gap_s)}
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # the spin loop is running
        phases["one_busy_process"] = _phase(bank, image, args.frames, gap_s)
    finally:
        busy.kill()
        busy.wait()
    blas = [{k: i.get(k) for k in ("internal_api", "version", "num_threads")}
            for i in threadpool_info() if i["user_api"] == "blas"]
    record = {
        "command": ("python scripts/measure_preprocess_load.py"
                    + ("" if args.frames == 400 else f" --frames {args.frames}") + f" --out {args.out}"),
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(), "numpy_blas": blas,
        "bank": Path(args.bank).name, "input": [480, 480, 3],
        "model_input": [bank.input_spec.channels, bank.input_spec.height, bank.input_spec.width],
        "gap_ms": args.gap_ms, "frames": args.frames, "phases": phases,
    }
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    for phase, impls in phases.items():
        for name, st in impls.items():
            print(f"{phase:17s} {name:22s} p50 {st['p50_ms']:.2f} p99 {st['p99_ms']:.2f} "
                  f"max {st['max_ms']:.2f} ms, {st['over_10ms']} over 10 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
