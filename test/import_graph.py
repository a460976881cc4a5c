"""The package's import graph, read from the source with `ast` (nothing is imported).

Used by the layering tests (test_import_graph.py, test_cli.py). Every ``import`` and
``from ... import`` statement counts, at module level and inside functions, classes and
``try`` blocks alike: a function-level import still runs, only later, and still ties the two
modules together. Statements under ``if TYPE_CHECKING:`` are left out: they never execute,
so they cannot create an import-time dependency (annotation-only names are the standard way
to type a parameter without one).

Resolution rules:
- relative imports are resolved against the importing module's package;
- ``from pkg import name`` is an edge to ``pkg.name`` when that is a module of the package,
  otherwise to ``pkg`` (the name is an attribute of ``pkg/__init__.py``);
- importing ``a.b.c`` also runs ``a/__init__.py`` and ``a/b/__init__.py``: edges to those
  packages are added unless they enclose the importer (then they are already being imported).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``path:line``; ``local`` when inside a function."""

    source: str
    target: str
    path: str
    line: int
    local: bool
    names: tuple[str, ...] = ()  # the names of a ``from ... import``, empty for ``import``


@dataclass
class ImportGraph:
    """Modules of one package, the internal edges between them and each module's external imports.

    ``modules`` maps a dotted module name to its file; ``edges`` are internal imports;
    ``external`` maps a module to ``{top-level third-party name: [Edge, ...]}``.
    """

    root: str
    modules: dict[str, Path]
    edges: list[Edge] = field(default_factory=list)
    external: dict[str, dict[str, list[Edge]]] = field(default_factory=dict)

    def successors(self, module: str) -> set[str]:
        return {e.target for e in self.edges if e.source == module}

    def adjacency(self) -> dict[str, set[str]]:
        adj: dict[str, set[str]] = {m: set() for m in self.modules}
        for e in self.edges:
            adj[e.source].add(e.target)
        return adj


def module_name(package_dir: Path, path: Path) -> str:
    """Dotted name of ``path`` (a .py file under ``package_dir``); ``__init__`` names its package."""
    rel = path.relative_to(package_dir.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Collector(ast.NodeVisitor):
    """Collects (dotted module, imported names or None, line, inside a function) per statement."""

    def __init__(self, module: str, is_package: bool):
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.depth = 0
        self.found: list[tuple[str, list[str] | None, int, bool]] = []

    def _function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_If(self, node: ast.If):
        if _is_type_checking(node.test):
            for child in node.orelse:  # only the `else:` branch runs
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import):
        for alias in node.names:
            self.found.append((alias.name, None, node.lineno, self.depth > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom):
        if node.level:
            parts = self.package.split(".")
            if node.level - 1 > len(parts) - 1:
                raise ValueError(f"{self.module}:{node.lineno}: relative import beyond the top package")
            base = ".".join(parts[: len(parts) - (node.level - 1)])
            target = f"{base}.{node.module}" if node.module else base
        else:
            target = node.module or ""
        self.found.append((target, [a.name for a in node.names], node.lineno, self.depth > 0))


def build(package_dir: Path | str) -> ImportGraph:
    """Read every ``*.py`` under ``package_dir`` (a directory with ``__init__.py``)."""
    package_dir = Path(package_dir).resolve()
    root = package_dir.name
    files = sorted(package_dir.rglob("*.py"))
    graph = ImportGraph(root=root, modules={module_name(package_dir, p): p for p in files})
    for name, path in graph.modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        collector = _Collector(name, path.name == "__init__.py")
        collector.visit(tree)
        rel = str(path.relative_to(package_dir.parent))
        for target, names, line, local in collector.found:
            for dep in _resolve(graph, name, target, names):
                edge = Edge(name, dep, rel, line, local, tuple(names or ()))
                if dep.split(".")[0] == root:
                    if dep != name:
                        graph.edges.append(edge)
                else:
                    graph.external.setdefault(name, {}).setdefault(dep.split(".")[0], []).append(edge)
    return graph


def _resolve(graph: ImportGraph, importer: str, target: str, names: list[str] | None) -> list[str]:
    """Modules a statement makes run: the target (or its submodules) plus enclosing packages."""
    if target.split(".")[0] != graph.root:
        return [target]
    deps = []
    if names is None:
        deps.append(target)
    else:
        for n in names:
            sub = f"{target}.{n}"
            deps.append(sub if sub in graph.modules else target)
    out = []
    for dep in dict.fromkeys(deps):
        parts = dep.split(".")
        for i in range(1, len(parts) + 1):
            pkg = ".".join(parts[:i])
            if pkg not in graph.modules:
                continue
            encloses = importer == pkg or importer.startswith(pkg + ".")
            if i == len(parts) or not encloses:
                out.append(pkg)
        if dep not in graph.modules:
            raise ValueError(f"{importer}: imports {dep}, which is not a module of the package")
    return list(dict.fromkeys(out))


def strongly_connected_components(adj: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); returns only components that contain a cycle, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(adj):
        if start in index:
            continue
        work = [(start, iter(sorted(adj[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(adj[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1 or node in adj[node]:
                    out.append(sorted(comp))
    return sorted(out)


def shortest_cycle(graph: ImportGraph, component: list[str]) -> list[Edge]:
    """One shortest cycle through the component's first module, as the edges that make it."""
    members = set(component)
    start = component[0]
    by_source: dict[str, list[Edge]] = {}
    for e in graph.edges:
        if e.source in members and e.target in members:
            by_source.setdefault(e.source, []).append(e)
    paths: dict[str, list[Edge]] = {start: []}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for e in sorted(by_source.get(node, []), key=lambda e: (e.target, e.line)):
                if e.target == start:
                    return paths[node] + [e]
                if e.target not in paths:
                    paths[e.target] = paths[node] + [e]
                    nxt.append(e.target)
        frontier = nxt
    raise AssertionError(f"no cycle through {start} in {component}")


def describe_cycle(edges: list[Edge]) -> str:
    """``a -> b (a.py:3) -> a (b.py:9, in a function)``."""
    text = edges[0].source
    for e in edges:
        where = f"{e.path}:{e.line}" + (", in a function" if e.local else "")
        text += f" -> {e.target} ({where})"
    return text


def reachable(graph: ImportGraph, start: str) -> dict[str, list[Edge]]:
    """Every internal module ``start`` loads, directly or not, with one import chain to each."""
    adj: dict[str, list[Edge]] = {}
    for e in graph.edges:
        adj.setdefault(e.source, []).append(e)
    chains: dict[str, list[Edge]] = {start: []}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for e in adj.get(node, []):
                if e.target not in chains:
                    chains[e.target] = chains[node] + [e]
                    nxt.append(e.target)
        frontier = nxt
    return chains
