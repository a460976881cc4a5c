"""`vip-perception bank build`: generate, train, profile and select a model bank.

Phases, each resumable from the work directory (one sub-directory per finished candidate with
its record.json and safetensors weights; finished candidates are skipped on a re-run):
  base     seeded samples of the YAML search space, trained briefly (seed paper 2's many models)
  parents  a few models trained properly (the sources of ViP variants)
  vip      per-layer sensitivity of each parent, then ViP layer groups fine-tuned from it
  profile  batch-1 latency of every candidate, interleaved, at each thread count
  select   Pareto front and ε-Pareto compact set -> OUT/{manifest.json, *.safetensors, candidates.json}
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time

log = logging.getLogger("vip_perception.bank")

PHASES = ("base", "parents", "vip", "profile", "select")


def default_config_path() -> str:
    """config/bank_fashion_mnist.yaml from the source tree, else from the installed share dir."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidates = [os.path.join(here, "config", "bank_fashion_mnist.yaml"),
                  os.path.join(sys.prefix, "share", "vip_perception", "config", "bank_fashion_mnist.yaml")]
    for c in candidates:
        if os.path.isfile(c):
            return c
    return candidates[0]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="bank recipe YAML (default: config/bank_fashion_mnist.yaml)")
    parser.add_argument("--out", required=True, help="bank directory to write (manifest.json + weights)")
    parser.add_argument("--work", default=None,
                        help="work directory with every candidate's checkpoint (resumable); default: a temp dir for --quick, OUT.work otherwise")
    parser.add_argument("--quick", action="store_true", help="tiny bank on a data subset (about a minute), for tests")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--parents", default="", help="comma-separated parent names to train/vary (default: all in the config)")
    parser.add_argument("--threads", type=int, default=0, help="training threads (default: the config's)")
    parser.add_argument("--reverse", action="store_true", help=argparse.SUPPRESS)  # 2nd process: ViP groups last-first
    parser.add_argument("--reprofile", action="store_true", help="profile again even if every candidate has a profile")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars")


def _setup_logging(work: str) -> list[logging.Handler]:
    """Log to WORK/build.log and stderr for this build only (handlers are removed afterwards)."""
    os.makedirs(work, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    handlers = [logging.FileHandler(os.path.join(work, "build.log")), logging.StreamHandler(sys.stderr)]
    for h in handlers:
        h.setFormatter(fmt)
        log.addHandler(h)
    log.setLevel(logging.INFO)
    return handlers


def run(args) -> int:
    from .config import load_config

    config_path = args.config or default_config_path()
    try:
        cfg = load_config(config_path, quick=args.quick)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    auto_work = args.work is None and args.quick
    work = args.work or (tempfile.mkdtemp(prefix="vip_bank_quick_") if args.quick else os.path.abspath(args.out) + ".work")
    handlers = _setup_logging(work)
    try:
        return _run(args, cfg, config_path, work)
    finally:
        for h in handlers:
            log.removeHandler(h)
            h.close()
        if auto_work:
            shutil.rmtree(work, ignore_errors=True)


def _run(args, cfg, config_path: str, work: str) -> int:
    from .builder import Builder

    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    bad = [p for p in phases if p not in PHASES]
    if bad:
        log.error("unknown phases %s (known: %s)", bad, ",".join(PHASES))
        return 2
    log.info("bank build: config=%s quick=%s work=%s out=%s phases=%s", config_path, args.quick, work, args.out, phases)
    t0 = time.time()
    builder = Builder(cfg, work=work, out=args.out, progress=not args.no_progress,
                      command=" ".join(["vip-perception", "bank", "build"] + sys.argv[3:]) if sys.argv[1:3] == ["bank", "build"] else "",
                      config_path=config_path, quick=args.quick)
    only = [p.strip() for p in args.parents.split(",") if p.strip()]
    unknown = sorted(set(only) - {p.name for p in cfg.parents})
    if unknown:
        log.error("--parents: unknown %s (config has %s)", unknown, [p.name for p in cfg.parents])
        return 2
    if only:
        cfg.parents = [p for p in cfg.parents if p.name in only]
    if args.threads > 0:
        cfg.threads = args.threads
    builder.reverse = args.reverse
    builder.run(phases, reprofile=args.reprofile)
    log.info("bank build finished in %.1f s", time.time() - t0)
    if "select" in phases:
        with open(os.path.join(args.out, "manifest.json")) as fh:
            m = json.load(fh)
        print(f"bank {m['name']}: {len(m['members'])} members -> {args.out}")
    return 0
