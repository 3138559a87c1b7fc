"""Telemetry through real calls: the fake provider, the loopback OpenAI-compatible server and
every built-in provider's recorded exchanges (../shared/cassettes), with the SDK's in-memory
span exporter and metric reader injected through `chatmodels.configure`."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import chatmodels
import pytest
from chatmodels import ChatChunk, ChatModel, ChatModelError, telemetry
from chatmodels._observe import CallScope
from chatmodels._request import ChatRequest
from chatmodels.telemetry import DURATION_BUCKETS, TOKEN_BUCKETS, JsonFormatter
from chatmodels.testing import (
    OpenAICompatibleServer,
    RecordedInteraction,
    ReplayServer,
    ScriptedError,
    ScriptedReply,
    load_cassette,
)
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from sdk_helpers import SDK

CASSETTES = Path(__file__).resolve().parents[3] / "shared" / "cassettes"
KEY = "sk-test-secret-key-123456"


def _fake(*responses: Any) -> ChatModel:
    return chatmodels.new_registry_provider("fake", {"provider_specific": {"responses": responses}})


FAKE_BASE = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "fake",
    "gen_ai.request.model": "fake-1",
    "gen_ai.output.type": "text",
}


# -- the fake provider ---------------------------------------------------------------------


def test_invoke_span_and_metrics(sdk: SDK) -> None:
    response = _fake("Hello there").invoke("hi", temperature=0.5, max_tokens=20)
    (span,) = sdk.spans("chat ")
    assert span.name == "chat fake-1"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert response.usage is not None
    assert dict(span.attributes or {}) == {
        **FAKE_BASE,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.max_tokens": 20,
        "gen_ai.response.id": response.id,
        "gen_ai.response.model": "fake-1",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": response.usage.input_tokens,
        "gen_ai.usage.output_tokens": response.usage.output_tokens,
    }
    metrics = sdk.metrics()
    duration = metrics["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    (point,) = duration.data.data_points
    assert dict(point.attributes) == {**_metric_base(), "gen_ai.response.model": "fake-1"}
    assert tuple(point.explicit_bounds) == DURATION_BUCKETS
    assert point.count == 1
    tokens = metrics["gen_ai.client.token.usage"]
    assert tokens.unit == "{token}"
    by_type = {p.attributes["gen_ai.token.type"]: p for p in tokens.data.data_points}
    assert by_type["input"].sum == response.usage.input_tokens
    assert by_type["output"].sum == response.usage.output_tokens
    assert tuple(by_type["input"].explicit_bounds) == TOKEN_BUCKETS


def test_models_made_per_request_share_what_their_calls_cache(sdk: SDK) -> None:
    """A model instance per request (a common pattern) must not fill the per-call caches:
    equal instances share one CallSite, so their calls share one cached span shape."""
    models = [_fake('{"a": 1}', '{"a": 1}') for _ in range(50)]
    for model in models:
        model.invoke("hi")
        model.invoke("hi", response_format={"type": "json_object"})
    assert len({id(model._call_site) for model in models}) == 1
    runtime = sdk.container.runtime()
    assert len(runtime.statics) == 2  # text and json output
    spans = sdk.spans("chat ")
    assert len(spans) == 100
    assert {s.attributes["gen_ai.output.type"] for s in spans} == {"text", "json"}


def _metric_base() -> dict[str, Any]:
    return {k: v for k, v in FAKE_BASE.items() if k != "gen_ai.output.type"}


def test_error_span_log_record_and_error_share_one_correlation_id(sdk: SDK) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("chatmodels")
    logger.addHandler(handler)
    try:
        with pytest.raises(chatmodels.RateLimitError) as caught:
            _fake({"error": "rate_limited", "message": "slow down"}).invoke("hi")
    finally:
        logger.removeHandler(handler)
    error = caught.value
    (span,) = sdk.spans("chat ")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "rate_limited"
    assert [e.name for e in span.events] == ["exception"]
    cid = error.correlation_id
    assert cid == format(span.context.trace_id, "032x")
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [r for r in records if r.get("correlation_id") == cid]
    assert mine
    assert mine[-1]["code"] == "rate_limited"
    assert mine[-1]["span_id"] == format(span.context.span_id, "016x")
    durations = sdk.metrics()["gen_ai.client.operation.duration"].data.data_points
    assert [p.attributes.get("error.type") for p in durations] == ["rate_limited"]


@pytest.fixture
def bridge() -> Iterator[Any]:
    """OpenTelemetry's logging handler on the chatmodels logger, over an in-memory exporter."""
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(logger_provider=provider)
    logger = logging.getLogger("chatmodels")
    level = logger.level
    logger.setLevel(logging.INFO)  # retried attempts are logged at INFO
    logger.addHandler(handler)
    yield exporter
    logger.removeHandler(handler)
    logger.setLevel(level)
    provider.shutdown()


def _exported(bridge: Any, text: str) -> list[Any]:
    return [r.log_record for r in bridge.get_finished_logs() if text in str(r.log_record.body)]


def _call(chat_model: ChatModel, kind: str, **params: Any) -> None:
    if kind == "invoke":
        chat_model.invoke("hi", **params)
    else:
        list(chat_model.stream("hi", **params))


def _call_retried(
    replies: list[ScriptedReply | ScriptedError], kind: str
) -> OpenAICompatibleServer:
    """One call to the loopback server, retried until its last reply; returns the server."""
    with OpenAICompatibleServer(replies) as server:
        model = chatmodels.new_registry_provider(
            "openai",
            {"api_key": KEY, "base_url": server.base_url, "max_retries": len(replies) - 1},
        )
        with model:
            _call(model, kind, model="test-model")
    return server


# The logging handler reads the trace context from the current span: a record must be written
# while the chat span is current, for a stream (whose span is not current between chunks) too.


@pytest.mark.parametrize("kind", ["invoke", "stream"])
def test_the_logging_bridge_exports_a_failure_in_the_calls_trace(
    sdk: SDK, bridge: Any, kind: str
) -> None:
    parent = sdk.tracer_provider.get_tracer("app").start_span("request")
    model = _fake({"error": "rate_limited", "message": "slow down"})
    with trace.use_span(parent, end_on_exit=True), pytest.raises(chatmodels.RateLimitError):
        _call(model, kind)
    (span,) = sdk.spans("chat ")
    failed = _exported(bridge, "chat call failed")
    assert len(failed) == 1
    assert (failed[0].trace_id, failed[0].span_id) == (span.context.trace_id, span.context.span_id)
    assert span.parent is not None
    assert span.parent.span_id == parent.get_span_context().span_id


@pytest.mark.parametrize("kind", ["invoke", "stream"])
def test_the_logging_bridge_exports_a_retried_attempt_in_the_calls_trace(
    sdk: SDK, bridge: Any, kind: str
) -> None:
    _call_retried([ScriptedError(429, retry_after=0), ScriptedReply(text="ok")], kind)
    (span,) = sdk.spans("chat ")
    retried = _exported(bridge, "attempt 1 failed")
    assert len(retried) == 1
    assert (retried[0].trace_id, retried[0].span_id) == (
        span.context.trace_id,
        span.context.span_id,
    )
    assert KEY not in str(retried[0].body) + str(retried[0].attributes)


def test_correlation_id_flows_from_the_callers_scope(sdk: SDK) -> None:
    with telemetry.correlation_scope("request-42"):
        model = chatmodels.new_registry_provider("fake", {})
        with pytest.raises(chatmodels.NetworkError) as caught:
            _fake({"error": "network"}).invoke("hi")
        model.invoke("fine")
    assert caught.value.correlation_id == "request-42"
    chats = sdk.spans("chat ")
    assert [(s.attributes or {}).get("chatmodels.correlation_id") for s in chats] == [
        "request-42"
    ] * 2
    creates = sdk.spans("chatmodels.registry.create")
    assert len(creates) == 2
    assert {(s.attributes or {}).get("chatmodels.correlation_id") for s in creates} == {
        "request-42"
    }


def test_stream_span_exhausted(sdk: SDK) -> None:
    chunks = list(_fake("one two three").stream("hi"))
    (span,) = sdk.spans("chat ")
    attrs: dict[str, Any] = dict(span.attributes or {})
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.time_to_first_chunk"] >= 0
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert "chatmodels.stream.closed_early" not in attrs
    metrics = sdk.metrics()
    (first,) = metrics["gen_ai.client.operation.time_to_first_chunk"].data.data_points
    (gaps,) = metrics["gen_ai.client.operation.time_per_output_chunk"].data.data_points
    assert (first.count, gaps.count) == (1, len(chunks) - 1)


@pytest.mark.parametrize("how", ["close", "with-break", "gc"])
def test_stream_closed_early_ends_its_span_once_and_not_the_parent(sdk: SDK, how: str) -> None:
    tracer = sdk.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("request") as parent:
        stream = _fake("one two three four").stream("hi")
        next(stream)
        if how == "close":
            stream.close()
            stream.close()
        elif how == "with-break":
            with stream:
                for _ in stream:
                    break
        else:
            del stream
            import gc

            gc.collect()
        assert parent.is_recording()
    (chat,) = sdk.spans("chat ")
    (request,) = sdk.spans("request")
    assert chat.attributes is not None
    assert chat.attributes["chatmodels.stream.closed_early"] is True
    assert chat.parent is not None
    assert chat.parent.span_id == request.context.span_id
    assert chat.status.status_code is StatusCode.UNSET


class _Breaking(ChatModel):
    """Streams one chunk, then fails the way a dropped connection does."""

    def _stream(self, request: ChatRequest, scope: CallScope) -> Iterator[ChatChunk]:
        yield ChatChunk(text="partial")
        raise chatmodels.NetworkError("connection reset", op="stream", provider=self.provider)


def test_exception_while_consuming_a_stream(sdk: SDK) -> None:
    model = _Breaking(chatmodels.get_provider_metadata("fake"))
    stream = model.stream("hi")
    assert next(stream).text == "partial"
    with pytest.raises(chatmodels.NetworkError) as caught:
        next(stream)
    (span,) = sdk.spans("chat ")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "network"
    assert caught.value.correlation_id == format(span.context.trace_id, "032x")


def test_async_stream_closed_early(sdk: SDK) -> None:
    async def run() -> None:
        async with _fake("a b c").astream("hi") as stream:
            await stream.__anext__()

    asyncio.run(run())
    (span,) = sdk.spans("chat ")
    assert span.attributes is not None
    assert span.attributes["chatmodels.stream.closed_early"] is True


def test_a_thousand_concurrent_calls_each_under_its_parent(sdk: SDK) -> None:
    tracer = sdk.tracer_provider.get_tracer("app")
    model = _fake()
    parents: dict[str, int] = {}
    lock = threading.Lock()

    def work(worker: int) -> None:
        for i in range(worker, 1000, 8):
            with tracer.start_as_current_span(f"request {i}") as parent:
                with lock:
                    parents[f"m{i}"] = parent.get_span_context().span_id
                model.invoke("hi", model=f"m{i}")

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    chats = sdk.spans("chat ")
    assert len(chats) == 1000
    assert len({s.context.span_id for s in chats}) == 1000
    for span in chats:
        assert span.parent is not None
        assert span.parent.span_id == parents[span.name.removeprefix("chat ")]


def test_async_concurrent_calls_each_under_its_parent(sdk: SDK) -> None:
    tracer = sdk.tracer_provider.get_tracer("app")
    model = _fake()

    async def one(i: int) -> tuple[str, int]:
        with tracer.start_as_current_span(f"request {i}") as parent:
            await model.ainvoke("hi", model=f"m{i}")
            return f"m{i}", parent.get_span_context().span_id

    async def run() -> dict[str, int]:
        return dict(await asyncio.gather(*(one(i) for i in range(200))))

    parents = asyncio.run(run())
    chats = sdk.spans("chat ")
    assert len(chats) == 200
    for span in chats:
        assert span.parent is not None
        assert span.parent.span_id == parents[span.name.removeprefix("chat ")]


# -- the loopback server: retries, tool calls, content ----------------------------------------


def test_each_retry_attempt_is_an_event_with_its_number(sdk: SDK) -> None:
    server = _call_retried(
        [ScriptedError(503, retry_after=0), ScriptedError(429, retry_after=0), ScriptedReply("ok")],
        "invoke",
    )
    (span,) = sdk.spans("chat ")
    events = [(e.name, dict(e.attributes or {})) for e in span.events]
    assert events == [
        ("chatmodels.attempt", {"chatmodels.attempt": 1, "error.type": "provider_unavailable"}),
        ("chatmodels.attempt", {"chatmodels.attempt": 2, "error.type": "rate_limited"}),
        ("chatmodels.attempt", {"chatmodels.attempt": 3}),
    ]
    assert span.attributes is not None
    assert span.attributes["server.address"] == "127.0.0.1"
    assert span.attributes["server.port"] == server.port


def test_content_capture_on_a_tool_call(sdk: SDK) -> None:
    chatmodels.configure(
        tracer_provider=sdk.tracer_provider,
        meter_provider=sdk.meter_provider,
        capture_content=True,
    )
    weather = {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}
    model = _fake({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]})
    response = model.invoke(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Paris?"}],
        tools=[weather],
    )
    (span,) = sdk.spans("chat ")
    attrs = span.attributes or {}
    assert json.loads(str(attrs["gen_ai.system_instructions"])) == [
        {"type": "text", "content": "Be brief."}
    ]
    assert json.loads(str(attrs["gen_ai.tool.definitions"]))[0]["name"] == "get_weather"
    (out,) = json.loads(str(attrs["gen_ai.output.messages"]))
    call = response.tool_calls[0]
    assert out["finish_reason"] == "tool_calls"
    assert {"type": "tool_call", "id": call.id, "name": "get_weather",
            "arguments": {"city": "Paris"}} in out["parts"]  # fmt: skip
    assert KEY not in json.dumps(dict(attrs))


def test_anthropic_thinking_is_a_reasoning_part_only_when_captured(sdk: SDK) -> None:
    """The recorded thinking reply: with capture on, gen_ai.output.messages has the
    conventions' reasoning part (text only: no signature) before the text; with capture off
    no content at all, and the reasoning nowhere on the span."""
    path = CASSETTES / "anthropic" / "messages_create_captures_thinking_content.yaml"
    (inter,) = load_cassette(path)
    thinking, text = json.loads(inter.response.body)["content"]
    spans = {}
    for capture in (True, False):
        sdk.exporter.clear()
        chatmodels.configure(
            tracer_provider=sdk.tracer_provider,
            meter_provider=sdk.meter_provider,
            capture_content=capture,
        )
        with ReplayServer([inter]) as server:
            model = chatmodels.new_registry_provider(
                "anthropic", {"api_key": KEY, "base_url": server.base_url, "max_retries": 0}
            )
            with model:
                response = model.invoke(
                    "What is 17*19? Think first.",
                    model="claude-sonnet-4-20250514",
                    max_tokens=16000,
                    provider_specific={"thinking": {"type": "enabled", "budget_tokens": 10000}},
                )
        assert response.reasoning == thinking["thinking"]
        (spans[capture],) = sdk.spans("chat ")
    attrs = spans[True].attributes or {}
    assert json.loads(str(attrs["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": thinking["thinking"]},
                {"type": "text", "content": text["text"]},
            ],
            "finish_reason": "stop",
        }
    ]
    assert thinking["signature"] not in json.dumps(dict(attrs))
    plain = dict(spans[False].attributes or {})
    assert not any(k.startswith(("gen_ai.input", "gen_ai.output.m")) for k in plain)
    assert "17 \u00d7 19" not in json.dumps(plain, ensure_ascii=False)
    assert "double-check" not in json.dumps(plain)


def test_reasoning_parts_in_input_messages() -> None:
    from chatmodels.telemetry._content import input_messages

    history = [
        {"role": "user", "content": "q"},
        chatmodels.Message(
            "assistant",
            (
                chatmodels.ReasoningPart("why", "sig-secret"),
                chatmodels.ReasoningPart(redacted="blob-secret"),
                chatmodels.TextPart("a"),
            ),
        ),
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"}]},
    ]
    out = input_messages(history)
    assert json.loads(out)[1:] == [
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": "why"},
                {"type": "reasoning", "content": ""},
                {"type": "text", "content": "a"},
            ],
        },
        {"role": "assistant", "parts": [{"type": "reasoning", "content": "t"}]},
    ]
    assert "secret" not in out


# -- every built-in provider against its recordings ----------------------------------------

_STREAM_TYPES = ("text/event-stream", "application/x-ndjson", "application/vnd.amazon.eventstream")


def _recordings() -> list[Any]:
    cases = []
    registered = set(chatmodels.list_providers())
    for folder in sorted(p for p in CASSETTES.iterdir() if p.is_dir()):
        if folder.name not in registered:
            continue
        for path in sorted(folder.glob("*.yaml")):
            cases.append(pytest.param(folder.name, path, id=f"{folder.name}/{path.stem}"))
    return cases


def _is_stream(inter: RecordedInteraction) -> bool:
    body = inter.request.json if isinstance(inter.request.json, dict) else {}
    if body.get("stream") is True or "stream" in inter.request.path.lower():
        return True
    ctype = next((v for k, v in inter.response.headers if k.lower() == "content-type"), "")
    return ctype.split(";")[0].strip() in _STREAM_TYPES


def _request_model(inter: RecordedInteraction) -> str:
    body = inter.request.json if isinstance(inter.request.json, dict) else {}
    if isinstance(body.get("model"), str):
        return str(body["model"])
    path = unquote(urlsplit(inter.request.path).path)
    if "/models/" in path:  # gemini: /v1beta/models/{model}:generateContent
        return path.split("/models/")[1].split(":")[0]
    return path.split("/")[2]  # bedrock: /model/{modelId}/converse


def _vertex(inter: RecordedInteraction) -> tuple[str, dict[str, str]] | None:
    """A Vertex AI recording (``/projects/{p}/locations/{l}/...``): its provider and options."""
    parts = urlsplit(inter.request.path).path.split("/")
    if "projects" not in parts or "locations" not in parts:
        return None
    project = parts[parts.index("projects") + 1]
    location = parts[parts.index("locations") + 1]
    return "vertex_ai", {"project": project, "location": location}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake static AWS credentials, nothing read from the machine (for bedrock)."""
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN",
                 "AWS_BEARER_TOKEN_BEDROCK", "AWS_WEB_IDENTITY_TOKEN_FILE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _expected(
    meta: chatmodels.ProviderMetadata, model: str, port: int, stream: bool, response: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": meta.gen_ai_provider_name,
        "gen_ai.request.model": model,
        "server.address": "127.0.0.1",
        "server.port": port,
        "gen_ai.output.type": "text",
    }
    if stream:
        out["gen_ai.request.stream"] = True
    if response is None:
        return out
    if response.id:
        out["gen_ai.response.id"] = response.id
    if response.model:
        out["gen_ai.response.model"] = response.model
    if response.finish_reason is not None:
        out["gen_ai.response.finish_reasons"] = (response.finish_reason.value,)
    usage = response.usage
    if usage is not None:
        out["gen_ai.usage.input_tokens"] = usage.input_tokens
        out["gen_ai.usage.output_tokens"] = usage.output_tokens
        for field, name in (
            ("cache_read_input_tokens", "gen_ai.usage.cache_read.input_tokens"),
            ("cache_creation_input_tokens", "gen_ai.usage.cache_creation.input_tokens"),
            ("reasoning_tokens", "gen_ai.usage.reasoning.output_tokens"),
        ):
            if getattr(usage, field) is not None:
                out[name] = getattr(usage, field)
    return out


@pytest.mark.usefixtures("aws")
@pytest.mark.parametrize(("provider", "cassette"), _recordings())
def test_recorded_exchange_span(sdk: SDK, provider: str, cassette: Path) -> None:
    for inter in load_cassette(cassette):
        sdk.exporter.clear()
        stream, model_name = _is_stream(inter), _request_model(inter)
        provider, extra = _vertex(inter) or (provider, {})
        meta = chatmodels.get_provider_metadata(provider)
        prefix = urlsplit(meta.default_base_url or "").path.rstrip("/")
        with ReplayServer([inter]) as server:
            options = {"api_key": KEY, "base_url": server.base_url + prefix, "max_retries": 0}
            options.update(extra)
            response: Any = None
            error: ChatModelError | None = None
            with chatmodels.new_registry_provider(provider, options) as model:
                try:
                    if stream:
                        response = chatmodels.accumulate(model.stream("hi", model=model_name))
                    else:
                        response = model.invoke("hi", model=model_name)
                except ChatModelError as exc:
                    error = exc
            server.check_requests()
        (span,) = sdk.spans("chat ")
        assert span.name == f"chat {model_name}"
        assert span.kind is SpanKind.CLIENT
        assert KEY not in span.to_json(), "the API key reached a span (attributes or events)"
        attrs = dict(span.attributes or {})
        first_chunk = attrs.pop("gen_ai.response.time_to_first_chunk", None)
        assert (first_chunk is not None) == (stream and response is not None)
        expected = _expected(meta, model_name, server.port, stream, response)
        if inter.response.status >= 400:
            assert error is not None, "an error recording must raise"
            assert span.status.status_code is StatusCode.ERROR
            assert attrs.pop("error.type") == error.code.value
            assert error.correlation_id == format(span.context.trace_id, "032x")
        else:
            assert error is None, error
            assert span.status.status_code is StatusCode.UNSET
        assert attrs == expected
