"""Spans of chat calls: name, kind, attributes, status, events, nesting and stream endings."""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Iterator

import pytest
from chatmodels import RateLimitError, TimeoutError
from chatmodels.telemetry import _observer as observer_module
from chatmodels.telemetry import current_correlation_id
from opentelemetry import baggage, context, trace
from opentelemetry.trace import SpanKind, StatusCode
from telemetry_fakes import (
    Telemetry,
    call,
    make_telemetry,
    sample_chunk,
    sample_response,
    sample_usage,
)


def test_chat_span_has_the_convention_attributes(tel: Telemetry) -> None:
    info = call(
        params={"temperature": 0.2, "max_tokens": 50, "top_p": 1, "top_k": 3, "seed": 7,
                "stop": ["END"], "frequency_penalty": 0.1, "presence_penalty": 0.2, "n": 2},
        conversation_id="conv-1",
    )  # fmt: skip
    scope = tel.observer.start(*info)
    scope.end(sample_response(usage=sample_usage(cache_read_input_tokens=3, reasoning_tokens=2)))
    (span,) = tel.finished()
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "server.address": "api.openai.com",
        "server.port": 443,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 50,
        "gen_ai.request.top_p": 1.0,
        "gen_ai.request.top_k": 3.0,
        "gen_ai.request.seed": 7,
        "gen_ai.request.frequency_penalty": 0.1,
        "gen_ai.request.presence_penalty": 0.2,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.request.choice.count": 2,
        "gen_ai.conversation.id": "conv-1",
        "gen_ai.output.type": "text",
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 7,
        "gen_ai.usage.cache_read.input_tokens": 3,
        "gen_ai.usage.reasoning.output_tokens": 2,
    }
    assert "gen_ai.system" not in span.attributes
    assert span.instrumentation_scope.name == "chatmodels"


def test_error_span_records_code_status_and_correlation_id(tel: Telemetry) -> None:
    scope = tel.observer.start(*call())
    error = RateLimitError("slow down", op="invoke", provider="openai")
    scope.fail(error)
    (span,) = tel.finished()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "rate_limited"
    assert [e.name for e in span.events] == ["exception"]
    assert error.correlation_id == format(span.context.trace_id, "032x")


def test_retries_are_events_with_the_attempt_number(tel: Telemetry) -> None:
    scope = tel.observer.start(*call())
    scope.attempt(1, TimeoutError("t", op="invoke"))
    scope.attempt(2, None)
    scope.end(sample_response())
    (span,) = tel.finished()
    events = [(e.name, dict(e.attributes)) for e in span.events]
    assert events == [
        ("chatmodels.attempt", {"chatmodels.attempt": 1, "error.type": "timeout"}),
        ("chatmodels.attempt", {"chatmodels.attempt": 2}),
    ]


def test_span_nests_under_the_callers_span_and_never_ends_it(tel: Telemetry) -> None:
    tracer = tel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("parent") as parent:
        scope = tel.observer.start(*call(stream=True))
        scope.chunk(sample_chunk())
        scope.end(sample_response())
        assert parent.is_recording()
    chat, outer = tel.finished()
    assert chat.parent is not None
    assert chat.parent.span_id == outer.context.span_id
    assert chat.attributes["gen_ai.request.stream"] is True
    assert chat.attributes["gen_ai.response.time_to_first_chunk"] >= 0


def test_stream_span_ends_exactly_once_whatever_happens(tel: Telemetry) -> None:
    scope = tel.observer.start(*call(stream=True))
    scope.chunk(sample_chunk())
    scope.end(sample_response())
    scope.fail(TimeoutError("late", op="stream"))
    scope.close()
    assert len(tel.finished()) == 1


def test_stream_closed_early_or_collected_still_ends(tel: Telemetry) -> None:
    scope = tel.observer.start(*call(stream=True))
    scope.chunk(sample_chunk())
    scope.close()
    orphan = tel.observer.start(*call(stream=True))
    del orphan
    gc.collect()
    spans = tel.finished()
    assert len(spans) == 2
    assert all(s.attributes["chatmodels.stream.closed_early"] for s in spans)


def test_correlation_id_lives_during_the_call_only(tel: Telemetry) -> None:
    assert current_correlation_id() is None
    scope = tel.observer.start(*call())
    inside = current_correlation_id()
    scope.end(sample_response())
    assert inside is not None
    assert len(inside) == 32
    assert current_correlation_id() is None


def test_a_thousand_concurrent_calls_each_get_their_own_span(tel: Telemetry) -> None:
    tracer = tel.tracer_provider.get_tracer("app")
    parents: dict[int, int] = {}

    def request(i: int) -> None:
        with tracer.start_as_current_span(f"req {i}") as parent:
            parents[i] = parent.get_span_context().span_id
            scope = tel.observer.start(*call(model=f"m{i}"))
            scope.end(sample_response())

    threads = [threading.Thread(target=request, args=(i,)) for i in range(1000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    chats = [s for s in tel.finished() if s.name.startswith("chat ")]
    assert len(chats) == 1000
    for span in chats:
        i = int(span.name.split(" m")[1])
        assert span.parent is not None
        assert span.parent.span_id == parents[i]


@pytest.fixture
def tel_content() -> Iterator[Telemetry]:
    yield from make_telemetry(capture_content=True)


def test_content_is_captured_only_on_opt_in(tel: Telemetry, tel_content: Telemetry) -> None:
    info = call(
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "function": {"name": "get_weather", "arguments": '{"q": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "rainy"},
        ],
        system_instructions=["Be brief."],
        tools=[{"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}],
    )  # fmt: skip
    for t in (tel, tel_content):
        t.observer.start(*info).end(sample_response())
    (plain,) = tel.finished()
    assert not any(k.startswith(("gen_ai.input", "gen_ai.output.m")) for k in plain.attributes)
    (span,) = tel_content.finished()
    assert json.loads(span.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
        {"role": "assistant", "parts": [
            {"type": "tool_call", "id": "c1", "name": "get_weather", "arguments": {"q": "Paris"}}]},
        {"role": "tool", "parts": [
            {"type": "tool_call_response", "id": "c1", "response": "rainy"}]},
    ]  # fmt: skip
    assert json.loads(span.attributes["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Hi!"}],
            "finish_reason": "stop",
        }
    ]
    assert json.loads(span.attributes["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "Be brief."}
    ]
    assert json.loads(span.attributes["gen_ai.tool.definitions"]) == [
        {"type": "function", "name": "get_weather", "description": "Weather",
         "parameters": {"type": "object"}}
    ]  # fmt: skip


def test_debug_level_adds_an_event_per_chunk() -> None:
    for t in make_telemetry(level="debug"):
        scope = t.observer.start(*call(stream=True))
        for _ in range(3):
            scope.chunk(sample_chunk("ab"))
        scope.end(sample_response())
        (span,) = t.finished()
        assert [e.attributes["chatmodels.chunk.index"] for e in span.events] == [0, 1, 2]


@pytest.mark.parametrize("level", ["off", "metrics"])
def test_no_span_below_standard(level: str) -> None:
    for t in make_telemetry(level=level):
        t.observer.start(*call()).end(sample_response())
        assert t.finished() == []


def test_a_calls_span_is_current_until_its_end_in_the_callers_context(tel: Telemetry) -> None:
    # What the layers below a call see: the chat span as the current span (for log records,
    # an HTTP client's own spans and the correlation id), the caller's other context values
    # (baggage here) unchanged, and the caller's context back after the end.
    tracer = tel.tracer_provider.get_tracer("app")
    token = context.attach(baggage.set_baggage("tenant", "t-1"))
    try:
        with tracer.start_as_current_span("parent") as parent:
            scope = tel.observer.start(*call())
            inside = trace.get_current_span()
            inside_baggage = baggage.get_baggage("tenant")
            inside_id = current_correlation_id()
            assert scope.observes_chunks is False  # a call that is not a stream
            scope.end(sample_response())
            assert trace.get_current_span() is parent
            assert baggage.get_baggage("tenant") == "t-1"
    finally:
        context.detach(token)
    chat, _ = tel.finished()
    assert inside.get_span_context().span_id == chat.context.span_id
    assert inside_baggage == "t-1"
    assert inside_id == format(chat.context.trace_id, "032x")


def test_the_span_context_is_built_like_set_span_in_context() -> None:
    # The per-call path builds the Context itself, under the key the API's own function uses
    # (found by asking it); the result is the same mapping and type.
    otel = observer_module._otel()
    assert otel.span_key is not None
    span = trace.NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)
    parent = baggage.set_baggage("k", "v")
    built = otel.Context({**parent, otel.span_key: span})
    expected = trace.set_span_in_context(span, parent)
    assert type(built) is type(expected)
    assert dict(built) == dict(expected)
