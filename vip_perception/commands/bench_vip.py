"""`vip-perception bench vip`: time an original CNN against its ViP version
(``bench.vip_bench``); with ``--backend`` / ``--impl``, every backend x implementation side by
side (``bench.fused_bench``). Prints a table and writes the JSON record."""
from __future__ import annotations

import argparse
import sys

from vip_perception.bench.fused_bench import BACKEND_KINDS, IMPLS, format_matrix, parse_choices, run_matrix
from vip_perception.bench.vip_bench import ARCHS, BenchConfig, benchmark, format_table
from vip_perception.jsonfile import write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", default="vgg16", choices=ARCHS, help="torchvision architecture (random weights)")
    parser.add_argument("--input", type=int, default=224, help="square input size in pixels (default 224)")
    parser.add_argument(
        "--layers", action="append",
        help="ViP layers: paper (VGG16's first round), all, none, or a comma list of module names "
        "or VGG aliases like conv1_2 (default paper); repeat to time several sets in one run "
        "(with --backend/--impl)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--repeats", type=int, default=15, help="timed interleaved rounds (default 15)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs per variant (default 3)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    matrix = parser.add_argument_group(
        "backends and implementations",
        "Giving --backend or --impl times every combination side by side in one run "
        "(vip_perception.bench.fused_bench): the original (eager NCHW, channels-last, packed, "
        "torch.compile, ONNX Runtime) against the reference and the fused ViP model on each backend.")
    matrix.add_argument("--backend", help="comma list of: torch, onnxruntime")
    matrix.add_argument("--impl", help="comma list of: reference, fused")
    matrix.add_argument("--compile", default="original,fused",
                        help="models also run with torch.compile: comma list of original, reference, fused "
                             "(default original,fused)")
    matrix.add_argument("--no-compile", action="store_true", help="skip torch.compile entirely")


def run_matrix_command(args: argparse.Namespace) -> int:
    """The side-by-side matrix: original / ViP reference / ViP fused on each backend."""
    try:
        rec = run_matrix(args.arch, args.input, args.layers or ["paper"], args.threads, args.repeats,
                         warmup=args.warmup, backends=parse_choices(args.backend, BACKEND_KINDS, "--backend"),
                         impls=parse_choices(args.impl, IMPLS, "--impl"),
                         compile=() if args.no_compile else parse_choices(args.compile, ("original", *IMPLS),
                                                                          "--compile"))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_matrix(rec))
    if args.json:
        write_json(args.json, rec, indent=2)
        print(f"wrote {args.json}")
    return 0


def run(args: argparse.Namespace) -> int:
    layers = args.layers or ["paper"]
    if args.backend or args.impl:  # every backend x implementation, side by side
        args.layers = layers
        args.backend = args.backend or "torch,onnxruntime"
        args.impl = args.impl or "reference,fused"
        return run_matrix_command(args)
    if len(layers) > 1:
        print("error: several --layers need --backend/--impl (the side-by-side matrix)", file=sys.stderr)
        return 2
    cfg = BenchConfig(args.arch, args.input, layers[0], args.threads, args.repeats, args.warmup, args.json)
    try:
        rec = benchmark(cfg)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(rec))
    if cfg.json:
        path = cfg.json
        try:
            write_json(path, rec, indent=2)
        except OSError as exc:
            print(f"error: cannot write --json {path}: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {path}")
    return 0
