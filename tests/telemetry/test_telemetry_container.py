"""The container, levels from the environment, structured logs, and the import cost."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import pytest
from chatmodels import TimeoutError, telemetry
from chatmodels.telemetry import Container, JsonFormatter, Level, Settings
from telemetry_fakes import Telemetry, call


class Widget:
    pass


def test_register_resolve_singleton_has_clear_and_health() -> None:
    c = Container()
    assert not c.has(Widget)
    made: list[Widget] = []
    c.register(Widget, lambda _: made.append(Widget()) or made[-1])
    assert c.has(Widget)
    assert c.resolve(Widget) is c.resolve(Widget) is made[0]
    other = Widget()
    c.singleton(other)
    assert c.resolve(Widget) is other
    c.register(int, lambda _: 1 // 0)
    report = c.health_check()
    assert report["Widget"] == "ok"
    assert report["int"].startswith("error: ZeroDivisionError")
    c.clear()
    assert not c.has(Widget)
    assert c.has(Settings)
    with pytest.raises(LookupError):
        c.resolve(Widget)


def test_levels_and_content_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env() == Settings(Level.STANDARD, False)
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    monkeypatch.setenv("CHATMODELS_OBSERVABILITY_LEVEL", "debug")
    assert Settings.from_env() == Settings(Level.DEBUG, True)
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert Settings.from_env(level="standard").level is Level.OFF
    assert telemetry.TelemetryObserver(Container()).start(*call()).correlation_id is None


def test_failure_log_record_is_structured_json(tel: Telemetry) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("chatmodels")
    logger.addHandler(handler)
    try:
        error = TimeoutError("took too long", op="invoke", provider="openai")
        tel.observer.start(*call()).fail(error)
    finally:
        logger.removeHandler(handler)
    record = json.loads(stream.getvalue().splitlines()[-1])
    (span,) = tel.finished()
    trace_id = format(span.context.trace_id, "032x")
    assert record["level"] == "WARNING"
    assert record["op"] == "invoke"
    assert record["provider"] == "openai"
    assert record["model"] == "gpt-4o-mini"
    assert record["code"] == "timeout"
    assert record["correlation_id"] == error.correlation_id == trace_id
    assert record["trace_id"] == trace_id
    assert len(record["span_id"]) == 16


def test_importing_telemetry_does_not_import_opentelemetry() -> None:
    code = "import sys, chatmodels.telemetry; print('opentelemetry' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_configure_installs_the_global_container() -> None:
    previous = telemetry.get_container()
    try:
        built = telemetry.configure(level="metrics")
        assert telemetry.get_container() is built
        assert built.resolve(Settings).level is Level.METRICS
    finally:
        telemetry.set_container(previous)


def test_registry_operation_span_and_error() -> None:
    from chatmodels import ProviderNotFoundError
    from chatmodels.telemetry._hooks import registry_operation
    from telemetry_fakes import make_telemetry

    for t in make_telemetry():
        container = t.observer._container
        assert container is not None
        previous = telemetry.set_container(container)
        try:
            with registry_operation("create", provider="openai", backend="rust"):
                pass
            error = ProviderNotFoundError("no such provider", op="create", provider="nope")
            with pytest.raises(ProviderNotFoundError), registry_operation("create", "nope"):
                raise error
        finally:
            telemetry.set_container(previous)  # type: ignore[arg-type]
        ok, failed = t.finished()
        assert ok.name == "chatmodels.registry.create"
        assert ok.kind.name == "INTERNAL"
        assert dict(ok.attributes) == {
            "chatmodels.operation": "create",
            "chatmodels.provider": "openai",
            "chatmodels.backend": "rust",
        }
        assert failed.attributes["error.type"] == "provider_not_found"
        assert failed.status.status_code.name == "ERROR"
        assert error.correlation_id == format(failed.context.trace_id, "032x")
