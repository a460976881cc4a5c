#!/usr/bin/env python3
"""Make a copy of a bank whose latency profile describes another machine kind, to test start-up
calibration on one machine.

A bank profiled on one machine kind and served on another sees every member run slower (or
faster) than its profile by about one factor: the shipped detector's parent ran about 2x slower
on an AVX2 EPYC than its AVX-512 profile says. This tool copies BANK to OUT and multiplies every
profiled latency (every member, thread count and quantile; other backends too) by ``--scale``,
so that serving OUT here is what serving BANK on a machine kind ``1 / scale`` times slower
would be. ``--scale 0.5``: the profile claims twice this machine's speed (a bank profiled on a
faster kind); ``--scale 2``: half its speed (profiled on a slower kind). The manifest's
``machine`` entry records what was done (``emulated_scale`` and the original CPU), so the copy
never passes for a real profile.

    python scripts/emulate_machine_kind.py BANK OUT --scale 0.5
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vip_perception.bank.manifest import BankError, read_manifest, write_manifest  # noqa: E402

QUANTILE_KEYS = ("p50", "p95", "p99", "mean")


def scale_profiles(manifest: dict, scale: float) -> int:
    """Multiply every profiled latency in ``manifest`` by ``scale`` in place; return how many
    (member, threads) profiles changed."""
    changed = 0
    for member in manifest["members"]:
        tables = [member.get("latency") or {}] + list((member.get("backend_latency") or {}).values())
        for table in tables:
            for profile in table.values():
                for key in QUANTILE_KEYS:
                    if key in profile:
                        profile[key] = float(profile[key]) * scale
                changed += 1
    manifest["machine"] = {**manifest["machine"], "emulated_scale": scale,
                           "note": f"profile x {scale} by scripts/emulate_machine_kind.py: not a measurement"}
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bank", help="bank directory (holds manifest.json)")
    ap.add_argument("out", help="directory for the copy (must not exist)")
    ap.add_argument("--scale", type=float, required=True, help="factor on every profiled latency, > 0")
    args = ap.parse_args(argv)
    if not args.scale > 0:
        print(f"error: --scale must be > 0, got {args.scale}", file=sys.stderr)
        return 2
    if os.path.exists(args.out):
        print(f"error: {args.out} exists; give a new directory", file=sys.stderr)
        return 2
    try:
        manifest = read_manifest(args.bank)
    except BankError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shutil.copytree(args.bank, args.out)
    n = scale_profiles(manifest, args.scale)
    write_manifest(args.out, manifest)
    ratio = 1 / args.scale
    kind = f"{ratio:.2f}x slower than" if ratio >= 1 else f"{args.scale:.2f}x faster than"
    print(f"{args.out}: {n} profiles x {args.scale} (emulating a machine kind {kind} the one profiled)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
