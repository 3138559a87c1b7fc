"""A registry or a single provider instance with its own telemetry container: its spans and
metrics go there, not to the global container (which the `sdk` fixture records)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import chatmodels
import pytest
from chatmodels import ProviderRegistry, telemetry
from chatmodels._observe import NoOpScope, set_observer
from chatmodels._providers._fake import FakeChatModel
from chatmodels._request import ChatRequest
from chatmodels.telemetry import _observer
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sdk_helpers import SDK


class Own:
    """A container of its own, over in-memory SDK providers; never installed globally."""

    def __init__(self, level: str = "standard") -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.container = (
            telemetry.Container()
            .with_tracer_provider(self.tracer_provider)
            .with_meter_provider(self.meter_provider)
            .with_observability_level(level)
        )

    def names(self) -> list[str]:
        return [s.name for s in self.exporter.get_finished_spans()]

    def spans(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(prefix)]

    def metric_names(self) -> set[str]:
        data = self.reader.get_metrics_data()
        if data is None:
            return set()
        return {
            m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        }

    def close(self) -> None:
        self.meter_provider.shutdown()
        self.tracer_provider.shutdown()


@pytest.fixture
def own() -> Iterator[Own]:
    made = Own()
    yield made
    made.close()


def _fake(options: Any) -> FakeChatModel:
    return FakeChatModel(None, options)


def test_registry_with_its_own_container(backend: str, sdk: SDK, own: Own) -> None:
    reg = ProviderRegistry(backend, container=own.container)  # type: ignore[arg-type]
    assert reg.container is own.container
    reg.register("echo", _fake, metadata={"default_model": "e-1"})
    model = reg.create("echo")
    assert model.container is own.container
    model.invoke("hi")
    list(model.stream("hi"))
    with pytest.raises(chatmodels.ProviderNotFoundError):
        reg.create("nope")
    chatmodels.health_check(registry=reg)
    reg.unregister("echo")

    assert own.names() == [
        "chatmodels.registry.register",
        "chatmodels.registry.create",
        "chat e-1",
        "chat e-1",
        "chatmodels.registry.create",
        "chatmodels.registry.health",
        "chatmodels.registry.unregister",
    ]
    assert all(s.kind is SpanKind.INTERNAL for s in own.spans("chatmodels.registry."))
    chat = own.spans("chat ")
    assert all(s.kind is SpanKind.CLIENT for s in chat)
    assert {(s.attributes or {})["gen_ai.request.model"] for s in chat} == {"e-1"}
    assert (own.spans("chatmodels.registry.create")[0].attributes or {})[
        "chatmodels.backend"
    ] == backend
    assert {
        "gen_ai.client.operation.duration",
        "gen_ai.client.token.usage",
        "chatmodels.registry.creations",
        "chatmodels.registry.creation.duration",
        "chatmodels.provider.health",
    } <= own.metric_names()
    assert sdk.spans() == []
    data = sdk.reader.get_metrics_data()
    global_metrics = (
        set()
        if data is None
        else {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    )
    assert "gen_ai.client.operation.duration" not in global_metrics
    assert "chatmodels.registry.creation.duration" not in global_metrics


def test_async_creation_binds_the_container(backend: str, sdk: SDK, own: Own) -> None:
    reg = ProviderRegistry(backend, container=own.container)  # type: ignore[arg-type]
    reg.register("echo", _fake, metadata={"default_model": "e-1"})

    async def run() -> None:
        model = await reg.acreate("echo")
        assert model.container is own.container
        await model.ainvoke("hi")

    asyncio.run(run())
    assert own.names() == ["chatmodels.registry.register", "chatmodels.registry.create", "chat e-1"]
    assert sdk.spans() == []


def test_one_provider_instance_with_its_own_container(sdk: SDK, own: Own) -> None:
    alone = chatmodels.new_registry_provider("fake", {}, container=own.container)
    shared = chatmodels.new_registry_provider("fake", {})
    assert alone.container is own.container
    assert shared.container is None
    alone.invoke("hi")
    shared.invoke("hi")
    assert own.names() == ["chatmodels.registry.create", "chat fake-1"]
    assert [s.name for s in sdk.spans()] == ["chatmodels.registry.create", "chat fake-1"]

    # set after creation, and back to the global one
    other = Own()
    try:
        shared.container = other.container
        shared.invoke("hi")
        assert other.names() == ["chat fake-1"]
        shared.container = None
        shared.invoke("hi")
        assert len(sdk.spans("chat ")) == 2
    finally:
        other.close()


def test_create_container_overrides_the_registry_one(sdk: SDK, own: Own) -> None:
    other = Own()
    try:
        reg = ProviderRegistry(container=other.container)
        reg.register("echo", _fake, metadata={"default_model": "e-1"})
        model = reg.create("echo", container=own.container)
        model.invoke("hi")
        assert own.names() == ["chatmodels.registry.create", "chat e-1"]
        assert other.names() == ["chatmodels.registry.register"]
    finally:
        other.close()


def test_own_container_level_and_one_observer_per_container(sdk: SDK) -> None:
    quiet = Own(level="off")
    try:
        model = chatmodels.new_registry_provider("fake", {}, container=quiet.container)
        model.invoke("hi")
        assert quiet.names() == []
        assert quiet.container.observer() is quiet.container.observer()
        scope = quiet.container.observer().start(model._call_site, _request())
        assert isinstance(scope, NoOpScope)
    finally:
        quiet.close()


def test_own_container_even_with_the_global_observer_off(own: Own) -> None:
    previous = set_observer(None)
    try:
        model = chatmodels.new_registry_provider("fake", {}, container=own.container)
        model.invoke("hi")
    finally:
        set_observer(previous)
    assert "chat fake-1" in own.names()


def test_level_off_builds_no_scope(sdk: SDK, monkeypatch: pytest.MonkeyPatch) -> None:

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a scope built at level off")

    chatmodels.configure(
        tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider, level="off"
    )
    model = chatmodels.new_registry_provider("fake", {})
    monkeypatch.setattr(_observer, "_new_object", boom)
    monkeypatch.setattr(_observer, "_new_static", boom)
    monkeypatch.setattr(_observer, "_QuietScope", boom)
    model.invoke("hi")
    list(model.stream("hi"))
    assert sdk.spans("chat ") == []


def _request() -> ChatRequest:
    return ChatRequest((), "fake-1", {})
