"""`vip-perception soak`: camera source + node over DDS for minutes with parameter changes and
bank swaps (``ros.tools.soak``); prints the summary, writes the JSON report and a plot.
Exit code 1 when a criterion failed."""
from __future__ import annotations

import argparse
import sys

from vip_perception.jsonfile import write_json
from vip_perception.ros.tools.soak import SoakOptions, format_report, plot, soak
from vip_perception.share import SHIPPED_BANKS_HELP, bank_directory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=30.0, help="run length (default 30)")
    parser.add_argument("--json", default=None, metavar="PATH", help="write the report here")
    parser.add_argument("--plot", default=None, metavar="PNG", help="RSS and latency over time")
    parser.add_argument("--bank", default=None, type=bank_directory,
                        help=f"bank directory (default: the shipped one), {SHIPPED_BANKS_HELP}")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--deadline-ms", type=float, default=50.0)
    parser.add_argument("--change-s", type=float, default=5.0,
                        help="seconds between parameter changes (default 5)")
    parser.add_argument("--swap-every", type=int, default=3,
                        help="every Nth change is a bank swap (default 3)")
    parser.add_argument("--sample-s", type=float, default=10.0,
                        help="seconds between RSS / fd samples (default 10)")
    parser.add_argument("--warmup-s", type=float, default=None,
                        help="RSS growth is measured from here (default: 120 s, at most a "
                             "quarter of the run)")
    parser.add_argument("--logs", default=None, help="directory for the processes' logs")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def command_line() -> str:
    """The command as typed, for the report."""
    args = sys.argv[2:] if sys.argv[1:2] == ["soak"] else sys.argv[1:]
    return "vip-perception soak " + " ".join(args)


def run(args: argparse.Namespace) -> int:
    report = soak(SoakOptions(
        minutes=args.minutes, bank=args.bank, fps=args.fps, width=args.width, height=args.height,
        deadline_ms=args.deadline_ms, change_s=args.change_s, swap_every=args.swap_every,
        sample_s=args.sample_s, warmup_s=args.warmup_s, logs=args.logs, quiet=args.quiet))
    report = {"command": command_line(), **report}
    if args.json:
        write_json(args.json, report)
    if args.plot:
        plot(report, args.plot)
    print(format_report(report))
    return 0 if report["passed"] else 1
