"""`vip-perception data video`: write a synthetic scene (station or belt) as a video file."""
from __future__ import annotations

import argparse
import sys

from vip_perception.data.scene_video import SCENES, write_scene_video


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scene", choices=SCENES, default="belt",
                        help="station (one garment at a time, for classifiers) or belt (moving "
                             "garments, for detectors); default belt")
    parser.add_argument("--width", type=int, default=768, help="frame width, pixels (default 768)")
    parser.add_argument("--height", type=int, default=432, help="frame height, pixels (default 432)")
    parser.add_argument("--fps", type=float, default=12.5, help="frame rate stored in the file (default 12.5)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="garment order and noise (default 0)")
    parser.add_argument("--out", required=True, help="output .avi path (Motion-JPEG)")


def run(args: argparse.Namespace) -> int:
    frames = max(1, round(args.seconds * args.fps))
    try:
        write_scene_video(args.out, args.scene, args.width, args.height, args.fps, frames, args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: {frames} frames of the {args.scene} scene, {args.width}x{args.height} at {args.fps:g} fps")
    return 0
