"""Import boundaries between the packages, read from the source with ``ast``.

Every ``import`` and ``from ... import`` counts, at module level or inside a
function (a lazy import is still a dependency), except those under
``if TYPE_CHECKING:``. The rules (docs/index.md, "Layout"):

- no library package imports the command-line package ``defocus_forensics``;
- no cycle among the modules of ``detector`` (e.g. models <-> checkpoints);
- ``analysis`` never imports torch; ``detector`` never imports ``cache`` or
  ``analysis``; ``safeio`` imports nothing of the project.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("detector", "cache", "analysis", "safeio")
PROJECT = (*LIBRARIES, "defocus_forensics")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package = module, is_package
        self.found: list[tuple[str, int]] = []  # (imported name, line)

    def visit_If(self, node: ast.If) -> None:  # noqa: N802 - ast API
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:  # noqa: N802
        self.found += [(alias.name, node.lineno) for alias in node.names]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # noqa: N802
        if node.level:
            package = self.module if self.is_package else self.module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{node.module}" if node.module else package
        else:
            base = node.module or ""
        self.found.append((base, node.lineno))
        # ``from pkg import sub`` imports the submodule pkg.sub when it is one
        self.found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]


def _sources(packages=PROJECT) -> dict[str, Path]:
    out = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            out[_module_name(path)] = path
    return out


MODULES = _sources()


def _imports(name: str) -> list[tuple[str, int]]:
    path = MODULES[name]
    visitor = _Imports(name, path.name == "__init__.py")
    visitor.visit(ast.parse(path.read_text(), filename=str(path)))
    return visitor.found


def _edges(prefix: str) -> dict[str, set[str]]:
    """Module -> project modules it imports, for the modules under ``prefix``."""
    graph: dict[str, set[str]] = {}
    for name in MODULES:
        if name != prefix and not name.startswith(prefix + "."):
            continue
        targets = set()
        for imported, _ in _imports(name):
            if imported in MODULES and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _offenders(packages, forbidden) -> list[str]:
    out = []
    for name, path in MODULES.items():
        if name.split(".")[0] not in packages:
            continue
        for imported, line in _imports(name):
            top = imported.split(".")[0]
            if top in forbidden:
                out.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    return sorted(set(out))


def test_the_sources_were_found():
    assert {"detector.models", "detector.checkpoints", "cache.store", "safeio"} <= set(MODULES)


def test_no_library_imports_the_command_line():
    # caught: detector/checkpoints.py importing defocus_forensics for its version string
    bad = _offenders(LIBRARIES, {"defocus_forensics"})
    assert not bad, "library packages must not import the command line:\n" + "\n".join(bad)


def test_no_import_cycle_among_detector_modules():
    # caught: detector.models re-exporting from detector.checkpoints, which built models
    cycles = _cycles(_edges("detector"))
    assert not cycles, "import cycles in detector/: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_models_and_checkpoints_do_not_import_each_other():
    models = {m for m, _ in _imports("detector.models")}
    assert "detector.checkpoints" not in models, "detector.models imports detector.checkpoints"


def test_analysis_never_imports_torch():
    bad = _offenders(("analysis",), {"torch", "torchvision", "timm", "captum"})
    assert not bad, "analysis/ must run without torch:\n" + "\n".join(bad)


def test_detector_knows_nothing_of_caches_or_analyses():
    bad = _offenders(("detector",), {"cache", "analysis"})
    assert not bad, "detector/ must not import cache or analysis:\n" + "\n".join(bad)


def test_safeio_imports_nothing_of_the_project():
    bad = _offenders(("safeio",), set(PROJECT) - {"safeio"})
    assert not bad, "safeio/ is standard library only:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import defocus_forensics.cli\n", True),
        ("def f():\n    from defocus_forensics import __version__\n", True),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import defocus_forensics\n",
            False,
        ),
        ("import json\n", False),
    ],
)
def test_the_checker_sees_lazy_imports_and_skips_type_checking(source, expected):
    # the rules are only as good as the import finder: lazy imports count, typing-only do not
    visitor = _Imports("detector.x", False)
    visitor.visit(ast.parse(source))
    assert any(n.startswith("defocus_forensics") for n, _ in visitor.found) is expected


def test_the_cycle_finder_finds_a_two_module_cycle():
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": set()}
    assert _cycles(graph) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
