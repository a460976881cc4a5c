"""`vip-perception bank show DIR`: a bank's members and candidates as a table, JSON and a plot.

Served members another served member dominates on the bank's profile are flagged
(``DOMINATED by``, and ``dominated`` in the JSON); frontier-only members are listed apart.

The report comes from ``bank.show.summarise``; this module prints it and writes the files.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..share import SHIPPED_BANKS_HELP, bank_directory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bank", type=bank_directory,
                        help=f"bank directory (holding manifest.json), {SHIPPED_BANKS_HELP}")
    parser.add_argument("--json", dest="json_path", default=None, help="write members + candidates as JSON here")
    parser.add_argument("--plot", default=None, help="write the latency/accuracy trade-off plot (PNG) here")
    parser.add_argument("--threads", type=int, default=None, help="profile to show (default: the selection's)")
    parser.add_argument("--all", action="store_true", help="also print every candidate")


def run(args) -> int:
    from ..bank.manifest import CANDIDATES, read_manifest
    from ..bank.records import BankError
    from ..bank.show import plot, summarise, table
    from ..jsonfile import write_json

    try:
        manifest = read_manifest(args.bank)
    except BankError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    candidates = []
    if CANDIDATES in manifest["files"]:
        with open(os.path.join(args.bank, CANDIDATES)) as fh:
            candidates = json.load(fh)["candidates"]
    threads = args.threads or manifest["selection"]["threads"]
    report = summarise(manifest, candidates, threads)
    print(f"bank {report['bank']} ({args.bank}); machine: {report['machine'].get('cpu')}; threads {threads}")
    print(table(report["members"]))
    if report["dominated"]:
        print(f"\nwarning: served member(s) {', '.join(report['dominated'])} dominated on this profile "
              f"(another served member no slower and at least as accurate): the served set is not monotonic; "
              f"run `vip-perception bank profile {args.bank}` on this machine to re-select it")
    if report["frontier_only"]:
        print("\nfrontier-only (weights shipped, not served; `bank profile` may promote them):")
        print(table(report["frontier_only"]))
    s, hv = report["summary"], report["selection"].get("hypervolume", {})
    print(f"\n{s['members']} members ({s['vip_members']} ViP), p50 span {s['member_p50_span'] or 0:.1f}x, "
          f"best member test accuracy {s['best_member_test_accuracy']:.4f}; {s['candidates']} candidates "
          f"({s['vip_candidates']} ViP), frontier {len(report['frontier'])}")
    if hv:
        print(f"hypervolume ({report['selection']['quantile']}, ref {hv['reference']}): with ViP {hv['with_vip']:.4f}, "
              f"without {hv['without_vip']:.4f}")
    if args.all:
        print("\nall candidates:")
        print(table(sorted(report["candidates"], key=lambda r: r["latency_ms_p95"] or 0)))
    if args.json_path:
        write_json(args.json_path, report)
        print(f"wrote {args.json_path}")
    if args.plot:
        plot(report, args.plot)
        print(f"wrote {args.plot}")
    return 0
