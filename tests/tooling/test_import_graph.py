"""The package's import graph, read from the source with `ast`: every import counts, those
inside functions included (only ``if TYPE_CHECKING:`` blocks are left out: they never run).

The registry knows nothing of the built-in providers (the global registry loads them), the
transport, the value types, the tools and the providers are in no import circle, and no
circle appears beyond those listed in `KNOWN_CYCLES`, which only shrink. The telemetry seam is
one-way, counting the ``TYPE_CHECKING`` imports too: the model and its streams know only
`_observe`; `telemetry` implements it; the container knows no observer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "chatmodels"
EXTENSIONS = frozenset({"chatmodels._core"})  # compiled: imports nothing of the package

# Circles that remain, each left whole to the rework of its area. A new circle, or a module
# joining one of these, fails `test_no_other_import_cycle`.
KNOWN_CYCLES: tuple[frozenset[str], ...] = (
    # the route state and its Python twin, and routes built by (and registering in) a registry
    frozenset({"chatmodels._routes._pystate", "chatmodels._routes._state"}),
    frozenset(
        {
            "chatmodels._global",
            "chatmodels._registry",
            "chatmodels._routes._config",
            "chatmodels._routes._model",
            "chatmodels._routes._route",
        }
    ),
)
#: no import circle may pass through any of these (``telemetry.*``: the whole subpackage)
SEAM = ("chatmodels._model", "chatmodels._request", "chatmodels._stream", "chatmodels._observe")
# Modules in no circle at all.
ACYCLIC_PREFIXES = (
    "chatmodels._transport",
    "chatmodels._providers",
    "chatmodels._types",
    "chatmodels._tools",
    "chatmodels._metadata",
    "chatmodels._errors",
)


def _modules(root: Path = PACKAGE) -> dict[str, Path]:
    found = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(name: str, path: Path, modules: dict[str, Path], type_checking: bool) -> set[str]:
    """The package's modules that module `name` imports when it runs (and, with
    `type_checking`, those it names for the type checker only)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    named: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if not type_checking and isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit_one(other)
                continue
            visit_one(child)

    def visit_one(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            if source not in EXTENSIONS:
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    if sub in modules:
                        named.add(sub)
                    elif sub not in EXTENSIONS:
                        named.add(source)
        visit(node)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    edges = set()
    for target in named:
        while target and target not in modules:  # a name inside a module: the module
            target = target.rpartition(".")[0]
        if target and target != name:
            edges.add(target)
    return edges


def import_graph(root: Path = PACKAGE, type_checking: bool = False) -> dict[str, set[str]]:
    """Module → the package's modules it imports."""
    modules = _modules(root)
    return {name: _imported(name, path, modules, type_checking) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_the_graph_reader_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "chatmodels"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from ._a import A\n")
    (pkg / "_a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ._b import B\n"
        "def f():\n    from .sub import _c\n"
        "A = 1\n"
    )
    (pkg / "_b.py").write_text("from . import _a\nfrom ._core import X\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "_c.py").write_text("def g():\n    import chatmodels._b\n")
    graph = import_graph(pkg)
    assert graph == {
        "chatmodels": {"chatmodels._a"},
        "chatmodels._a": {"chatmodels.sub._c"},  # the TYPE_CHECKING import is not one
        "chatmodels._b": {"chatmodels._a"},  # the extension is not a module of the tree
        "chatmodels.sub": set(),
        "chatmodels.sub._c": {"chatmodels._b"},
    }
    assert cycles(graph) == [frozenset({"chatmodels._a", "chatmodels._b", "chatmodels.sub._c"})]
    assert "chatmodels._b" in import_graph(pkg, type_checking=True)["chatmodels._a"]


def test_the_registry_knows_nothing_of_the_builtins() -> None:
    graph = import_graph()
    assert not {m for m in graph["chatmodels._registry"] if m.startswith("chatmodels._providers")}
    assert "chatmodels._global" not in graph["chatmodels._registry"]
    # the built-ins are loaded by the global registry's creation, and import no registry back
    assert "chatmodels._providers._builtins" in graph["chatmodels._global"]
    for name, imported in graph.items():
        if name.startswith("chatmodels._providers"):
            assert not {"chatmodels._registry", "chatmodels._global"} & imported, name


def test_transport_types_tools_and_providers_are_in_no_cycle() -> None:
    for component in cycles(import_graph()):
        caught = sorted(m for m in component if m.startswith(ACYCLIC_PREFIXES))
        assert not caught, f"{caught} in the import cycle {sorted(component)}"


def test_no_other_import_cycle() -> None:
    for component in cycles(import_graph()):
        assert any(component <= known for known in KNOWN_CYCLES), sorted(component)


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for other in graph[todo.pop()]:
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def _in_seam(name: str) -> bool:
    return (
        name in SEAM or name == "chatmodels.telemetry" or name.startswith("chatmodels.telemetry.")
    )


def test_the_seam_edges_are_read() -> None:
    graph = import_graph(type_checking=True)
    assert "chatmodels._observe" in graph["chatmodels._model"]  # `from ._observe import ...`
    assert "chatmodels.telemetry" in graph["chatmodels"]  # inside `_telemetry_observer()`
    assert "chatmodels.telemetry" in graph["chatmodels._model"]  # under TYPE_CHECKING
    assert "chatmodels.telemetry._container" in graph["chatmodels.telemetry._observer"]


def test_no_import_circle_through_the_model_the_seam_or_telemetry() -> None:
    circles = [sorted(c) for c in cycles(import_graph(type_checking=True)) if any(map(_in_seam, c))]
    assert circles == []


def test_the_seam_imports_no_telemetry_and_no_model() -> None:
    reached = _reachable(import_graph(type_checking=True), "chatmodels._observe")
    assert not {n for n in reached if n.startswith("chatmodels.telemetry")}, reached
    assert not {"chatmodels._model", "chatmodels._stream"} & reached


@pytest.mark.parametrize(
    "model", ["chatmodels._model", "chatmodels._stream", "chatmodels._request"]
)
def test_the_model_reaches_telemetry_only_for_types(model: str) -> None:
    # `_model` names `telemetry.Container` under TYPE_CHECKING only; at run time the model
    # layer talks to `_observe` alone.
    graph = import_graph()
    assert not {n for n in _reachable(graph, model) if n.startswith("chatmodels.telemetry")}
    assert "chatmodels._observe" in graph["chatmodels._model"]


def test_the_container_knows_no_observer() -> None:
    reached = _reachable(import_graph(type_checking=True), "chatmodels.telemetry._container")
    assert "chatmodels.telemetry._observer" not in reached
