"""`vip-perception data export --what fashion-mnist|conveyor --out DIR`: the project's data as an
ImageFolder (Fashion-MNIST, station-camera renders) or a COCO directory (conveyor scenes), the
layouts `bank build --data` and `evaluate accuracy --data` read (``data.export``)."""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--what", required=True, choices=["fashion-mnist", "conveyor"],
                        help="fashion-mnist: ImageFolder DIR/{train,val,test}/<class>/*.png; "
                             "conveyor: COCO DIR/images/<split>/ + DIR/annotations/instances_<split>.json")
    parser.add_argument("--out", required=True, help="a new (or empty) directory to write")
    parser.add_argument("--size", type=int, default=64, help="fashion-mnist: image side in pixels (>= 28)")
    parser.add_argument("--limit", type=int, default=0, help="fashion-mnist: at most N images per split (0: all)")
    parser.add_argument("--images", type=int, default=600,
                        help="conveyor: scenes in all (70%% train, 15%% val, 15%% test)")
    parser.add_argument("--seed", type=int, default=0, help="fashion-mnist: seed of the val split and --limit")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars")


def run(args) -> int:
    from vip_perception.data.export import export_conveyor, export_fashion_mnist

    try:
        if args.what == "fashion-mnist":
            counts = export_fashion_mnist(args.out, args.size, args.limit, seed=args.seed,
                                          progress=not args.no_progress)
        else:
            counts = export_conveyor(args.out, args.images, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as exc:  # ExportError, a malformed or missing IDX file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.what} to {args.out}: " + ", ".join(f"{s} {n}" for s, n in counts.items()))
    return 0
