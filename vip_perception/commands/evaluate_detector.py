"""`vip-perception evaluate detector --bank DIR --json PATH`: mAP and latency of each member of
a detector bank (``evaluation.detector``); prints a table, writes JSON and a plot."""
from __future__ import annotations

import argparse
import sys

from vip_perception.evaluation.detector import evaluate_bank, plot
from vip_perception.jsonfile import write_json
from vip_perception.share import SHIPPED_BANKS_HELP, bank_directory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bank", required=True, type=bank_directory,
                        help=f"detector bank directory (manifest.json), {SHIPPED_BANKS_HELP}")
    parser.add_argument("--json", default=None, help="write the per-member results here")
    parser.add_argument("--scenes", type=int, default=0, help="test scenes to score (default: the build's test_scenes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for inference and latency")
    parser.add_argument("--runs", type=int, default=60,
                        help="timed batch-1 runs per member (0 = use the manifest's profile)")
    parser.add_argument("--rounds", type=int, default=6, help="interleaving rounds for the latency runs")
    parser.add_argument("--plot", default=None, help="also write a latency vs mAP@0.5 plot (PNG) here")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars")


def run(args) -> int:
    from vip_perception.bank import load_bank
    from vip_perception.bank.records import BankError

    if args.threads < 1 or args.runs < 0 or args.scenes < 0:
        print("error: --threads must be >= 1, --runs and --scenes >= 0", file=sys.stderr)
        return 2
    try:
        bank = load_bank(args.bank)
        if bank.task != "detection":
            raise BankError(f"{args.bank}: a {bank.task} bank; `evaluate detector` scores detection banks")
    except BankError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = evaluate_bank(bank, args.scenes, args.threads, args.runs, args.rounds, not args.no_progress)
    print(f"{'member':10s} {'mAP@.5':>7s} {'mAP':>7s} {'p50 ms':>8s} {'bb ms':>8s} {'speedup':>8s} "
          f"{'loss@.5':>8s}  vip layers")
    for r in result["members"]:
        sp = f"{r['speedup']:.2f}x" if "speedup" in r else "-"
        loss = f"{r['map50_loss']:+.4f}" if "map50_loss" in r else "-"
        print(f"{r['name']:10s} {r['map50']:7.4f} {r['map']:7.4f} {r['latency_ms_p50']:8.2f} "
              f"{r['backbone_latency_ms_p50']:8.2f} {sp:>8s} {loss:>8s}  {','.join(r['vip_layers']) or '-'}")
    if args.json:
        write_json(args.json, result)
    if args.plot:
        plot(result, args.plot)
    return 0
