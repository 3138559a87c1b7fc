"""The package's import graph, read from the source (ast): every import counts, those inside
functions and under ``if TYPE_CHECKING:`` included. The telemetry seam is one-way: the model
and its streams know only `_observe`; `telemetry` implements it; the container knows no
observer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "chatmodels"

#: no import circle may pass through any of these (``telemetry.*``: the whole subpackage)
SEAM = ("chatmodels._model", "chatmodels._request", "chatmodels._stream", "chatmodels._observe")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that module `name` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):  # `import chatmodels.a.b` imports a.b (and a)
            targets = [_module_of(alias.name, modules) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from . import _x` imports the module `_x`; `from ._x import y` the module `_x`
            targets = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in modules]
            targets = targets or [module]  # (not a package module: another package, _core)
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def _module_of(name: str, modules: dict[str, Path]) -> str:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for w in graph[todo.pop()]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def _in_seam(name: str) -> bool:
    return (
        name in SEAM or name == "chatmodels.telemetry" or name.startswith("chatmodels.telemetry.")
    )


def test_the_graph_reads_the_imports_it_should() -> None:
    # The reader itself: a relative import, one inside a function, one under TYPE_CHECKING.
    graph = _graph()
    assert "chatmodels._observe" in graph["chatmodels._model"]  # `from ._observe import ...`
    assert "chatmodels.telemetry" in graph["chatmodels"]  # inside `_telemetry_observer()`
    assert "chatmodels.telemetry" in graph["chatmodels._model"]  # under TYPE_CHECKING
    assert "chatmodels.telemetry._container" in graph["chatmodels.telemetry._observer"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_import_circle_through_the_model_the_seam_or_telemetry() -> None:
    circles = [sorted(c) for c in _cycles(_graph()) if any(_in_seam(name) for name in c)]
    assert circles == []


def test_the_seam_imports_no_telemetry_and_no_model() -> None:
    graph = _graph()
    reached = _reachable(graph, "chatmodels._observe")  # (the request's type: `_request`)
    assert not {n for n in reached if n.startswith("chatmodels.telemetry")}, reached
    assert not {"chatmodels._model", "chatmodels._stream"} & reached


@pytest.mark.parametrize(
    "model", ["chatmodels._model", "chatmodels._stream", "chatmodels._request"]
)
def test_the_model_reaches_telemetry_only_for_types(model: str) -> None:
    # `_model` names `telemetry.Container` under TYPE_CHECKING only; at run time the model
    # layer talks to `_observe` alone.
    graph = _graph()
    path = _modules()[model]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            typing_only.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and id(node) not in typing_only:
            assert "telemetry" not in (node.module or ""), (model, node.module)
    assert "chatmodels._observe" in graph["chatmodels._model"]


def test_the_container_knows_no_observer() -> None:
    graph = _graph()
    assert "chatmodels.telemetry._observer" not in _reachable(
        graph, "chatmodels.telemetry._container"
    )
