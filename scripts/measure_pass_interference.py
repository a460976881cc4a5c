#!/usr/bin/env python3
"""How long a 2-thread run beside a busy process disturbs the 1-thread runs after it.

    python scripts/measure_pass_interference.py [--bank config/banks/station]
        [--members vgg_xl,vgg_xl.vip01] [--rounds 100] [--waits-ms 10,50,100,200]
        [--out benchmarks/pass_interference.json]

Why: `evaluate deadline` measures every option on every frame. Beside one busy process on two
cores, a 2-thread option needs the core the process holds; this script measures whether such a
run slows the 1-thread runs that follow it, and for how long, which sets the harness's pass
order (thread counts ascending) and its ``--settle-ms``.

With the evaluation's background load on (``evaluation.load.BackgroundLoad(1)``), each round
runs, for every ``--waits-ms`` value W and every member M, in a shuffled order:
``M@2``, W ms idle, ``M@1`` timed (condition ``after_2_threads_W``); and, as the control,
``M@1``, W ms idle, ``M@1`` timed (``after_1_thread_W``). Every timed run follows the same
idle time as its control, so the only difference is the thread count of the run before it.
The JSON names the machine and, per member and condition, p50 / p90 / p99 / max in ms and the
share of runs more than 3 ms over the member's control p50 ("slow").
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from vip_perception.bank import load_bank  # noqa: E402
from vip_perception.evaluation.load import BackgroundLoad  # noqa: E402
from vip_perception.machine import machine_info  # noqa: E402
from vip_perception.quantiles import percentile  # noqa: E402

SLOW_MS = 3.0


def _timed(member, x, threads: int) -> float:
    t0 = time.perf_counter()
    member.run(x, threads)
    return (time.perf_counter() - t0) * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bank", default="config/banks/station")
    ap.add_argument("--members", default="vgg_xl,vgg_xl.vip01")
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--waits-ms", default="10,50,100,200")
    ap.add_argument("--out", default="benchmarks/pass_interference.json")
    args = ap.parse_args()
    bank = load_bank(args.bank)
    members = [bank.member(n) for n in args.members.split(",")]
    waits = [float(w) for w in args.waits_ms.split(",")]
    s = bank.input_spec
    x = torch.randn(1, s.channels, s.height, s.width, generator=torch.Generator().manual_seed(0))
    for m in members:
        for t in (1, 2):
            for _ in range(5):
                m.run(x, t)
    cells = [(m, w, before) for m in members for w in waits for before in (2, 1)]
    times: dict[tuple, list[float]] = {(m.name, w, before): [] for m, w, before in cells}
    shuffle = random.Random(0)
    with BackgroundLoad(1):
        for _ in range(args.rounds):
            shuffle.shuffle(cells)
            for m, w, before in cells:
                time.sleep(0.01)
                m.run(x, before)
                time.sleep(w / 1e3)
                times[(m.name, w, before)].append(_timed(m, x, 1))
    result = {}
    for m in members:
        control = percentile(times[(m.name, max(waits), 1)], 50)
        rows = {}
        for w in waits:
            for before in (2, 1):
                ms = times[(m.name, w, before)]
                rows[f"after_{before}_thread{'s' if before > 1 else ''}_{w:g}"] = {
                    "wait_ms": w, "before_threads": before, "runs": len(ms),
                    "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90), "p99_ms": percentile(ms, 99),
                    "max_ms": max(ms), "slow_share": sum(v > control + SLOW_MS for v in ms) / len(ms)}
        result[m.name] = {"control_p50_ms": control, "conditions": rows}
    record = {
        "command": ("python scripts/measure_pass_interference.py"
                    + ("" if args.rounds == 100 else f" --rounds {args.rounds}") + f" --out {args.out}"),
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(), "bank": Path(args.bank).name, "background_load": 1,
        "slow_ms": SLOW_MS, "rounds": args.rounds, "waits_ms": waits, "members": result,
    }
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    for name, r in result.items():
        for cond, st in r["conditions"].items():
            print(f"{name:14s} {cond:22s} p50 {st['p50_ms']:.2f} p90 {st['p90_ms']:.2f} "
                  f"p99 {st['p99_ms']:.2f} ms, slow {100 * st['slow_share']:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
