"""`vip-perception bench node`: per-frame node overhead, end-to-end latency and delivery
between two processes (``ros.tools.node_bench``); prints a summary and writes the JSON record."""
from __future__ import annotations

import argparse

from vip_perception.jsonfile import write_json
from vip_perception.ros.tools.node_bench import NodeBenchOptions, format_result, node_benchmark
from vip_perception.share import SHIPPED_BANKS_HELP, bank_directory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--bank", default=None, type=bank_directory,
                        help=f"bank directory (default: the shipped one), {SHIPPED_BANKS_HELP}")
    parser.add_argument("--frames", type=int, default=300, help="frames for the overhead run (default 300)")
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate for the overhead run, Hz (default 30)")
    parser.add_argument("--e2e-frames", type=int, default=150, help="frames for the end-to-end run (default 150)")
    parser.add_argument("--e2e-rate", type=float, default=15.0, help="camera rate for the end-to-end run (default 15)")
    parser.add_argument("--delivery-frames", type=int, default=90, help="frames per delivery run (default 90)")
    parser.add_argument("--delivery-rate", type=float, default=30.0, help="rate of the delivery runs (default 30)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)


def run(args: argparse.Namespace) -> int:
    result = node_benchmark(NodeBenchOptions(
        bank=args.bank, frames=args.frames, rate=args.rate, e2e_frames=args.e2e_frames,
        e2e_rate=args.e2e_rate, delivery_frames=args.delivery_frames, delivery_rate=args.delivery_rate,
        width=args.width, height=args.height))
    print(format_result(result))
    if args.json:
        write_json(args.json, result, indent=2)
        print(f"wrote {args.json}")
    return 0
