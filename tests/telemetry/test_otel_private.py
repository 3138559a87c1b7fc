"""OpenTelemetry's private names: all in `telemetry._otel_private`, each still there in the
installed version (an upgrade that drops one fails here, loudly), and each degrading to the
public API, never raising, when it is gone."""

from __future__ import annotations

import ast
import importlib
from contextvars import ContextVar
from pathlib import Path

import pytest
from chatmodels.telemetry import _otel_private
from opentelemetry import context, trace

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "chatmodels"


@pytest.mark.parametrize(("module", "name"), _otel_private.PRIVATE_NAMES)
def test_every_listed_private_name_still_exists(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name), (
        f"{module}.{name} is gone from this OpenTelemetry: update telemetry/_otel_private.py "
        "(its public fallback is in use meanwhile)"
    )


def test_the_private_names_still_mean_what_they_are_used_for() -> None:
    runtime = context._RUNTIME_CONTEXT  # type: ignore[attr-defined]
    assert isinstance(runtime._current_context, ContextVar)  # type: ignore[attr-defined]
    attach, detach, current = _otel_private.context_functions()
    assert attach == runtime._current_context.set  # type: ignore[attr-defined]
    token = attach(context.Context(probe=1))
    assert context.get_value("probe") == 1
    assert current() == context.get_current()
    detach(token)
    from opentelemetry.trace.propagation import _SPAN_KEY

    assert _otel_private.span_key() == _SPAN_KEY
    # the API's own proxies are recognised; idle while no SDK provider is set behind them
    from opentelemetry.metrics import _internal as metrics_internal

    tracer_idle = _otel_private.idle_check(trace.ProxyTracerProvider())
    meter_idle = _otel_private.idle_check(metrics_internal._ProxyMeterProvider())
    assert tracer_idle is not None
    assert meter_idle is not None
    assert tracer_idle() is (trace._TRACER_PROVIDER is None)  # type: ignore[attr-defined]
    assert meter_idle() is (metrics_internal._METER_PROVIDER is None)
    assert _otel_private.idle_check(object()) is None
    assert _otel_private.log_record_class() is not None
    assert _otel_private.global_logger_provider() is not None


def test_without_the_private_names_everything_degrades_to_the_public_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.metrics import _internal as metrics_internal

    monkeypatch.delattr(trace, "_TRACER_PROVIDER")
    monkeypatch.delattr(metrics_internal, "_METER_PROVIDER")
    monkeypatch.delattr(context, "_RUNTIME_CONTEXT")
    assert _otel_private.idle_check(trace.ProxyTracerProvider()) is None  # counts as live
    assert _otel_private.idle_check(metrics_internal._ProxyMeterProvider()) is None
    assert _otel_private.context_functions() == (
        context.attach,
        context.detach,
        context.get_current,
    )
    monkeypatch.setattr(trace, "set_span_in_context", lambda span, parent=None: parent)
    assert _otel_private.span_key() is None
    import opentelemetry

    monkeypatch.delattr(opentelemetry, "_logs")
    monkeypatch.setitem(__import__("sys").modules, "opentelemetry._logs", None)
    assert _otel_private.log_record_class() is None
    assert _otel_private.global_logger_provider() is None


def _private_uses(path: Path) -> list[str]:
    """Where `path` reads an OpenTelemetry name that starts with an underscore."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    bound: set[str] = set()  # local names of imported OpenTelemetry modules
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("opentelemetry"):
            module = node.module or ""
            if any(part.startswith("_") for part in module.split(".")):
                found.append(f"{path.name}:{node.lineno} from {module}")
            for alias in node.names:
                if alias.name.startswith("_"):
                    found.append(f"{path.name}:{node.lineno} {module}.{alias.name}")
                bound.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("opentelemetry"):
                    if any(part.startswith("_") for part in alias.name.split(".")):
                        found.append(f"{path.name}:{node.lineno} import {alias.name}")
                    bound.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{path.name}:{node.lineno} {node.value.id}.{node.attr}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id in bound
            and isinstance(node.args[1], ast.Constant)
            and str(node.args[1].value).startswith("_")
        ):
            found.append(f"{path.name}:{node.lineno} getattr {node.args[1].value}")
    return found


def test_no_other_module_uses_a_private_name() -> None:
    own = _private_uses(PACKAGE / "telemetry" / "_otel_private.py")
    assert own, "the detector finds the module's own uses"
    others = [
        use
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_otel_private.py"
        for use in _private_uses(path)
    ]
    assert others == []
