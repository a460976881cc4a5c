"""Size limits that keep the code readable: short functions, a thin node, a short README.

Lengths are counted from the source with `ast` (``end_lineno - lineno + 1``: the whole
definition, docstring and decorators' target line included, decorators themselves not).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vip_perception"
MAX_FUNCTION_LINES = 80
# File -> maximum line count (exclusive): the node stays a thin adapter, the README a user guide.
MAX_FILE_LINES = {
    "vip_perception/ros/perception.py": 250,
    "README.md": 300,
}


def long_functions(source: str, filename: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """``(qualified name, lines)`` of every function or method in ``source`` longer than ``limit``."""
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    lines = child.end_lineno - child.lineno + 1
                    if lines > limit:
                        found.append((name, lines))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source, filename), "")
    return found


def test_the_length_counter_counts_nested_functions_and_methods():
    body = "\n".join(f"    x{i} = {i}" for i in range(81))
    source = (f"def long():\n{body}\n\ndef short():\n    pass\n\n"
              f"class C:\n    def method(self):\n    {body.replace(chr(10), chr(10) + '    ')}\n"
              f"\ndef outer():\n    def inner():\n    {body.replace(chr(10), chr(10) + '    ')}\n")
    found = dict(long_functions(source, "<src>"))
    assert found["long"] == 82 and found["C.method"] == 82 and found["outer.inner"] == 82
    assert found["outer"] == 83 and "short" not in found


def test_no_function_is_longer_than_the_limit():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30
    offenders = [f"{path.relative_to(ROOT)}::{name}: {lines} lines"
                 for path in files for name, lines in long_functions(path.read_text(encoding="utf-8"), str(path))]
    assert not offenders, (f"{len(offenders)} function(s) over {MAX_FUNCTION_LINES} lines (split into "
                           "set-up, loop, scoring and report):\n" + "\n".join(offenders))


@pytest.mark.parametrize("rel,limit", sorted(MAX_FILE_LINES.items()))
def test_file_is_under_its_line_limit(rel, limit):
    path = ROOT / rel
    assert path.is_file(), f"{rel} is missing"
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines < limit, f"{rel} has {lines} lines; the limit is under {limit}"
