"""`vip-perception fuzz`: property-based fuzzing of image conversion and preprocessing
(``ros.tools.fuzz``) with the real sensor_msgs message classes; prints the tally, writes the
JSON report. Exit code 1 on any escape."""
from __future__ import annotations

import argparse
import os
import sys
import time

from vip_perception.jsonfile import write_json
from vip_perception.machine import machine_info
from vip_perception.ros.tools.fuzz import bank_preprocess, fuzz
from vip_perception.share import SHIPPED_BANKS_HELP, bank_directory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", type=int, default=10000, help="generated messages (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed (default 0)")
    parser.add_argument("--json", default=None, metavar="PATH", help="write the report here")
    parser.add_argument("--bank", default=None, type=bank_directory,
                        help=f"also run this bank's preprocess: a directory, {SHIPPED_BANKS_HELP} "
                             "(default: the shipped bank when present; 'none' to skip)")
    parser.add_argument("--stand-in-messages", action="store_true",
                        help="duck-typed stand-ins for every case instead of the real "
                             "sensor_msgs Image / CompressedImage (for an environment without "
                             "sensor_msgs)")


def _shown(path: str | None) -> str | None:
    """``path`` relative to the working directory when inside it (records stay portable)."""
    if path is None:
        return None
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def run(args) -> int:
    import cv2

    from vip_perception.ros import convert

    # libjpeg/libpng complaints about each broken payload are expected here, not news.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    pre, bank_path = bank_preprocess(args.bank)
    t0 = time.perf_counter()
    tally = fuzz(args.cases, args.seed, pre, real=not args.stand_in_messages)
    elapsed = time.perf_counter() - t0
    report = {"command": "vip-perception fuzz " + " ".join(sys.argv[2:]),
              "seed": args.seed, "seconds": round(elapsed, 1),
              "backend": convert.BACKEND, "opencv": cv2.__version__,
              "python": machine_info()["python"], "bank_preprocess": _shown(bank_path),
              "real_messages": not args.stand_in_messages, **tally.report()}
    if args.json:
        write_json(args.json, report)
    print(f"fuzz: {report['cases']} cases in {elapsed:.1f} s, escapes {report['escapes']}, "
          f"converted {report['converted_ok']}, rejected {report['rejected']}; messages "
          + ", ".join(f"{k} {v}" for k, v in report["message_classes"].items()))
    for reason, n in report["reasons"].items():
        print(f"  {reason:18s} {n}")
    for e in report["escape_examples"][:5]:
        print(f"  ESCAPE at {e['stage']}: {e['error']}  case {e['case']}")
    return 0 if report["escapes"] == 0 else 1
