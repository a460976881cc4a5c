#!/usr/bin/env python3
"""Inference time by the thread that runs it: the node's old layout against its serving thread.

    python scripts/measure_inference_thread.py [--bank config/banks/station]
        [--members vgg_xl,vgg_xl.vip01] [--runs 100] [--gap-ms 25]
        [--out benchmarks/inference_thread.json]

Each layout runs in a fresh Python process (OpenMP thread pools last as long as the threads
that started them), loads the bank, and times each member at 1 and 2 intra-op threads, one
run every ``--gap-ms`` (25 ms: a 30 fps frame period less the model time), after 5 warm-up runs:

- ``main_thread``: load and run on the main thread (the deadline harness and ``bank profile``);
- ``other_thread``: load on the main thread, run on a second thread (the node before commit
  that added ``runtime.serving_thread``: bank and calibration on the main thread, frames on a
  worker);
- ``serving_thread``: load and run on a ``ServingThread`` while the main thread only waits
  (the node now).

Per layout, member and thread count: p50 / p95 model ms, and the process's CPU time over wall
time at the median (about 1 when only one core worked, about 2 when both did). The JSON names
the machine and torch's parallel backend.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LAYOUTS = ("main_thread", "other_thread", "serving_thread")


def _time(loaded: tuple, names: list[str], runs: int, gap_s: float) -> dict:
    """{"member@threads": p50/p95 ms and CPU over wall} for ``loaded`` = (members by name, input)."""
    import numpy as np

    from vip_perception.quantiles import percentile

    members, x = loaded
    out = {}
    for name in names:
        member = members[name]
        for threads in (1, 2):
            for _ in range(5):
                member.run(x, threads)
            wall, cpu = [], []
            for _ in range(runs):
                time.sleep(gap_s)
                t0, c0 = time.perf_counter(), time.process_time()
                member.run(x, threads)
                wall.append((time.perf_counter() - t0) * 1e3)
                cpu.append((time.process_time() - c0) * 1e3)
            ratio = np.array(cpu) / np.array(wall)
            out[f"{name}@{threads}"] = {"p50_ms": percentile(wall, 50), "p95_ms": percentile(wall, 95),
                                        "cpu_over_wall_p50": float(np.median(ratio))}
    return out


def run_layout(layout: str, bank_path: str, names: list[str], runs: int, gap_s: float) -> dict:
    """Load the bank and time ``names`` as ``layout`` says (in this process)."""
    from vip_perception.bank import load_bank
    from vip_perception.runtime.serving_thread import ServingThread

    def load() -> tuple:
        import torch

        bank = load_bank(bank_path)
        s = bank.input_spec
        return {m.name: m for m in bank.members}, torch.zeros((1, s.channels, s.height, s.width))

    if layout == "main_thread":
        return _time(load(), names, runs, gap_s)
    if layout == "other_thread":
        loaded, box = load(), {}
        worker = threading.Thread(target=lambda: box.update(r=_time(loaded, names, runs, gap_s)))
        worker.start()
        worker.join()
        return box["r"]
    serving = ServingThread()
    return serving.call(lambda: _time(load(), names, runs, gap_s))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bank", default="config/banks/station")
    ap.add_argument("--members", default="vgg_xl,vgg_xl.vip01")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--gap-ms", type=float, default=25.0)
    ap.add_argument("--out", default="benchmarks/inference_thread.json")
    ap.add_argument("--layout", choices=LAYOUTS, help=argparse.SUPPRESS)  # one layout, in this process
    args = ap.parse_args(argv)
    names = [n for n in args.members.split(",") if n]
    if args.layout:
        print(json.dumps(run_layout(args.layout, args.bank, names, args.runs, args.gap_ms / 1e3)))
        return 0
    import torch

    from vip_perception.jsonfile import write_json
    from vip_perception.machine import machine_info

    layouts = {}
    for layout in LAYOUTS:
        cmd = [sys.executable, __file__, "--layout", layout, "--bank", args.bank, "--members", args.members,
               "--runs", str(args.runs), "--gap-ms", str(args.gap_ms)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        layouts[layout] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(layout, layouts[layout], flush=True)
    parallel = torch.__config__.parallel_info().splitlines()
    write_json(args.out, {"command": " ".join(["python scripts/measure_inference_thread.py", *sys.argv[1:]]),
                          "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
                          "machine": machine_info(), "parallel_backend": [ln.strip() for ln in parallel[:4]],
                          "bank": args.bank, "runs": args.runs, "gap_ms": args.gap_ms, "layouts": layouts})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
