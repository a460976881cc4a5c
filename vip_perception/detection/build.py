"""`vip-perception bank build-detector`: a ViP Faster R-CNN family on conveyor scenes -> a bank.

Phases, each resumable from the work directory (a finished step leaves a file and is skipped):
  spec         anchors fitted to training boxes -> spec.json
  parent       Faster R-CNN trained from scratch -> parent/{ckpt.pt, model.safetensors, record.json}
  sensitivity  val mAP@0.5 drop of ViP on each backbone conv alone -> sensitivity.json
  vip          layer groups (least sensitive per MAC saving, as for classifiers), each fine-tuned
               from the parent -> vipNN/...
  evaluate     val and test mAP of every candidate (stored in its record.json)
  profile      batch-1 latency of whole detector and backbone alone, interleaved -> profile.json
  select       ε-Pareto on (p50 latency, val mAP@0.5) -> OUT/{manifest.json, *.safetensors}
The manifest has the classifier bank's layout with task "detection"; val_accuracy and
test_accuracy hold mAP@0.5 so the bank's selection code applies unchanged.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time

log = logging.getLogger("vip_perception.detection")


def default_config_path() -> str:
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for c in (os.path.join(here, "config", "detector_conveyor.yaml"),
              os.path.join(sys.prefix, "share", "vip_perception", "config", "detector_conveyor.yaml")):
        if os.path.isfile(c):
            return c
    return os.path.join(here, "config", "detector_conveyor.yaml")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="recipe YAML (default: config/detector_conveyor.yaml)")
    parser.add_argument("--out", required=True, help="bank directory to write (manifest.json + weights)")
    parser.add_argument("--work", default=None, help="work directory (resumable); default: temp dir for --quick, OUT.work otherwise")
    parser.add_argument("--quick", action="store_true", help="tiny scenes and a few steps (seconds), for tests")
    parser.add_argument("--until", default="select", help="stop after this phase (spec, parent, sensitivity, vip, evaluate, profile, select)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars")


def run(args) -> int:
    from .config import load_detector_config

    path = args.config or default_config_path()
    try:
        cfg = load_detector_config(path, quick=args.quick)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    auto_work = args.work is None and args.quick
    work = args.work or (tempfile.mkdtemp(prefix="vip_det_quick_") if args.quick else os.path.abspath(args.out) + ".work")
    os.makedirs(work, exist_ok=True)
    handlers = [logging.FileHandler(os.path.join(work, "build.log")), logging.StreamHandler(sys.stderr)]
    for h in handlers:
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(h)
    log.setLevel(logging.INFO)
    try:
        from .builder import PHASES, DetectorBuilder

        if args.until not in PHASES:
            print(f"error: --until must be one of {PHASES}, got {args.until!r}", file=sys.stderr)
            return 2
        t0 = time.time()
        log.info("detector bank build: config=%s quick=%s work=%s out=%s", path, args.quick, work, args.out)
        DetectorBuilder(cfg, work, args.out, progress=not args.no_progress, config_path=path, quick=args.quick).run(args.until)
        log.info("detector bank build finished in %.1f s", time.time() - t0)
        return 0
    finally:
        for h in handlers:
            log.removeHandler(h)
            h.close()
        if auto_work:
            shutil.rmtree(work, ignore_errors=True)
