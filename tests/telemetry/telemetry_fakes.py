"""Shared fakes for the telemetry tests: a call (its CallSite and ChatRequest), responses,
chunks and usage built from the real types, and an SDK setup with in-memory exporters. (No
tests here.)"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from chatmodels import ChatChunk, ChatResponse, FinishReason, Message, Usage, telemetry
from chatmodels._observe import CallSite
from chatmodels._request import ChatRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_SITE = CallSite("openai", "openai", "api.openai.com", 443)


def call(
    *,
    model: str = "gpt-4o-mini",
    params: Mapping[str, Any] | None = None,
    stream: bool = False,
    conversation_id: str | None = None,
    messages: Sequence[Any] = (),
    tools: Sequence[Any] = (),
    system_instructions: Sequence[str] = (),
    site: CallSite = _SITE,
) -> tuple[CallSite, ChatRequest]:
    """What `observer.start` is given for a call to OpenAI's API (one CallSite for all)."""
    request = ChatRequest(
        tuple(messages),
        model,
        dict(params or {}),
        tools=tuple(tools),
        conversation_id=conversation_id,
        stream=stream,
        system_instructions=tuple(system_instructions),
    )
    return site, request


def sample_usage(**fields: Any) -> Usage:
    """A real `Usage`: 12 tokens in, 7 out, unless `fields` say otherwise."""
    return Usage(**{"input_tokens": 12, "output_tokens": 7, "total_tokens": 19, **fields})


def sample_response(*, usage: Usage | None = None, text: str = "Hi!") -> ChatResponse:
    """A real `ChatResponse` as OpenAI's API gives it (its usage: `sample_usage()`)."""
    return ChatResponse(
        Message.assistant(text),
        id="chatcmpl-1",
        model="gpt-4o-mini-2024-07-18",
        provider="openai",
        finish_reason=FinishReason.STOP,
        raw_finish_reason="stop",
        usage=usage if usage is not None else sample_usage(),
    )


def sample_chunk(text: str = "x") -> ChatChunk:
    """A real `ChatChunk` of `text`."""
    return ChatChunk(text)


@dataclasses.dataclass
class Telemetry:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    observer: telemetry.TelemetryObserver

    def finished(self) -> list[Any]:
        return list(self.spans.get_finished_spans())

    def metrics(self) -> dict[str, Any]:
        data = self.reader.get_metrics_data()
        out: dict[str, Any] = {}
        assert data is not None
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    out[metric.name] = metric
        return out


def make_telemetry(level: str = "standard", capture_content: bool = False) -> Iterator[Telemetry]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    container = (
        telemetry.Container()
        .with_tracer_provider(tracer_provider)
        .with_meter_provider(meter_provider)
        .with_observability_level(level, capture_content=capture_content)
    )
    yield Telemetry(spans, reader, tracer_provider, telemetry.TelemetryObserver(container))
    meter_provider.shutdown()
    tracer_provider.shutdown()
