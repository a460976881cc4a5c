"""`vip-perception bank profile DIR`: re-measure a built bank's member latencies on this machine.

Latencies belong to the machine (CPU, cores, load), so a bank moved to a robot is re-profiled
there before its profile drives deadline decisions. Members and weights stay as they are; the
manifest's profiles, machine record and member order are rewritten (atomically) and its hashes
re-checked. Candidates' build-time latencies in candidates.json are left as measured at build.
"""
from __future__ import annotations

import argparse
import datetime
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bank", help="bank directory (holding manifest.json)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts to profile (default 1,2)")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per member and thread count")
    parser.add_argument("--warmup", type=int, default=20, help="untimed runs per member and thread count first")
    parser.add_argument("--rounds", type=int, default=10, help="interleaving rounds over all members")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"),
                        help="execution backend to profile; torch writes `latency`, others `backend_latency`")
    parser.add_argument("--gap-ms", type=float, default=0.0,
                        help="idle time before each timed run, as between camera frames (paced profile; default 0)")
    parser.add_argument("--no-progress", action="store_true")


def reprofile(path: str, threads: list[int], runs: int, warmup: int, rounds: int, progress: bool = True,
              backend: str = "torch", gap_ms: float = 0.0) -> dict:
    from .bank import backend_runners, build_member_module, load_bank, load_weights
    from .manifest import MANIFEST, file_entry, validate_manifest, write_json
    from .profile import machine_info, profile_models

    bank = load_bank(path)  # validates schema and hashes first (torch: every bank has that profile)
    s = bank.input_spec
    if backend == "torch":
        models = {m.name: m.module for m in bank.members}
    else:
        if bank.task != "classification":
            from .records import BankError

            raise BankError(f"{path}: backend {backend} serves classification banks only (this is a {bank.task} bank)")
        models = {}
        for m in bank.members:  # sessions from the plain ViP module (exported as exact Resize)
            fpath = os.path.join(path, m.file)
            plain = load_weights(build_member_module(m.spec, m.vip_layers, bank.task), fpath)
            models[m.name] = backend_runners(backend, plain, bank.manifest["input"], threads, fpath)
    prof = profile_models(models, (1, s.channels, s.height, s.width), threads,
                          runs, warmup, rounds, progress=progress, gap_ms=gap_ms)
    manifest = bank.manifest
    for m in manifest["members"]:
        record = {str(t): p.to_dict() for t, p in sorted(prof[m["name"]].items())}
        if backend == "torch":
            m["latency"] = record
        else:
            m.setdefault("backend_latency", {})[backend] = record
    if backend != "torch":  # the torch profile (and so the member order) stays as it was
        manifest["machine"].setdefault("backend_profiles", {})[backend] = {
            **machine_info(), "profiled_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "gap_ms": gap_ms}
        validate_manifest(manifest, os.path.join(path, MANIFEST))
        write_json(os.path.join(path, MANIFEST), manifest)
        return manifest
    sel = manifest["selection"]
    if sel["threads"] not in threads:
        sel["threads"] = threads[-1]
    manifest["members"].sort(key=lambda m: (m["latency"][str(sel["threads"])][sel["quantile"]], m["val_accuracy"]))
    manifest["machine"] = {**manifest["machine"], **machine_info(),
                           "profiled_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                           "reprofiled": True, "gap_ms": gap_ms}
    for rel in manifest["files"]:
        manifest["files"][rel] = file_entry(os.path.join(path, rel))
    validate_manifest(manifest, os.path.join(path, MANIFEST))
    write_json(os.path.join(path, MANIFEST), manifest)
    return manifest


def run(args) -> int:
    from .records import BankError

    try:
        threads = sorted({int(t) for t in args.threads.split(",") if t.strip()})
    except ValueError:
        print(f"error: --threads must be comma-separated integers, got {args.threads!r}")
        return 2
    if not threads or min(threads) < 1:
        print(f"error: --threads must list positive integers, got {args.threads!r}")
        return 2
    try:
        if not args.gap_ms >= 0:
            raise BankError(f"--gap-ms must be >= 0, got {args.gap_ms}")
        manifest = reprofile(args.bank, threads, args.runs, args.warmup, args.rounds, progress=not args.no_progress,
                             backend=args.backend, gap_ms=args.gap_ms)
    except BankError as exc:
        print(f"error: {exc}")
        return 1
    t = manifest["selection"]["threads"]
    for m in manifest["members"]:
        lat = (m["latency"] if args.backend == "torch" else m["backend_latency"][args.backend]).get(str(t))
        if lat is None:
            continue
        print(f"{m['name']:<16} p50 {lat['p50']:7.3f}  p95 {lat['p95']:7.3f}  p99 {lat['p99']:7.3f} ms ({t} threads)")
    print(f"re-profiled {len(manifest['members'])} members of {args.bank} on {manifest['machine']['cpu']}")
    return 0
