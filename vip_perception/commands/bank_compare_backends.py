"""`vip-perception bank compare-backends DIR`: a bank's members on PyTorch and ONNX Runtime side
by side: the same predictions on the whole test split, and each backend's batch-1 latency
(``bank.backend_compare``)."""
from __future__ import annotations

import argparse
import sys

from ..bank.backend_compare import compare
from ..bank.records import BankError
from ..jsonfile import write_json
from ..share import SHIPPED_BANKS_HELP, bank_directory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bank", type=bank_directory,
                        help=f"classification bank directory (manifest.json), {SHIPPED_BANKS_HELP}")
    parser.add_argument("--backend", default="onnxruntime", choices=("onnxruntime",),
                        help="backend compared with torch")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--images", type=int, default=0, help="test images to compare (default 0 = all)")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per member, backend and thread count")
    parser.add_argument("--rounds", type=int, default=10, help="interleaving rounds")
    parser.add_argument("--gap-ms", default="0", help="comma list of idle gaps before each timed run (default 0)")
    parser.add_argument("--data-root", default=None,
                        help="Fashion-MNIST IDX directory (default: $VIP_FASHION_MNIST_DIR, else Debian's)")
    parser.add_argument("--json", default=None, help="write the comparison here")
    parser.add_argument("--no-progress", action="store_true")


def _print(rec: dict) -> None:
    for name, p in rec["predictions"].items():
        print(f"{name:<14} {p['predictions_differ']} of {p['images']} predictions differ "
              f"(max |logit diff| {p['max_abs_logit_diff']:.1e})")
    for gap, rows in rec["latency"].items():
        for name, per_t in rows.items():
            cells = "  ".join(f"{t}t torch {r['torch_p50_ms']:.3f} / "
                              f"{rec['backend']} {r[rec['backend'] + '_p50_ms']:.3f} ms "
                              f"({r['p50_speedup']:.2f}x)" for t, r in per_t.items())
            print(f"{gap:<10} {name:<14} {cells}")


def run(args) -> int:
    try:
        threads = sorted({int(t) for t in args.threads.split(",") if t.strip()})
        gaps = [float(g) for g in args.gap_ms.split(",") if g.strip()]
    except ValueError:
        print("error: --threads and --gap-ms take comma-separated numbers", file=sys.stderr)
        return 2
    if not threads or min(threads) < 1 or not gaps or min(gaps) < 0 or args.runs < 1 or args.images < 0:
        print("error: --threads must list positive integers, --gap-ms values >= 0, --runs >= 1", file=sys.stderr)
        return 2
    try:
        rec = compare(args.bank, args.backend, threads, args.images, args.runs, args.rounds, gaps,
                      args.data_root, not args.no_progress)
    except BankError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rec["command"] = "vip-perception " + " ".join(sys.argv[1:])
    _print(rec)
    if args.json:
        write_json(args.json, rec)
    return 0
