"""`vip-perception evaluate deadline`: replay a timed Fashion-MNIST frame stream under CPU load
and compare deadline policies (``evaluation.deadline``); prints a summary, writes JSON and a plot."""
from __future__ import annotations

import argparse
import sys

from vip_perception.backends import BACKENDS
from vip_perception.evaluation.deadline import EvalConfig, evaluate
from vip_perception.evaluation.report import plot, summary
from vip_perception.jsonfile import write_json
from vip_perception.runtime.selector import NO_FIT_POLICIES, QUANTILES
from vip_perception.share import SHIPPED_BANKS_HELP, bank_directory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bank", required=True, type=bank_directory,
                        help=f"bank directory (holds manifest.json), {SHIPPED_BANKS_HELP}")
    parser.add_argument("--deadline-scale", type=float, default=1.2,
                        help="deadline = S x the most accurate member's p95 at the bank's nominal thread count, "
                             "measured at start")
    parser.add_argument("--deadline-ms", type=float, default=None,
                        help="a fixed deadline in ms instead of --deadline-scale (to compare backends on one scenario)")
    parser.add_argument("--background-load", type=int, default=1, help="number of busy background processes")
    parser.add_argument("--load-pattern", choices=("constant", "step"), default="constant",
                        help="load for the whole run, or only for the middle third of the frames")
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--json", dest="json_path", default=None, help="write the results here")
    parser.add_argument("--plot", default=None, help="write the over-frames plot here (PNG)")
    parser.add_argument("--margin-ms", type=float, default=0.2,
                        help="engine margin after the model (post-processing); default 0.2")
    parser.add_argument("--quantile", choices=QUANTILES, default="p95")
    parser.add_argument("--on-no-fit", choices=NO_FIT_POLICIES, default="fastest")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-runs", type=int, default=50,
                        help="runs to re-measure the reference member's p95 at start")
    parser.add_argument("--data-root", default=None,
                        help="Fashion-MNIST IDX directory (default: $VIP_FASHION_MNIST_DIR, else Debian's)")
    parser.add_argument("--backend", default="torch", choices=BACKENDS,
                        help="execution backend of every policy (the bank needs a profile for it)")
    parser.add_argument("--gap-ms", type=float, default=10.0,
                        help="idle time before every measured run (reference and measurement pass), so they run "
                             "as cold as a frame after the stream's idle gap does (default 10; >= 3 saturates here)")
    parser.add_argument("--settle-ms", type=float, default=250.0,
                        help="idle time before the next frame after a measurement pass that ran an option needing "
                             "cores the background load holds; such runs slow the runs after them for 100-200 ms "
                             "(default 250)")
    parser.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=True,
                        help="before the stream, run every option a few times (paced by --gap-ms) and seed the "
                             "adaptive engine's slowdown with this machine's speed, as the node's calibrate_on_start "
                             "does (default: on)")
    parser.add_argument("--sense-cpu-load", action=argparse.BooleanOptionalAction, default=True,
                        help="the adaptive engine reads other processes' use of the cores and chooses no thread "
                             "count needing the ones they hold, as the node's sense_cpu_load does (default: on)")
    parser.add_argument("--calibration-budget-s", type=float, default=5.0,
                        help="at most this many seconds of calibration (default 5)")
    parser.add_argument("--slowdown-window", type=int, default=None,
                        help="the adaptive engine's slowdown window in observations (default: the runtime's)")
    parser.add_argument("--slowdown-rank", type=int, default=None,
                        help="which largest ratio of a full window is the factor, 1 = the largest "
                             "(default: the runtime's)")


def run(args: argparse.Namespace) -> int:
    from vip_perception.bank import BankError
    from vip_perception.runtime.collector import freeze_start_up

    cfg = EvalConfig(
        bank=args.bank, deadline_scale=args.deadline_scale, background_load=args.background_load,
        load_pattern=args.load_pattern, frames=args.frames, fps=args.fps, margin_ms=args.margin_ms,
        quantile=args.quantile, on_no_fit=args.on_no_fit, seed=args.seed,
        reference_runs=args.reference_runs, data_root=args.data_root, backend=args.backend, gap_ms=args.gap_ms,
        deadline_ms=args.deadline_ms, calibrate=args.calibrate, calibration_budget_s=args.calibration_budget_s,
        sense_cpu_load=args.sense_cpu_load, settle_ms=args.settle_ms,
        slowdown_window=args.slowdown_window, slowdown_rank=args.slowdown_rank,
    )
    freeze_start_up()  # as the node does: no 90 ms full garbage collection inside a measured run
    try:
        report = evaluate(cfg)
    except (ValueError, BankError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report["scenario"]["command"] = "vip-perception " + " ".join(sys.argv[1:]) if sys.argv else ""
    if args.json_path:
        write_json(args.json_path, report)
    if args.plot:
        plot(report, args.plot)
    print(summary(report))
    return 0
