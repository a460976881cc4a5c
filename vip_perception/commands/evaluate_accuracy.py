"""`vip-perception evaluate accuracy --bank BANK --data DIR`: top-1 (ImageFolder) or COCO mAP (COCO
directory) and batch-1 latency of each member on a labelled split (``evaluation.accuracy``);
prints a table and writes JSON."""
from __future__ import annotations

import argparse
import sys

from vip_perception.jsonfile import write_json
from vip_perception.share import SHIPPED_BANKS_HELP, bank_directory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bank", required=True, type=bank_directory,
                        help=f"bank directory (manifest.json), {SHIPPED_BANKS_HELP}")
    parser.add_argument("--data", required=True, help="ImageFolder or COCO directory (see README)")
    parser.add_argument("--split", default="test", help="split to score: train, val or test (default test)")
    parser.add_argument("--json", default=None, help="write the per-member results here")
    parser.add_argument("--limit", type=int, default=0, help="score N images of the split, drawn with --seed (0: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for inference and latency")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"],
                        help="serve the members on this backend, as the node would")
    parser.add_argument("--seed", type=int, default=None,
                        help="data without its own splits: the split seed (default: the bank's build recipe, else 0)")
    parser.add_argument("--val-fraction", type=float, default=None,
                        help="data without its own splits: fraction held out for val (default: the build's, else 0.15)")
    parser.add_argument("--test-fraction", type=float, default=None,
                        help="data without its own splits: fraction held out for test (default: the build's, "
                             "else 0.15)")
    parser.add_argument("--frontier", action="store_true",
                        help="score every member whose weights ship (the Pareto front), not only the served ones")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar")


def run(args) -> int:
    from vip_perception.bank import load_bank
    from vip_perception.bank.records import BankError
    from vip_perception.data.user_data import detect_dataset
    from vip_perception.evaluation.accuracy import build_split_settings, evaluate_accuracy

    if args.threads < 1 or args.limit < 0:
        print("error: --threads must be >= 1 and --limit >= 0", file=sys.stderr)
        return 2
    try:
        bank = load_bank(args.bank, backend=args.backend, frontier=args.frontier)
        split = build_split_settings(bank)
        split.update({k: v for k in split if (v := getattr(args, k)) is not None})
        info = detect_dataset(args.data, bank.task, split["seed"], split["val_fraction"], split["test_fraction"])
        result = evaluate_accuracy(bank, info, args.split, args.limit, args.threads, split["seed"],
                                   not args.no_progress)
    except (BankError, ValueError) as exc:  # BankError, DatasetError: one line naming the file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_table(result)
    if args.json:
        from vip_perception.bank.provenance import portable_command

        argv = sys.argv[3:] if sys.argv[1:3] == ["evaluate", "accuracy"] else []
        if argv:  # the command line that made the record, paths repository-relative
            result = {"command": "vip-perception evaluate accuracy "
                      + portable_command(argv, ("--bank", "--data", "--json")), **result}
        write_json(args.json, result)
    return 0


def _print_table(result: dict) -> None:
    coco = result["format"] == "coco"
    head = f"{'mAP@.5':>7s} {'mAP':>7s}" if coco else f"{'top-1':>7s}"
    print(f"{result['name']} on {result['data']} ({result['split']}, {result['images']} images, "
          f"{result['threads']} thread(s)); skipped: {result['skipped'] or 'none'}")
    print(f"{'member':12s} {head} {'p50 ms':>8s} {'p95 ms':>8s} {'speedup':>8s} {'loss':>8s}  vip layers")
    for r in result["members"]:
        score = f"{r['map50']:7.4f} {r['map']:7.4f}" if coco else f"{r['top1']:7.4f}"
        sp = f"{r['speedup']:.2f}x" if "speedup" in r else "-"
        loss = r.get(f"{result['metric']}_loss")
        loss = f"{loss:+.4f}" if loss is not None else "-"
        p50, p95 = r["latency_ms_p50"], r["latency_ms_p95"]
        lat = f"{p50:8.2f} {p95:8.2f}" if p50 is not None else f"{'-':>8s} {'-':>8s}"
        print(f"{r['name']:12s} {score} {lat} {sp:>8s} {loss:>8s}  {','.join(r['vip_layers']) or '-'}")
