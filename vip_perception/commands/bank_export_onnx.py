"""`vip-perception bank export-onnx DIR --out OUT_DIR`: each member of a classification bank as a
standalone ONNX file, verified against PyTorch before it is written (``export.bank_export``)."""
from __future__ import annotations

import argparse
import sys

from ..bank.records import BankError
from ..export.bank_export import export_bank
from ..share import SHIPPED_BANKS_HELP, bank_directory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bank", type=bank_directory,
                        help=f"classification bank directory (manifest.json), {SHIPPED_BANKS_HELP}")
    parser.add_argument("--out", required=True, help="directory for <member>.onnx files and export.json")
    parser.add_argument("--member", action="append", help="export only this member (repeatable; default all)")
    parser.add_argument("--rtol", type=float, default=1e-4, help="largest relative difference accepted (default 1e-4)")


def run(args) -> int:
    try:
        rec = export_bank(args.bank, args.out, args.member, args.rtol)
    except (BankError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, m in rec["members"].items():
        print(f"{name:<14} {m['file']:<22} {m['bytes'] / 1e6:6.2f} MB  max rel diff {m['max_rel_error']:.1e}")
    print(f"wrote {len(rec['members'])} ONNX files and export.json to {args.out}")
    return 0
