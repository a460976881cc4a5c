"""`vip-perception bank build`: generate, train, profile and select a classifier bank.

Two ways in: ``--config RECIPE.yaml`` (every decision written down), or ``--data DIR``: an
ImageFolder (``bank.auto_recipe`` measures the named architectures and plans the
``--time-budget``; ``bank.build_classifier.ClassifierBankBuilder`` builds) or a COCO directory
(``bank.auto_detector`` plans one torchvision detector and its ViP variants;
``bank.build_detector.DetectorBankBuilder`` builds). Either writes the recipe it used to
WORK/recipe.yaml and into the manifest's build record. This module parses the flags, sets up the
build log and prints the result.
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
PATH_FLAGS = ("--config", "--out", "--work", "--data", "--weights")


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
    one = parser.add_argument_group("one command, no recipe (instead of --config)")
    one.add_argument("--data", default=None, help="ImageFolder DIR/{train,val[,test]}/<class>/* or DIR/<class>/*, "
                     "or COCO DIR/annotations/instances_*.json (a detector bank)")
    one.add_argument("--task", choices=("classification", "detection"), default=None,
                     help="override what --data is detected as")
    one.add_argument("--arch", default="", help="comma-separated parents: torchvision names (resnet18, resnet34, "
                     "resnet50, vgg11_bn, vgg16_bn, mobilenet_v3_small, mobilenet_v3_large) or vgg_s, vgg_m, res_s "
                     "(default: resnet18,vgg_m); detection: one torchvision detector (default "
                     "fasterrcnn_resnet18_fpn; see models.torchvision_detector)")
    one.add_argument("--weights", default="", help="comma-separated local .pth state_dict / .safetensors files, "
                     "the i-th for the i-th --arch (nothing is downloaded); with --task detection and no --data: "
                     "a COCO-trained torchvision detector served as it is")
    one.add_argument("--input-size", default="", help="model input N or HxW pixels (default: the images' size)")
    one.add_argument("--time-budget", type=float, default=20.0, help="minutes for the whole build (default 20)")
    one.add_argument("--workers", type=int, default=2, help="image decoding processes (default 2)")


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

    if args.data is None and args.weights and args.task == "detection":
        return _bank_from_checkpoint(args)
    if args.data is not None:
        if args.config or args.quick:
            print("error: --data builds without a recipe; drop --config/--quick (or --data)", file=sys.stderr)
            return 2
        work = args.work or os.path.abspath(args.out) + ".work"
        handlers = setup_build_log(log, work)
        try:
            return _build_from_data(args, work)
        finally:
            remove_build_log(log, handlers)
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


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _request(args):
    from ..bank.auto_recipe import BuildRequest, parse_input_size

    return BuildRequest(data=args.data, archs=_split(args.arch), weights=_split(args.weights),
                        input_size=parse_input_size(args.input_size) if args.input_size else None,
                        budget_min=args.time_budget, threads=args.threads or os.cpu_count() or 1,
                        workers=max(0, args.workers))


def _build_from_data(args, work: str) -> int:
    from ..bank.auto_recipe import RequestError, planned_recipe
    from ..bank.build_classifier import ClassifierBankBuilder
    from ..bank.provenance import portable_path
    from ..bank.recipe import RecipeError
    from ..data.user_data import DatasetError
    from ..models import WeightsError

    t0 = time.time()
    try:
        if _task_of(args) == "detection":
            return _build_detector_from_data(args, work)
        req = _request(args)
        cfg, plan, recipe_path = planned_recipe(req, work)
    except (RequestError, DatasetError, WeightsError, RecipeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in plan.skipped:
        log.warning("plan: %s", line)
    log.info("plan: %s", ", ".join(f"{p.name} {p.epochs:g} epochs + {p.vip_variants} ViP" for p in plan.parents))
    build = {**build_record(args, recipe_path, "build"), "plan": plan.to_dict()}
    build["request"] = {**req.to_dict(), "data": portable_path(req.data),
                        "weights": [portable_path(w) for w in req.weights]}
    builder = ClassifierBankBuilder(cfg, work=work, out=args.out, progress=not args.no_progress, build=build)
    builder.deadline = t0 + req.budget_min * 60.0 - plan.seconds.get("profile", 0.0)
    try:
        builder.run(list(PHASES), reprofile=args.reprofile)
    except (DatasetError, WeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log.info("bank build finished in %.1f s (budget %.1f min)", time.time() - t0, req.budget_min)
    _print_members(args.out, plan.skipped + builder.skipped, recipe_path)
    return 0


def _bank_from_checkpoint(args) -> int:
    """--task detection --arch A --weights FILE without --data: a COCO checkpoint served as it is."""
    from ..bank.auto_recipe import RequestError, parse_input_size
    from ..bank.build_detector import checkpoint_bank
    from ..models import WeightsError
    from ..models.torchvision_detector import DETECTOR_ARCHS

    archs, weights = _split(args.arch), _split(args.weights)
    try:
        if len(archs) != 1 or archs[0] not in DETECTOR_ARCHS or len(weights) != 1:
            raise RequestError("--weights without --data serves one COCO checkpoint as it is: give one --arch "
                               f"of {', '.join(DETECTOR_ARCHS)} and one --weights file")
        size = parse_input_size(args.input_size) if args.input_size else (480, 640)
        threads = sorted({1, args.threads or os.cpu_count() or 1})
        m = checkpoint_bank(archs[0], weights[0], args.out, size, threads,
                            build=build_record(args, "", "build"))
    except (RequestError, WeightsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    lat = m["members"][0]["latency"]
    print(f"bank {m['name']}: {archs[0]} from {weights[0]} as it is ({len(m['class_names'])} COCO classes, "
          f"{size[1]}x{size[0]} input) -> {args.out}; p50 " + ", ".join(f"{lat[t]['p50']:.1f} ms at {t} thread(s)"
                                                                       for t in sorted(lat)))
    return 0


def _task_of(args) -> str:
    """--task, else what --data holds (a COCO directory: detection)."""
    from ..data.user_data import detect_dataset

    return args.task or detect_dataset(args.data).task


def _build_detector_from_data(args, work: str) -> int:
    from ..bank.auto_detector import planned_detector_recipe
    from ..bank.build_detector import DetectorBankBuilder
    from ..bank.provenance import portable_path

    t0 = time.time()
    req = _request(args)
    name = os.path.basename(os.path.normpath(args.out))
    try:  # the architecture's own checks (image sides, class count) speak in one line too
        cfg, plan, recipe_path = planned_detector_recipe(req, work, name)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in plan.skipped:
        log.warning("plan: %s", line)
    log.info("plan: parent %d steps, %d ViP groups x %d steps (%s)", plan.parent_steps, plan.vip_groups,
             plan.finetune_steps, ", ".join(f"{k} {v / 60:.1f} min" for k, v in plan.seconds.items()))
    build = {**build_record(args, recipe_path, "build"), "plan": plan.to_dict()}
    build["request"] = {**req.to_dict(), "data": portable_path(req.data),
                        "weights": [portable_path(w) for w in req.weights]}
    builder = DetectorBankBuilder(cfg, work, args.out, progress=not args.no_progress, build=build)
    builder.run()
    log.info("bank build finished in %.1f s (budget %.1f min)", time.time() - t0, req.budget_min)
    _print_members(args.out, plan.skipped, recipe_path, "vip-perception bank build-detector --config")
    return 0


def _print_members(out: str, skipped: list[str], recipe_path: str,
                   repeat: str = "vip-perception bank build --config") -> None:
    """The final table: every shipped member's latency, accuracy and ViP layers; what was skipped."""
    from ..bank.manifest import is_served, read_manifest

    m = read_manifest(out)
    t, q = m["selection"]["threads"], m["selection"]["quantile"]
    print(f"bank {m['name']}: {len(m['members'])} members -> {out} (latency at {t} threads)")
    print(f"{'member':<28} {'kind':<6} {'p50 ms':>8} {q + ' ms':>8} {'val':>6} {'test':>6} {'ViP':>4} served")
    for r in m["members"]:
        lat = r["latency"][str(t)]
        print(f"{r['name']:<28} {r['kind']:<6} {lat['p50']:>8.3f} {lat[q]:>8.3f} {r['val_accuracy']:>6.3f} "
              f"{r['test_accuracy']:>6.3f} {len(r['vip_layers']):>4} {'yes' if is_served(r) else 'no'}")
    if m.get("task") == "detection":
        print("(val and test: mAP@0.5)")
    for line in skipped:
        print(f"skipped: {line}")
    print(f"recipe: {recipe_path} (repeat with: {repeat} {recipe_path} --out {out})")
