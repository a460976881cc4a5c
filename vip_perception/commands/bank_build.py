"""`vip-perception bank build`: generate, train, profile and select a classifier bank.

The work is done by ``bank.build_classifier.ClassifierBankBuilder`` (phases and resuming are
described there); this module parses the flags, sets up the build log and prints the result.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time

from ..bank.build_classifier import PHASES

log = logging.getLogger("vip_perception.bank")
DEFAULT_RECIPE = "config/bank_fashion_mnist.yaml"
PATH_FLAGS = ("--config", "--out", "--work")


def default_config_path() -> str:
    """config/bank_fashion_mnist.yaml from the source tree or the installed share directory."""
    from ..share import share_candidates, share_path

    found = share_path(DEFAULT_RECIPE)
    return str(found if found is not None else share_candidates(DEFAULT_RECIPE)[0])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help=f"bank recipe YAML (default: {DEFAULT_RECIPE})")
    parser.add_argument("--out", required=True, help="bank directory to write (manifest.json + weights)")
    parser.add_argument("--work", default=None,
                        help="work directory with every candidate's checkpoint (resumable); "
                             "default: a temp dir for --quick, OUT.work otherwise")
    parser.add_argument("--quick", action="store_true", help="tiny bank on a data subset (about a minute), for tests")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--parents", default="",
                        help="comma-separated parent names to train/vary (default: all in the config)")
    parser.add_argument("--threads", type=int, default=0, help="training threads (default: the config's)")
    parser.add_argument("--reverse", action="store_true", help=argparse.SUPPRESS)  # 2nd process: ViP groups last-first
    parser.add_argument("--reprofile", action="store_true", help="profile again even if every candidate has a profile")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars")


def setup_build_log(logger: logging.Logger, work: str) -> list[logging.Handler]:
    """Log ``logger`` to WORK/build.log and stderr; the caller removes the returned handlers."""
    os.makedirs(work, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    handlers = [logging.FileHandler(os.path.join(work, "build.log")), logging.StreamHandler(sys.stderr)]
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)
    logger.setLevel(logging.INFO)
    return handlers


def remove_build_log(logger: logging.Logger, handlers: list[logging.Handler]) -> None:
    for h in handlers:
        logger.removeHandler(h)
        h.close()


def build_record(args, config_path: str, subcommand: str) -> dict:
    """The manifest's "build" record: recipe path and command line, repository-relative."""
    from ..bank.provenance import portable_command, portable_path

    argv = sys.argv[3:] if sys.argv[1:3] == ["bank", subcommand] else []
    command = f"vip-perception bank {subcommand} {portable_command(argv, PATH_FLAGS)}" if argv else ""
    return {"config": portable_path(config_path), "command": command, "quick": bool(args.quick)}


def run(args) -> int:
    from ..bank.recipe import ClassifierRecipe, RecipeError, load_recipe

    config_path = args.config or default_config_path()
    try:
        cfg = load_recipe(config_path, ClassifierRecipe, quick=args.quick)
    except RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    auto_work = args.work is None and args.quick
    work = args.work or (tempfile.mkdtemp(prefix="vip_bank_quick_") if args.quick
                         else os.path.abspath(args.out) + ".work")
    handlers = setup_build_log(log, work)
    try:
        return _build(args, cfg, config_path, work)
    finally:
        remove_build_log(log, handlers)
        if auto_work:
            shutil.rmtree(work, ignore_errors=True)


def _select_parents(args, cfg) -> str | None:
    """Apply --parents and --threads to the recipe; an error message or None."""
    only = [p.strip() for p in args.parents.split(",") if p.strip()]
    unknown = sorted(set(only) - {p.name for p in cfg.parents})
    if unknown:
        return f"--parents: unknown {unknown} (config has {[p.name for p in cfg.parents]})"
    if only:
        cfg.parents = [p for p in cfg.parents if p.name in only]
    if args.threads > 0:
        cfg.threads = args.threads
    return None


def _build(args, cfg, config_path: str, work: str) -> int:
    from ..bank.build_classifier import ClassifierBankBuilder
    from ..bank.manifest import read_manifest

    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    bad = [p for p in phases if p not in PHASES]
    if bad:
        log.error("unknown phases %s (known: %s)", bad, ",".join(PHASES))
        return 2
    problem = _select_parents(args, cfg)
    if problem:
        log.error("%s", problem)
        return 2
    log.info("bank build: config=%s quick=%s work=%s out=%s phases=%s", config_path, args.quick, work, args.out, phases)
    t0 = time.time()
    builder = ClassifierBankBuilder(cfg, work=work, out=args.out, progress=not args.no_progress,
                                    build=build_record(args, config_path, "build"))
    builder.reverse = args.reverse
    builder.run(phases, reprofile=args.reprofile)
    log.info("bank build finished in %.1f s", time.time() - t0)
    if "select" in phases:
        m = read_manifest(args.out)
        print(f"bank {m['name']}: {len(m['members'])} members -> {args.out}")
    return 0
