"""`vip-perception bank build-detector`: train and select a ViP Faster R-CNN detector bank.

The work is done by ``bank.build_detector.DetectorBankBuilder`` (phases and resuming are
described there); this module parses the flags, sets up the build log and reports errors.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time

from ..bank.build_detector import PHASES
from .bank_build import build_record, remove_build_log, setup_build_log

log = logging.getLogger("vip_perception.bank")
DEFAULT_RECIPE = "config/detector_conveyor.yaml"


def default_config_path() -> str:
    """config/detector_conveyor.yaml from the source tree or the installed share directory."""
    from ..share import share_candidates, share_path

    found = share_path(DEFAULT_RECIPE)
    return str(found if found is not None else share_candidates(DEFAULT_RECIPE)[0])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help=f"recipe YAML (default: {DEFAULT_RECIPE})")
    parser.add_argument("--out", required=True, help="bank directory to write (manifest.json + weights)")
    parser.add_argument("--work", default=None,
                        help="work directory (resumable); default: temp dir for --quick, OUT.work otherwise")
    parser.add_argument("--quick", action="store_true", help="tiny scenes and a few steps (seconds), for tests")
    parser.add_argument("--until", default="select", help=f"stop after this phase ({', '.join(PHASES)})")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars")


def run(args) -> int:
    from ..bank.build_detector import DetectorBankBuilder
    from ..bank.recipe import DetectorRecipe, RecipeError, load_recipe

    path = args.config or default_config_path()
    try:
        cfg = load_recipe(path, DetectorRecipe, quick=args.quick)
    except RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.until not in PHASES:
        print(f"error: --until must be one of {PHASES}, got {args.until!r}", file=sys.stderr)
        return 2
    auto_work = args.work is None and args.quick
    work = args.work or (tempfile.mkdtemp(prefix="vip_det_quick_") if args.quick
                         else os.path.abspath(args.out) + ".work")
    handlers = setup_build_log(log, work)
    try:
        t0 = time.time()
        log.info("detector bank build: config=%s quick=%s work=%s out=%s", path, args.quick, work, args.out)
        DetectorBankBuilder(cfg, work, args.out, progress=not args.no_progress,
                            build=build_record(args, path, "build-detector")).run(args.until)
        log.info("detector bank build finished in %.1f s", time.time() - t0)
        return 0
    finally:
        remove_build_log(log, handlers)
        if auto_work:
            shutil.rmtree(work, ignore_errors=True)
