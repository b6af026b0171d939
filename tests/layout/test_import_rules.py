"""The import rules of the codebase (README, "Layout"), held by a test.

1. No import cycle anywhere, counting in-function imports: a lazy import that only dodges a
   cycle at run time still closes it here.
2. The gateway never imports the harness (DESIGN.md, principle 2: if both shared code, their
   bugs would cancel); they share ``specs/`` data only.
3. The harness is in parts, each allowed to see only the parts below it:
   ``core`` (the sans-IO verdict engine) <- ``report`` / ``targets`` <- ``run`` <- ``faces``.
   The core imports no transport, runner, target, report or face, and no networking library.

The graph is read from the source (import_graph.py); the tests at the end prove the reader
catches each kind of breach on a small tree written for the purpose.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from import_graph import ImportGraph, read_graph

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("harness", "reference_gateway", "specs", "suites", "loadtests")

# importer prefix -> imported prefixes it must not reach (project modules or third-party names)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "reference_gateway": ("harness", "suites", "loadtests"),
    "specs": ("harness", "reference_gateway", "suites", "loadtests"),
    "harness.core": ("harness.run", "harness.targets", "harness.report", "harness.faces",
                     "reference_gateway", "loadtests", "suites",
                     # sans-IO: bytes and objects in, findings out (the h11 model)
                     "socket", "ssl", "asyncio", "threading", "subprocess", "httpx", "httpcore",
                     "h11", "websockets", "starlette", "uvicorn", "anyio"),
    "harness.report": ("harness.run", "harness.targets", "harness.faces", "reference_gateway", "loadtests"),
    "harness.targets": ("harness.run", "harness.report", "harness.faces", "loadtests"),
    "harness.run": ("harness.report", "harness.faces", "loadtests"),
}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def breaches(graph: ImportGraph, forbidden: dict[str, tuple[str, ...]]) -> list[str]:
    found = []
    for edge in graph.edges:
        for importer, banned in forbidden.items():
            if _within(edge.importer, importer) and any(_within(edge.imported, b) for b in banned):
                where = graph.modules[edge.importer].name
                found.append(f"{edge.importer} imports {edge.imported} ({where}:{edge.line}"
                             f"{', in a function' if edge.in_function else ''})")
    return sorted(set(found))


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return read_graph(ROOT, PACKAGES)


def test_no_import_cycle(graph: ImportGraph) -> None:
    assert graph.cycles() == [], "import cycles (in-function imports included)"


def test_layers(graph: ImportGraph) -> None:
    assert breaches(graph, FORBIDDEN) == []


def test_harness_is_in_its_parts(graph: ImportGraph) -> None:
    """Every harness module lives in one of the parts the rules name (none left at the top)."""
    parts = ("harness.core", "harness.run", "harness.targets", "harness.report", "harness.faces")
    loose = [m for m in graph.modules if _within(m, "harness") and m != "harness"
             and not any(_within(m, p) for p in parts)]
    assert loose == []


def test_the_graph_sees_the_code(graph: ImportGraph) -> None:
    """A guard on the reader: it must find the edges everyone knows exist."""
    assert "harness.core.findings" in graph.targets("harness.core.stream")
    assert "reference_gateway.config" in graph.targets("reference_gateway.app")


# -- the reader catches each breach, on a tree written for it --------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> ImportGraph:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return read_graph(tmp_path, ("pkg",))


def test_a_cycle_through_an_in_function_import_is_found(tmp_path: Path) -> None:
    graph = _tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import thing\n",
        "pkg/b.py": "def thing():\n    from pkg import a  # lazy: dodges the cycle at run time\n",
        "pkg/c.py": "import pkg.a\n",
    })
    assert graph.cycles() == [["pkg.a", "pkg.b"]]


def test_relative_and_package_imports_resolve(tmp_path: Path) -> None:
    graph = _tree(tmp_path, {
        "pkg/__init__.py": "VALUE = 1\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/x.py": "from . import y\nfrom .. import VALUE\nfrom ..z import w\n",
        "pkg/sub/y.py": "",
        "pkg/z.py": "w = 2\n",
    })
    assert graph.targets("pkg.sub.x") == {"pkg.sub.y", "pkg", "pkg.z"}
    assert graph.cycles() == []


def test_a_layer_breach_is_found(tmp_path: Path) -> None:
    graph = _tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/core.py": "import json\n\ndef later():\n    import httpx\n",
        "pkg/faces.py": "from pkg import core\n",
    })
    found = breaches(graph, {"pkg.core": ("httpx", "pkg.faces")})
    assert found == ["pkg.core imports httpx (core.py:4, in a function)"]
    assert breaches(graph, {"pkg.faces": ("pkg.runner",)}) == []
