"""`vip-perception bank import-onnx --data DIR --out BANK MODEL.onnx [MODEL.onnx ...]`: ONNX models
from another framework as the members of a bank the node serves (``bank.import_onnx``).

Each file's accuracy is measured on DIR's val split (and test, when there is one), its latency
profiled on ONNX Runtime, and the served set chosen as for any bank. Serve it with
``-p bank:=BANK -p backend:=onnxruntime``; re-profile it on the target machine with
``vip-perception bank profile BANK --backend onnxruntime``.
"""
from __future__ import annotations

import argparse
import sys

from ..backends.onnx_decoders import FORMATS
from ..bank.import_onnx import ImportOptions, import_onnx, read_labels
from ..bank.profile import member_profile
from ..bank.records import BankError
from ..letterbox import RESIZE_MODES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", metavar="MODEL.onnx", help="ONNX files, one member each")
    parser.add_argument("--data", required=True, help="labelled data: an ImageFolder or a COCO directory")
    parser.add_argument("--out", required=True, help="bank directory to write")
    parser.add_argument("--task", choices=("classification", "detection"), help="default: from --format or the data")
    parser.add_argument("--format", choices=FORMATS,
                        help="output layout: logits (1, C); torchvision boxes/labels/scores; yolo (1, 4 + C, N) "
                             "(default: logits for classification, yolo for detection)")
    parser.add_argument("--labels", help="the models' class names in output order, one per line (default: the data's)")
    parser.add_argument("--resize", choices=RESIZE_MODES, help="default: letterbox for yolo, stretch otherwise")
    parser.add_argument("--mean", default="0",
                        help="per-channel mean in [0, 1] pixel units, comma-separated (default 0)")
    parser.add_argument("--std", default="1", help="per-channel std, comma-separated (default 1)")
    parser.add_argument("--score-threshold", type=float, default=0.25, help="detections below are dropped")
    parser.add_argument("--iou-threshold", type=float, default=0.45, help="yolo NMS IoU threshold")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts to profile (default 1,2)")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per member and thread count")
    parser.add_argument("--epsilon", type=float, default=0.01, help="ε of the served ε-Pareto set (accuracy units)")
    parser.add_argument("--no-progress", action="store_true")


def _numbers(text: str, what: str, kind=float) -> list:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise ValueError(f"{what} must be comma-separated numbers, got {text!r}")
    return values


def run(args) -> int:
    try:
        opts = ImportOptions(
            task=args.task, format=args.format, labels=read_labels(args.labels) if args.labels else None,
            resize=args.resize, mean=tuple(_numbers(args.mean, "--mean")), std=tuple(_numbers(args.std, "--std")),
            score_threshold=args.score_threshold, iou_threshold=args.iou_threshold,
            threads=_numbers(args.threads, "--threads", int), runs=args.runs, rounds=min(10, max(1, args.runs)),
            epsilon=args.epsilon, progress=not args.no_progress)
        manifest = import_onnx(args.models, args.data, args.out, opts)
    except (ValueError, BankError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sel = manifest["selection"]
    t, q = sel["threads"], sel["quantile"]
    metric = "top-1" if manifest["task"] == "classification" else "mAP@0.5"
    for m in manifest["members"]:
        lat = member_profile(m, "onnxruntime")[str(t)]
        print(f"{m['name']:<20} {q} {lat[q]:8.3f} ms ({t} threads)  val {metric} {m['val_accuracy']:.4f}  "
              f"test {m['test_accuracy']:.4f}  {'served' if m['served'] else 'frontier-only'}")
    print(f"wrote {args.out}: {len(manifest['members'])} imported members, served {', '.join(sel['compact'])}; "
          f"serve with -p bank:={args.out} -p backend:=onnxruntime")
    return 0
