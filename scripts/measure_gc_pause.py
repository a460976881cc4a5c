#!/usr/bin/env python3
"""How long a full garbage collection takes in a process serving a bank, without and with the
start-up objects frozen (``vip_perception.runtime.collector.freeze_start_up``).

    python scripts/measure_gc_pause.py [--bank config/banks/station] [--repeats 7]
        [--out benchmarks/gc_pause.json]

Why: a full (generation 2) collection walks every tracked object and runs inside whichever
frame it lands in. The script imports what the node imports, loads the bank, counts the
objects the collector tracks, times ``--repeats`` full collections (``gc.collect()``), then
freezes the start-up objects and times as many again. The JSON names the machine and gives
both counts and the collection times in ms (median and max).
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402,F401  (what the node imports before its first frame)

from vip_perception.bank import load_bank  # noqa: E402
from vip_perception.jsonfile import write_json  # noqa: E402
from vip_perception.machine import machine_info  # noqa: E402
from vip_perception.runtime.collector import freeze_start_up  # noqa: E402
from vip_perception.runtime.engine import Engine, EngineConfig  # noqa: E402


def _collections(repeats: int) -> dict:
    ms = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        gc.collect()
        ms.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(ms), "max_ms": max(ms), "runs_ms": ms}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bank", default="config/banks/station")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default="benchmarks/gc_pause.json")
    args = ap.parse_args()
    tracked_after_imports = len(gc.get_objects())
    bank = load_bank(args.bank)
    engine = Engine(bank, EngineConfig(deadline_ms=33.0))
    engine.warm_up()
    tracked = len(gc.get_objects())
    default = _collections(args.repeats)
    frozen = freeze_start_up()
    after = _collections(args.repeats)
    gc.unfreeze()
    report = {
        "command": "python " + " ".join(["scripts/measure_gc_pause.py", *sys.argv[1:]]),
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "python": sys.version.split()[0],
        "bank": args.bank,
        "tracked_objects_after_imports": tracked_after_imports,
        "tracked_objects_with_bank": tracked,
        "frozen_objects": frozen,
        "full_collection": default,
        "full_collection_frozen": after,
    }
    write_json(args.out, report)
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
