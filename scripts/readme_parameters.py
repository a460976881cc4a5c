#!/usr/bin/env python3
"""Regenerate the parameter tables in README.md from the nodes' declarations.

    python scripts/readme_parameters.py            # rewrite the tables in README.md
    python scripts/readme_parameters.py --check    # exit 1 when README.md differs

Each table sits between ``<!-- BEGIN NAME ... -->`` and ``<!-- END NAME -->`` markers; only the
text between them is replaced. ``perception-parameters`` comes from
``vip_perception/ros/parameters.py::SPECS``; ``camera-parameters`` from the camera node's
declarations (the first of ``CAMERA_SOURCES`` that exists). A declaration needs ``name``,
``default`` and ``description``; ``choices``, ``min``/``max``, ``exclusive_min`` and
``read_only`` are shown when present. Needs rclpy (the declarations build ROS descriptors).
"""
from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = "scripts/readme_parameters.py"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the working tree's package, not an installed copy

# Where the camera node's declarations may live: (module, attribute), first found wins. A
# mapping {name: (default, description)} is accepted as well as a sequence of specs.
CAMERA_SOURCES = (
    ("vip_perception.ros.parameters", "CAMERA_SPECS"),
    ("vip_perception.ros.camera_parameters", "SPECS"),
    ("vip_perception.ros.camera_source", "SPECS"),
    ("vip_perception.ros.camera_source", "CAMERA_SPECS"),
    ("vip_perception.ros.camera_source", "PARAMS"),
)


class Row:
    """One parameter as the table shows it."""

    def __init__(self, name, default, description, choices=(), lo=None, hi=None,
                 exclusive_min=False, read_only=False):
        self.name, self.default, self.description = name, default, description
        self.choices, self.lo, self.hi = tuple(choices or ()), lo, hi
        self.exclusive_min, self.read_only = bool(exclusive_min), bool(read_only)


def rows_from(specs) -> list[Row]:
    """Spec objects (attributes) or a {name: (default, description)} mapping -> rows."""
    if isinstance(specs, dict):
        return [Row(name, value[0], value[1]) for name, value in specs.items()]
    return [Row(s.name, s.default, s.description, getattr(s, "choices", ()),
                getattr(s, "min", None), getattr(s, "max", None),
                getattr(s, "exclusive_min", False), getattr(s, "read_only", False))
            for s in specs]


def _allowed(r: Row) -> str:
    if r.choices:
        return ", ".join(f"`{c}`" for c in r.choices)
    if r.lo is None and r.hi is None:
        return ""
    left = "(" if r.exclusive_min else "["
    lo = "" if r.lo is None else _number(r.lo)
    hi = "" if r.hi is None else _number(r.hi)
    return f"{left}{lo}, {hi}]"


def _number(v) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else str(v)


def _cell(text: str) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text.replace("<", "&lt;").replace(">", "&gt;")


def table(rows: list[Row]) -> str:
    """Markdown table: name, default, allowed values, read-only, description."""
    lines = ["| parameter | default | allowed | read-only | description |", "|---|---|---|---|---|"]
    for r in rows:
        default = json.dumps(list(r.default) if isinstance(r.default, tuple) else r.default)
        lines.append(f"| `{r.name}` | `{default}` | {_cell(_allowed(r))} | "
                     f"{'yes' if r.read_only else ''} | {_cell(r.description)} |")
    return "\n".join(lines)


def perception_rows() -> list[Row]:
    from vip_perception.ros.parameters import SPECS
    return rows_from(SPECS)


def camera_rows() -> list[Row]:
    for module, attr in CAMERA_SOURCES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        if hasattr(mod, attr):
            return rows_from(getattr(mod, attr))
    raise SystemExit(f"{GENERATOR}: the camera node's parameter declarations were not found "
                     f"(tried {', '.join(m + '.' + a for m, a in CAMERA_SOURCES)}); update CAMERA_SOURCES")


TABLES = {"perception-parameters": perception_rows, "camera-parameters": camera_rows}


def render(readme: str) -> str:
    """``readme`` with every marked table regenerated; SystemExit when a marker pair is missing."""
    for name, rows in TABLES.items():
        pattern = re.compile(rf"(<!-- BEGIN {name}\b[^>]*-->\n)(.*?)(<!-- END {name} -->)", re.DOTALL)
        if not pattern.search(readme):
            raise SystemExit(f"{GENERATOR}: README.md has no '<!-- BEGIN {name} ... -->' / "
                             f"'<!-- END {name} -->' pair")
        body = table(rows()) + "\n"
        readme = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(3), readme, count=1)
    return readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when the tables differ from the declarations")
    args = parser.parse_args(argv)
    current = args.readme.read_text(encoding="utf-8")
    text = render(current)
    if args.check:
        if text != current:
            print(f"{args.readme}: parameter tables differ from the declarations: run python "
                  f"{GENERATOR}", file=sys.stderr)
            return 1
        return 0
    args.readme.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
