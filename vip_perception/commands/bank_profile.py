"""`vip-perception bank profile DIR`: re-measure a built bank's member latencies on this machine.

Latencies belong to the machine (CPU, cores, load), so a bank moved to a robot is re-profiled
there before its profile drives deadline decisions. Every member with weights is measured,
served or frontier-only, and the served (compact) set is re-selected from those numbers with
the build's Pareto / ε-Pareto rule at the build's reference thread count and quantile, so it is
monotonic in (latency, accuracy) on this machine (``bank.profile.reselect``). Weights stay as
they are; the manifest's profiles, served flags, machine record and member order are
rewritten (atomically) and its hashes re-checked (``bank.profile.reprofile``). Candidates'
build-time latencies in candidates.json are left as measured at build.
"""
from __future__ import annotations

import argparse
import sys

from ..backends import BACKENDS
from ..bank.profile import member_profile, reprofile
from ..bank.records import BankError
from ..share import SHIPPED_BANKS_HELP, bank_directory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bank", type=bank_directory,
                        help=f"bank directory (holding manifest.json), {SHIPPED_BANKS_HELP}; its profile is rewritten")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts to profile (default 1,2)")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per member and thread count")
    parser.add_argument("--warmup", type=int, default=20, help="untimed runs per member and thread count first")
    parser.add_argument("--rounds", type=int, default=10, help="interleaving rounds over all members")
    parser.add_argument("--backend", default="torch", choices=BACKENDS,
                        help="execution backend to profile; torch writes `latency`, others `backend_latency`")
    parser.add_argument("--gap-ms", type=float, default=0.0,
                        help="idle time before each timed run, as between camera frames (paced profile; default 0)")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    try:
        threads = sorted({int(t) for t in args.threads.split(",") if t.strip()})
    except ValueError:
        print(f"error: --threads must be comma-separated integers, got {args.threads!r}", file=sys.stderr)
        return 2
    if not threads or min(threads) < 1:
        print(f"error: --threads must list positive integers, got {args.threads!r}", file=sys.stderr)
        return 2
    try:
        if not args.gap_ms >= 0:
            raise BankError(f"--gap-ms must be >= 0, got {args.gap_ms}")
        manifest = reprofile(args.bank, threads, args.runs, args.warmup, args.rounds, progress=not args.no_progress,
                             backend=args.backend, gap_ms=args.gap_ms)
    except BankError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    r = manifest["selection"]["reselected"]
    t = r["threads"]
    for m in manifest["members"]:
        lat = member_profile(m, args.backend).get(str(t))
        if lat is None:
            continue
        status = "served" if m["served"] else "frontier-only"
        if m.get("served_threads"):
            status += f" at {','.join(map(str, m['served_threads']))} thread(s) only (its ViP pays there)"
        print(f"{m['name']:<16} p50 {lat['p50']:7.3f}  p95 {lat['p95']:7.3f}  p99 {lat['p99']:7.3f} ms ({t} threads)"
              f"  val {m['val_accuracy']:.4f}  {status}")
    print(f"re-profiled {len(manifest['members'])} members of {args.bank} on {manifest['machine']['cpu']}")
    changes = [f"{n} served (was frontier-only)" for n in r["promoted"]]
    changes += [f"{n} frontier-only (was served)" for n in r["dropped"]]
    print(f"re-selected on {args.backend} {r['quantile']} at {t} threads (epsilon {r['epsilon']}): "
          f"served {', '.join(r['served'])}; " + ("; ".join(changes) if changes else "no member changed status"))
    return 0
