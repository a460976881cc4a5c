"""`vip-perception demo`: the synthetic camera and the perception node as two processes over
DDS, a live status line and a summary (``ros.tools.demo``)."""
from __future__ import annotations

import argparse

from vip_perception.backends import BACKENDS
from vip_perception.ros.tools.demo import DEMO_SCORE_THRESHOLD, TASKS, DemoOptions, run_demo
from vip_perception.share import SHIPPED_BANKS_HELP, bank_directory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="how long to run, from the node's first result (default 20)")
    parser.add_argument("--fps", type=float, default=None,
                        help="camera rate, Hz (default 30, the station camera's rate; 15 with --task detection)")
    parser.add_argument("--bank", default=None, type=bank_directory,
                        help=f"bank directory, {SHIPPED_BANKS_HELP} (default: the shipped station-camera bank "
                             "config/banks/station with a 17 ms deadline, or "
                             "config/banks/conveyor_detector with --task detection); the task "
                             "in its manifest picks the mode")
    parser.add_argument("--task", choices=TASKS, default="auto",
                        help="auto (default): the bank's task. detection: the camera runs the "
                             "belt scene (garments moving along the belt), the node publishes "
                             "detections for the whole frame and the summary scores them against "
                             "the ground truth (precision / recall at IoU 0.5, mean best IoU); "
                             "without --bank it uses the shipped detector bank. classification: "
                             "the station scene, accuracy of the garment at the station")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="the node's execution backend (default: the YAML's, torch); "
                             "onnxruntime serves classification banks profiled on it")
    parser.add_argument("--deadline-ms", type=float, default=None,
                        help="per-frame deadline from the image stamp (default: the YAML's)")
    parser.add_argument("--score-threshold", type=float, default=None,
                        help=f"detection mode: minimum score of a published detection (default "
                             f"{DEMO_SCORE_THRESHOLD}; the YAML's 0.25 favours recall)")
    parser.add_argument("--width", type=int, default=None,
                        help="camera frame width (default 640; 320 in detection mode)")
    parser.add_argument("--height", type=int, default=None,
                        help="camera frame height (default 480; 240 in detection mode)")
    parser.add_argument("--load", type=int, default=0, metavar="N",
                        help="halfway through, start N busy background processes (CPU "
                             "contention: watch the node pick faster members); default 0")
    parser.add_argument("--logs", default=None, help="directory for the two processes' logs")
    parser.add_argument("--video", default=None, metavar="FILE",
                        help="play this video file as the camera instead of the synthetic scene "
                             "(frame size: the file's unless --width/--height; no ground truth, so "
                             "no accuracy: misses and member mix)")
    parser.add_argument("--no-calibrate", action="store_true",
                        help="start the node with calibrate_on_start:=false (for comparison)")
    parser.add_argument("--json", default=None, metavar="OUT", help="write the summary's figures as JSON")


def run(args: argparse.Namespace) -> int:
    return run_demo(DemoOptions(
        seconds=args.seconds, fps=args.fps, bank=args.bank, task=args.task, backend=args.backend,
        deadline_ms=args.deadline_ms, score_threshold=args.score_threshold, width=args.width,
        height=args.height, load=args.load, logs=args.logs, video=args.video,
        calibrate=not args.no_calibrate, json=args.json))
