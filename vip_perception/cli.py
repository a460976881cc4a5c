"""`vip-perception`: one entry point, one subcommand per user-facing job.

Each subcommand ``vip-perception GROUP NAME`` is the module
``vip_perception/commands/GROUP_NAME.py`` (``NAME.py`` for a top-level command; dashes become
underscores). A command module parses arguments and calls the library; it exposes two
functions: ``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when their
subcommand (or its ``--help``) is used, so ``vip-perception --help`` stays fast and does not
need torch or rclpy.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# (group, name) -> (module, one-line help). A group of None means a top-level command.
COMMANDS: dict[tuple[str | None, str], tuple[str, str]] = {
    ("bench", "vip"): ("vip_perception.commands.bench_vip", "time an original CNN against its ViP version"),
    ("bench", "node"): ("vip_perception.commands.bench_node", "per-frame node overhead and end-to-end latency"),
    ("bank", "build"): ("vip_perception.commands.bank_build", "generate, train, profile and select a model bank"),
    ("bank", "profile"): ("vip_perception.commands.bank_profile", "re-profile a bank's latencies on this machine"),
    ("bank", "show"): ("vip_perception.commands.bank_show", "print a bank's members; write JSON and a trade-off plot"),
    ("bank", "build-detector"): ("vip_perception.commands.bank_build_detector",
                                 "train and select a ViP Faster R-CNN detector bank"),
    ("bank", "compare-backends"): ("vip_perception.commands.bank_compare_backends",
                                   "same predictions and p50 latency: torch vs onnxruntime"),
    ("bank", "export-onnx"): ("vip_perception.commands.bank_export_onnx", "write each member as a verified ONNX file"),
    ("evaluate", "deadline"): ("vip_perception.commands.evaluate_deadline",
                               "replay a timed frame stream under CPU load"),
    ("evaluate", "detector"): ("vip_perception.commands.evaluate_detector",
                               "mAP and latency of a detector bank's members"),
    ("data", "export"): ("vip_perception.commands.data_export",
                         "write Fashion-MNIST as an ImageFolder or conveyor scenes as a COCO directory"),
    ("evaluate", "accuracy"): ("vip_perception.commands.evaluate_accuracy",
                               "top-1 or COCO mAP and latency of each member on an ImageFolder or COCO data"),
    (None, "demo"): ("vip_perception.commands.demo", "camera source + node over DDS with a live summary"),
    (None, "fuzz"): ("vip_perception.commands.fuzz", "fuzz image conversion and preprocessing"),
    (None, "soak"): ("vip_perception.commands.soak", "run camera + node for minutes; report crashes, RSS and latency"),
}

GROUP_HELP = {
    "bench": "benchmarks that print ratios measured side by side and write JSON",
    "bank": "build, re-profile and inspect model banks",
    "evaluate": "evaluations against ground truth",
    "data": "write the project's data in the layouts user data comes in",
}


def _load(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:  # a missing optional dependency, not a bug in the CLI
        raise SystemExit(
            f"error: this command needs '{exc.name}', which is not installed.\n"
            "Run scripts/demo or scripts/test once to create .venv, or `pip install -e .` "
            "(plus requirements-ros.txt when no ROS 2 distribution is sourced)."
        ) from exc


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vip-perception",
        description="Deadline-aware ViP CNN perception: benchmarks, model banks, evaluation, demo.",
    )
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for (group, name), (module, help_text) in COMMANDS.items():
        if group is None:
            target = top
        else:
            if group not in groups:
                gp = top.add_parser(group, help=GROUP_HELP[group], description=GROUP_HELP[group])
                groups[group] = gp.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
                gp.set_defaults(_group_parser=gp)
            target = groups[group]
        sub = target.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module)
        # Only the module of the command being run gets imported (to add its arguments).
        wanted = [name] if group is None else [group, name]
        if argv[: len(wanted)] == wanted:
            _load(module).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if getattr(args, "_module", None) is None:
        (getattr(args, "_group_parser", None) or parser).print_help()
        return 2
    try:
        return int(_load(args._module).run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
