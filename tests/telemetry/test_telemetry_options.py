"""`ProviderOptions.enable_tracing`, `enable_metrics` and `enable_logging`: each turns off
its signal for that model's calls only; correlation ids and errors stay as they are, and the
registry's own spans and metrics follow the registry's container."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import chatmodels
import pytest
from chatmodels import ChatModel, telemetry
from chatmodels._observe import set_observer
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Telemetry:
    """In-memory spans, metrics and log records, installed as chatmodels' telemetry."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.handler = _Records()
        self.logger = logging.getLogger("chatmodels.test_options")
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self.handler)
        chatmodels.configure(
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            logger=self.logger,
            level="standard",
        )

    def chat_spans(self) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith("chat ")]

    def registry_spans(self) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if "registry" in s.name]

    def points(self, prefix: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [
            point
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name.startswith(prefix)
            for point in m.data.data_points
        ]

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.meter_provider.shutdown()
        self.tracer_provider.shutdown()


@pytest.fixture
def tel() -> Iterator[Telemetry]:
    previous_container = telemetry.get_container()
    previous_observer = set_observer(telemetry.TelemetryObserver())
    installed = Telemetry()
    yield installed
    installed.close()
    set_observer(previous_observer)
    telemetry.set_container(previous_container)


def _fake(*responses: Any, **options: Any) -> ChatModel:
    return chatmodels.new_registry_provider(
        "fake", {"provider_specific": {"responses": responses}, **options}
    )


def _call(model: ChatModel, kind: str) -> None:
    if kind == "invoke":
        model.invoke("hi")
    elif kind == "stream":
        list(model.stream("hi"))
    else:
        asyncio.run(model.ainvoke("hi"))


def _fail(model: ChatModel, kind: str) -> chatmodels.ChatModelError:
    with pytest.raises(chatmodels.RateLimitError) as caught:
        _call(model, kind)
    return caught.value


ERROR = {"error": "rate_limited", "message": "slow down"}
KINDS = ["invoke", "stream", "ainvoke"]


@pytest.mark.parametrize("kind", KINDS)
def test_by_default_a_failed_call_makes_a_span_a_metric_point_and_a_log_record(
    tel: Telemetry, kind: str
) -> None:
    error = _fail(_fake(ERROR), kind)
    (span,) = tel.chat_spans()
    assert error.correlation_id == format(span.context.trace_id, "032x")
    assert len(tel.points("gen_ai.client.operation.duration")) == 1
    (record,) = tel.handler.records
    assert record.correlation_id == error.correlation_id  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS)
def test_enable_tracing_false_makes_no_span(tel: Telemetry, kind: str) -> None:
    error = _fail(_fake(ERROR, enable_tracing=False), kind)
    assert tel.chat_spans() == []
    # The other signals, the id and the error are as without the option.
    assert len(tel.points("gen_ai.client.operation.duration")) == 1
    assert error.code == "rate_limited"
    assert error.correlation_id is not None
    (record,) = tel.handler.records
    assert record.correlation_id == error.correlation_id  # type: ignore[attr-defined]
    assert record.code == "rate_limited"  # type: ignore[attr-defined]
    # The registry's own span follows the registry's container.
    assert [s.name for s in tel.registry_spans()] == ["chatmodels.registry.create"]


@pytest.mark.parametrize("kind", KINDS)
def test_enable_metrics_false_records_no_metric_point(tel: Telemetry, kind: str) -> None:
    error = _fail(_fake(ERROR, enable_metrics=False), kind)
    assert tel.points("gen_ai.client.") == []
    (span,) = tel.chat_spans()
    assert span.attributes is not None
    assert span.attributes["error.type"] == "rate_limited"
    assert error.correlation_id == format(span.context.trace_id, "032x")
    assert len(tel.handler.records) == 1
    # The registry's creation metrics are not the model's.
    assert len(tel.points("chatmodels.registry.creation.duration")) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_enable_logging_false_writes_no_log_record(tel: Telemetry, kind: str) -> None:
    error = _fail(_fake(ERROR, enable_logging=False), kind)
    assert tel.handler.records == []
    (span,) = tel.chat_spans()
    assert error.correlation_id == format(span.context.trace_id, "032x")
    assert len(tel.points("gen_ai.client.operation.duration")) == 1


def test_all_three_off_still_gives_the_error_a_correlation_id(tel: Telemetry) -> None:
    model = _fake("fine", ERROR, enable_tracing=False, enable_metrics=False, enable_logging=False)
    assert model.invoke("hi").text == "fine"
    error = _fail(model, "invoke")
    assert error.correlation_id is not None
    assert tel.chat_spans() == []
    assert tel.points("gen_ai.client.") == []
    assert tel.handler.records == []


def test_the_options_apply_per_model(tel: Telemetry) -> None:
    quiet = _fake("a", enable_tracing=False, enable_metrics=False)
    loud = _fake("b")
    quiet.invoke("hi")
    loud.invoke("hi")
    assert len(tel.chat_spans()) == 1
    assert len(tel.points("gen_ai.client.operation.duration")) == 1


def test_enable_logging_false_with_idle_global_providers(
    tel: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no SDK behind OpenTelemetry's global providers, a call still logs its failure
    (and its retried attempts) unless its model says not to."""
    from opentelemetry import trace
    from opentelemetry.metrics import _internal as metrics_api

    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(metrics_api, "_METER_PROVIDER", None)
    telemetry.set_container(telemetry.Container().with_logger(tel.logger))
    _fail(_fake(ERROR), "invoke")
    assert len(tel.handler.records) == 1
    error = _fail(_fake(ERROR, enable_logging=False), "invoke")
    assert len(tel.handler.records) == 1
    assert error.correlation_id is not None
