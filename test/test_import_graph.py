"""Layering of the package, read from its import graph (import_graph.py; nothing is imported).

Data flows one way: no import cycles, function-level imports included; only ``ros/`` imports
rclpy; the plain-data modules load without torch; no module borrows another's private names.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import import_graph

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vip_perception"
ROS_PACKAGE = "vip_perception.ros"
# Modules that must import without torch (directly or through any module they load).
TORCH_FREE = ("vip_perception.results", "vip_perception.ros.output")
HEAVY = ("torch", "torchvision")


@pytest.fixture(scope="module")
def graph() -> import_graph.ImportGraph:
    return import_graph.build(PACKAGE)


def _write_package(base: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return base / "pkg"


def test_the_graph_sees_hidden_cycles_and_resolves_every_import_form(tmp_path):
    """A synthetic package with one cycle closed by a function-level relative import."""
    pkg = _write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a/__init__.py": "from .x import f\n",
        "pkg/a/x.py": "import numpy\nfrom pkg.b import y\n\ndef f():\n    return y\n",
        "pkg/b/__init__.py": "",
        "pkg/b/y.py": "def g():\n    from ..a import x  # closes the cycle, only when g runs\n    return x\n",
        "pkg/b/z.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import x\n"
                       "else:\n    from . import y\n"),
    })
    g = import_graph.build(pkg)
    assert g.successors("pkg.a") == {"pkg.a.x"}
    assert g.successors("pkg.a.x") == {"pkg.b", "pkg.b.y"}  # pkg.b/__init__ runs first
    assert g.successors("pkg.b.y") == {"pkg.a", "pkg.a.x"}
    assert g.successors("pkg.b.z") == {"pkg.b.y"}           # TYPE_CHECKING branch never runs
    assert set(g.external["pkg.a.x"]) == {"numpy"}
    (component,) = import_graph.strongly_connected_components(g.adjacency())
    assert component == ["pkg.a", "pkg.a.x", "pkg.b.y"]
    text = import_graph.describe_cycle(import_graph.shortest_cycle(g, component))
    assert text.startswith("pkg.a -> pkg.a.x") and "in a function" in text, text


def test_an_acyclic_package_has_no_components(tmp_path):
    pkg = _write_package(tmp_path, {"pkg/__init__.py": "from . import m\n", "pkg/m.py": "import os\n"})
    g = import_graph.build(pkg)
    assert import_graph.strongly_connected_components(g.adjacency()) == []


def test_the_package_graph_covers_every_module(graph):
    assert len(graph.modules) == len(list(PACKAGE.rglob("*.py"))) > 30
    assert graph.edges, "no internal imports found: the graph builder is broken"


def test_no_import_cycles(graph):
    components = import_graph.strongly_connected_components(graph.adjacency())
    lines = [f"{', '.join(c)}\n    e.g. {import_graph.describe_cycle(import_graph.shortest_cycle(graph, c))}"
             for c in components]
    assert not lines, f"{len(lines)} import cycle(s) (module sets that import each other):\n" + "\n".join(lines)


def test_no_module_imports_another_modules_private_names(graph):
    found = [f"{e.path}:{e.line}: {e.source} takes {n} from {e.target}"
             for e in graph.edges for n in e.names
             if n.startswith("_") and not n.startswith("__")]
    assert not found, "private names used across modules (make them public or move them):\n" + "\n".join(found)


def test_only_the_ros_layer_imports_rclpy(graph):
    found = [f"{e.path}:{e.line}: {m} imports rclpy"
             for m, ext in sorted(graph.external.items()) if not (m == ROS_PACKAGE or m.startswith(ROS_PACKAGE + "."))
             for e in ext.get("rclpy", [])]
    assert not found, "rclpy outside vip_perception/ros/:\n" + "\n".join(found)


@pytest.mark.parametrize("module", TORCH_FREE)
def test_plain_data_modules_load_without_torch(graph, module):
    """Import-time closure: module-level imports only (a function-level import of torch runs
    only when that function is called, which these modules' users never need)."""
    assert module in graph.modules, f"{module} is missing"
    at_import = import_graph.ImportGraph(graph.root, graph.modules, [e for e in graph.edges if not e.local])
    found = []
    for reached, chain in sorted(import_graph.reachable(at_import, module).items()):
        for name in HEAVY:
            for e in graph.external.get(reached, {}).get(name, []):
                if not e.local:
                    route = " -> ".join([module] + [c.target for c in chain])
                    found.append(f"{route}: imports {name} ({e.path}:{e.line})")
    assert not found, f"{module} loads torch when imported:\n" + "\n".join(found)
