"""The project's import graph, read from the source (``ast``), never by importing it.

Every ``import`` and ``from ... import`` statement counts, wherever it is: at module level, in
a function body (a lazy import), under ``if TYPE_CHECKING``. An in-function import that dodges
a cycle at run time is still an edge here, so the cycle shows.

An edge goes to the deepest project module a statement names: ``from pkg import sub`` is an
edge to ``pkg.sub`` when that is a module, else to ``pkg`` (``sub`` is then a name defined in
``pkg/__init__.py``). Relative imports are resolved against the importing module's package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str  # a project module, or the top-level name of anything else (``httpx``)
    line: int
    in_function: bool


@dataclass
class ImportGraph:
    modules: dict[str, Path]
    edges: list[Edge] = field(default_factory=list)

    def targets(self, module: str) -> set[str]:
        return {e.imported for e in self.edges if e.importer == module and e.imported in self.modules}

    def cycles(self) -> list[list[str]]:
        """The strongly connected components of more than one module (Tarjan), each sorted."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []
        successors = {m: sorted(self.targets(m)) for m in self.modules}

        def connect(start: str) -> None:  # iterative: no recursion limit on a deep graph
            work = [(start, iter(successors[start]))]
            index[start] = low[start] = len(index)
            stack.append(start)
            on_stack.add(start)
            while work:
                node, children = work[-1]
                child = next(children, None)
                if child is None:
                    work.pop()
                    if work:
                        low[work[-1][0]] = min(low[work[-1][0]], low[node])
                    if low[node] == index[node]:
                        component = []
                        while True:
                            member = stack.pop()
                            on_stack.discard(member)
                            component.append(member)
                            if member == node:
                                break
                        if len(component) > 1:
                            found.append(sorted(component))
                elif child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])

        for module in sorted(self.modules):
            if module not in index:
                connect(module)
        return sorted(found)


def module_names(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted name -> file, for every ``.py`` under each top-level package of ``root``."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def read_graph(root: Path, packages: Iterable[str]) -> ImportGraph:
    graph = ImportGraph(module_names(root, packages))
    for module, path in graph.modules.items():
        is_package = path.name == "__init__.py"
        package = module if is_package else module.rpartition(".")[0]
        for node, in_function in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for name in _named_modules(node, package):
                target = _deepest(name, graph.modules)
                if target != module:
                    graph.edges.append(Edge(module, target, node.lineno, in_function))
    return graph


def _imports(tree: ast.AST) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool]]:
    def visit(node: ast.AST, in_function: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, in_function
            yield from visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                      ast.Lambda)))

    yield from visit(tree, False)


def _named_modules(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = package.split(".")
        anchor = anchor[:len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    return [f"{base}.{alias.name}" for alias in node.names]


def _deepest(name: str, modules: dict[str, Path]) -> str:
    """The longest prefix of ``name`` that is a project module, else its top-level name."""
    probe = name
    while probe:
        if probe in modules:
            return probe
        probe = probe.rpartition(".")[0]
    return name.split(".")[0]
