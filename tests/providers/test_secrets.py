"""A planted API key, echoed back by a provider on every error path, reaches no output channel.

Each case serves, on loopback, a reply that quotes the key the call sent: an error inside a 200
body, a stream's error event, an HTTP error body that is cut to a length inside the key, a
request-id header. The error the call raises is then searched for the key everywhere it can
surface: its message, args, attributes and chained causes, the traceback a log handler would
print, a pickle of it, the log records of the ``chatmodels`` loggers at DEBUG, and the span
(attributes, events, status) and metrics the OpenTelemetry SDK exported.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import pickle
import struct
import traceback
import zlib
from collections.abc import Iterator
from typing import Any

import chatmodels
import pytest
from chatmodels import ChatModelError, InvalidConfigError, telemetry
from chatmodels._observe import set_observer
from chatmodels.testing import RecordedInteraction, ReplayServer
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from replay_helpers import json_interaction, new_model

KEY = "sk-planted-SECRET-1234567890"
SSE = (("Content-Type", "text/event-stream"),)
NDJSON = (("Content-Type", "application/x-ndjson"),)
EVENTS = (("Content-Type", "application/vnd.amazon.eventstream"),)


# -- what the server says ------------------------------------------------------------------


def _echo(prefix: str = "Incorrect API key provided: ") -> str:
    return f"{prefix}{KEY}. You can find your API key at https://example.com/keys."


def _straddling(status: int, path: str, headers: tuple[tuple[str, str], ...] = ()) -> Any:
    """A text error body whose first 500 bytes end inside the key."""
    text = "x" * 490 + KEY + " is not a valid key"
    return json_interaction(
        path, None, status=status, raw=text.encode(), headers=(("x-request-id", KEY), *headers)
    )


def _sse(*events: tuple[str | None, Any]) -> bytes:
    out = b""
    for name, data in events:
        if name is not None:
            out += f"event: {name}\n".encode()
        out += b"data: " + json.dumps(data).encode() + b"\n\n"
    return out


def _frame(kind: str, name: str, payload: bytes) -> bytes:
    """One AWS event stream message (prelude, string headers, payload, CRC32s)."""
    type_header = ":event-type" if kind == "event" else ":exception-type"
    headers = b""
    for key, value in (
        (type_header, name),
        (":content-type", "application/json"),
        (":message-type", kind),
    ):
        raw = value.encode()
        headers += bytes([len(key)]) + key.encode() + b"\x07" + struct.pack(">H", len(raw)) + raw
    prelude = struct.pack(">II", 12 + len(headers) + len(payload) + 4, len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


OPENAI_ERROR = {
    "error": {
        "message": _echo(),
        "type": "invalid_request_error",
        "code": f"invalid_api_key:{KEY}",
    }
}
OPENAI_CHUNK = {
    "id": "c1",
    "object": "chat.completion.chunk",
    "model": "m-1",
    "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}],
}
GEMINI_ERROR = {"error": {"code": 400, "message": _echo(), "status": f"INVALID_{KEY}"}}
GEMINI_CHUNK = {"candidates": [{"content": {"parts": [{"text": "Hel"}], "role": "model"}}]}

# name → (provider, options, stream?, interaction)
Case = tuple[str, dict[str, Any], bool, RecordedInteraction]
CASES: dict[str, Case] = {
    "openai-200-body": (
        "openai",
        {},
        False,
        json_interaction(
            "/v1/chat/completions", OPENAI_ERROR, headers=(("x-request-id", f"req-{KEY}"),)
        ),
    ),
    "openai-stream-error-event": (
        "openai",
        {},
        True,
        json_interaction(
            "/v1/chat/completions",
            None,
            raw=_sse((None, OPENAI_CHUNK), (None, OPENAI_ERROR)),
            headers=SSE,
        ),
    ),
    "openai-http-error-cut-in-the-key": (
        "openai",
        {},
        False,
        _straddling(400, "/v1/chat/completions"),
    ),
    "openai-http-error-json": (
        "openai",
        {},
        False,
        json_interaction(
            "/v1/chat/completions",
            OPENAI_ERROR,
            status=401,
            headers=(("x-request-id", KEY),),
        ),
    ),
    "anthropic-stream-error-event": (
        "anthropic",
        {},
        True,
        json_interaction(
            "/v1/messages",
            None,
            raw=_sse(
                ("message_start", {"type": "message_start", "message": {"id": "m", "model": "m"}}),
                (
                    "error",
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": _echo()},
                        "request_id": f"req_{KEY}",
                    },
                ),
            ),
            headers=SSE,
        ),
    ),
    "anthropic-http-error-cut-in-the-key": (
        "anthropic",
        {},
        False,
        _straddling(401, "/v1/messages"),
    ),
    "gemini-200-body": (
        "gemini",
        {},
        False,
        json_interaction("/v1beta/models/m-1:generateContent", GEMINI_ERROR),
    ),
    "gemini-stream-error-event": (
        "gemini",
        {},
        True,
        json_interaction(
            "/v1beta/models/m-1:streamGenerateContent?alt=sse",
            None,
            raw=_sse((None, GEMINI_CHUNK), (None, GEMINI_ERROR)),
            headers=SSE,
        ),
    ),
    "ollama-200-body": (
        "ollama",
        {},
        False,
        json_interaction("/api/chat", {"error": _echo()}),
    ),
    "ollama-stream-error-line": (
        "ollama",
        {},
        True,
        json_interaction(
            "/api/chat",
            None,
            raw=json.dumps(
                {"model": "m-1", "message": {"role": "assistant", "content": "Hel"}}
            ).encode()
            + b"\n"
            + json.dumps({"error": _echo()}).encode()
            + b"\n",
            headers=NDJSON,
        ),
    ),
    "cohere-http-error-cut-in-the-key": (
        "cohere",
        {},
        False,
        _straddling(400, "/v2/chat", (("x-debug-trace-id", KEY),)),
    ),
    "mistral-http-error-json": (
        "mistral",
        {},
        False,
        json_interaction("/v1/chat/completions", {"message": _echo(), "type": KEY}, status=401),
    ),
    "bedrock-stream-exception": (
        "bedrock",
        {},
        True,
        json_interaction(
            "/model/m-1/converse-stream",
            None,
            raw=_frame(
                "event",
                "contentBlockDelta",
                json.dumps({"contentBlockIndex": 0, "delta": {"text": "Hel"}}).encode(),
            )
            + _frame("exception", "validationException", json.dumps({"message": _echo()}).encode()),
            headers=(*EVENTS, ("x-amzn-requestid", KEY)),
        ),
    ),
    "bedrock-stream-exception-cut-in-the-key": (
        "bedrock",
        {},
        True,
        json_interaction(
            "/model/m-1/converse-stream",
            None,
            raw=_frame("exception", "throttlingException", b"y" * 490 + KEY.encode()),
            headers=EVENTS,
        ),
    ),
    "bedrock-http-error-cut-in-the-key": (
        "bedrock",
        {},
        False,
        _straddling(400, "/model/m-1/converse", (("x-amzn-ErrorType", "ValidationException"),)),
    ),
}


# -- the channels ----------------------------------------------------------------------------


class SDK:
    """In-memory span exporter and metric reader installed as chatmodels' telemetry."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        chatmodels.configure(
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            level="debug",
        )

    def close(self) -> None:
        self.meter_provider.shutdown()
        self.tracer_provider.shutdown()


@pytest.fixture
def sdk(monkeypatch: pytest.MonkeyPatch) -> Iterator[SDK]:
    for name in ("AWS_BEARER_TOKEN_BEDROCK", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    previous_container = telemetry.get_container()
    previous_observer = set_observer(telemetry.TelemetryObserver())
    installed = SDK()
    yield installed
    installed.close()
    set_observer(previous_observer)
    telemetry.set_container(previous_container)


def _texts_of(exc: BaseException) -> Iterator[str]:
    """Everything an exception and the ones chained to it show."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield str(item)
        yield repr(item)
        yield repr(item.args)
        for name, value in vars(item).items():
            yield f"{name}={value!r}"
        for name in dir(item):
            if not name.startswith("__"):
                yield f"{name}={getattr(item, name, None)!r}"
        todo += (item.__cause__, item.__context__, getattr(item, "err", None))
    yield "".join(traceback.format_exception(exc))


def assert_nowhere(
    error: BaseException, caplog: pytest.LogCaptureFixture, sdk: SDK | None = None
) -> None:
    """The key (and any 8 characters of its start) is in no output channel."""
    needles = (KEY, KEY[:8], KEY[-10:])
    texts = list(_texts_of(error))
    texts.append(repr(pickle.dumps(error)))
    texts.append(str(pickle.loads(pickle.dumps(error))))
    assert caplog.records, "the failure wrote no log record"
    for record in caplog.records:
        texts.append(record.getMessage())
        texts.append(repr(vars(record)))
        if record.exc_info:
            texts.append("".join(traceback.format_exception(*record.exc_info)))
    if sdk is not None:
        spans = sdk.exporter.get_finished_spans()
        assert spans, "the call exported no span"
        for span in spans:
            texts.append(span.to_json())
        data = sdk.reader.get_metrics_data()
        assert data is not None
        texts.append(data.to_json())
    for text in texts:
        for needle in needles:
            assert needle not in text, f"{needle!r} in {text[:300]!r}"


def _model(provider: str, url: str, options: dict[str, Any]) -> chatmodels.ChatModel:
    base = f"{url}/v1" if provider == "openai" else url
    return new_model(provider, base, api_key=KEY, model="m-1", **options)


def _fail(provider: str, options: dict[str, Any], stream: bool, inter: Any, mode: str) -> Any:
    """Make the call `mode` (sync or async) against `inter`; the ChatModelError it raised."""
    with ReplayServer([inter]) as server:
        model = _model(provider, server.base_url, options)

        async def run() -> None:
            try:
                if stream:
                    async for _ in model.astream("Hi"):
                        pass
                else:
                    await model.ainvoke("Hi")
            finally:
                await model.aclose()

        try:
            if mode == "async":
                asyncio.run(run())
            elif stream:
                with model:
                    for _ in model.stream("Hi"):
                        pass
            else:
                with model:
                    model.invoke("Hi")
        except ChatModelError as exc:
            server.check_requests()
            return exc
    raise AssertionError("the call did not fail")


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_echoed_key_reaches_no_output(
    case: str, mode: str, sdk: SDK, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="chatmodels")
    provider, options, stream, inter = CASES[case]
    error = _fail(provider, options, stream, inter, mode)
    assert error.provider == provider
    assert "**********" in str(error) or "**********" in str(error.request_id)
    assert_nowhere(error, caplog, sdk)


def test_echoed_key_is_scrubbed_without_telemetry(caplog: pytest.LogCaptureFixture) -> None:
    # The no-op observer: the error the caller gets is scrubbed all the same.
    caplog.set_level(logging.DEBUG, logger="chatmodels")
    previous = set_observer(None)
    try:
        provider, options, stream, inter = CASES["openai-200-body"]
        error = _fail(provider, options, stream, inter, "sync")
    finally:
        set_observer(previous)
    logging.getLogger("chatmodels").warning("placeholder")  # caplog must hold a record
    assert_nowhere(error, caplog)


def test_key_in_an_exception_that_escapes_an_adapter(
    monkeypatch: pytest.MonkeyPatch, sdk: SDK, caplog: pytest.LogCaptureFixture
) -> None:
    # A parser that raises anything with upstream text in it: the internal error, its cause
    # and the telemetry are scrubbed too.
    caplog.set_level(logging.DEBUG, logger="chatmodels")
    from chatmodels._providers import _openai

    def boom(self: Any, body: bytes, request: Any) -> Any:
        raise RuntimeError(body.decode())

    monkeypatch.setattr(_openai.OpenAIAdapter, "parse_response", boom)
    inter = json_interaction("/v1/chat/completions", {"echo": KEY})
    error = _fail("openai", {}, False, inter, "sync")
    assert error.code.value == "internal"
    assert isinstance(error.__cause__, RuntimeError)
    assert_nowhere(error, caplog, sdk)


def test_health_check_detail_is_scrubbed() -> None:
    text = "x" * 490 + KEY + " is not a valid key"
    inter = json_interaction("/v1/models", None, method="GET", status=401, raw=text.encode())
    with ReplayServer([inter]) as server, _model("openai", server.base_url, {}) as model:
        status = model.health_check()
    assert status.error_code == "authentication"
    assert KEY[:8] not in status.detail


# -- keys that cannot be sent ----------------------------------------------------------------

BAD_KEYS = {
    "trailing newline": "sk-good-key-123\n",
    "CR LF": "sk-good\r\nX-Injected: 1",
    "tab is fine but NUL is not": "sk-good\x00key",
    "non-latin-1": "sk-good-key-\u2028-123",
    "emoji": "sk-good-🙂-123",
    "DEL": "sk-good\x7fkey",
    "C1 control": "sk-good\x85key",
}


@pytest.mark.parametrize("key", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
def test_key_that_cannot_be_sent_is_refused_at_validation(key: str) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        chatmodels.ProviderOptions(api_key=key)
    assert caught.value.code.value == "invalid_config"
    assert caught.value.op == "ProviderOptions"
    assert "api_key" in str(caught.value)
    for text in _texts_of(caught.value):
        assert key not in text
    with pytest.raises(InvalidConfigError) as caught:
        chatmodels.ProviderOptions(api_key=chatmodels.Secret(key))
    assert caught.value.code.value == "invalid_config"


@pytest.mark.parametrize("key", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "cohere"])
def test_key_that_cannot_be_sent_is_refused_at_creation(provider: str, key: str) -> None:
    # The same refusal whether the call would have been sync or async: nothing is created.
    with ReplayServer([]) as server:
        with pytest.raises(InvalidConfigError) as caught:
            new_model(provider, server.base_url, api_key=key, model="m-1")
        assert server.requests == []
    assert caught.value.code.value == "invalid_config"
    assert caught.value.op == "new_registry_provider"
    for text in _texts_of(caught.value):
        assert key.strip() not in text


def test_key_from_the_environment_that_cannot_be_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env\n")
    with pytest.raises(InvalidConfigError) as caught:
        chatmodels.new_registry_provider("openai", {"base_url": "http://127.0.0.1:9"})
    assert "sk-from-env" not in "".join(_texts_of(caught.value))


def test_latin_1_key_is_accepted() -> None:
    opts = chatmodels.ProviderOptions(api_key="sk-caf\xe9-key\tend")
    assert opts.api_key_value() == "sk-caf\xe9-key\tend"


HEADER_FAULTS = {"non-latin-1": "2023-06-01\u2028", "LF": "2023-06-01\nX-Injected: 1"}


@pytest.mark.parametrize("value", list(HEADER_FAULTS.values()), ids=list(HEADER_FAULTS))
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_header_that_cannot_be_sent_names_the_header_not_its_value(mode: str, value: str) -> None:
    # A header from provider_specific (anthropic_version): invalid_config on both paths, and
    # neither the value nor the key sent beside it in any of the error's text.
    with ReplayServer([]) as server:
        model = new_model(
            "anthropic", server.base_url, api_key=KEY, model="m-1", anthropic_version=value
        )

        async def run() -> None:
            try:
                await model.ainvoke("Hi")
            finally:
                await model.aclose()

        call = (lambda: model.invoke("Hi")) if mode == "sync" else (lambda: asyncio.run(run()))
        with pytest.raises(InvalidConfigError) as caught:
            call()
        model.close()
        assert server.requests == []
    error = caught.value
    assert error.code.value == "invalid_config"
    assert "'anthropic-version'" in str(error)
    for text in _texts_of(error):
        assert KEY not in text
        assert value not in text
        assert "2023-06-01" not in text


# -- copies and pickles ----------------------------------------------------------------------


def test_options_with_a_key_copy_and_deepcopy() -> None:
    opts = chatmodels.ProviderOptions(
        api_key=KEY, model="m", provider_specific={"nested": {"a": [1]}}
    )
    shallow = copy.copy(opts)
    deep = copy.deepcopy(opts)
    for made in (shallow, deep):
        assert made == opts
        assert made.api_key_value() == KEY
        assert KEY not in repr(made)
    assert deep.provider_specific == {"nested": {"a": [1]}}
    assert deep.provider_specific["nested"] is not opts.provider_specific["nested"]
    with pytest.raises(TypeError):
        deep.provider_specific["x"] = 1  # type: ignore[index]
    secret = chatmodels.Secret(KEY)
    assert copy.copy(secret) == secret == copy.deepcopy(secret)
    assert copy.deepcopy({"k": secret})["k"].get_secret_value() == KEY


def test_options_with_a_key_still_refuse_pickling() -> None:
    opts = chatmodels.ProviderOptions(api_key=KEY)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(opts)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(chatmodels.Secret(KEY))


def test_model_keeps_working_after_a_scrubbed_error(caplog: pytest.LogCaptureFixture) -> None:
    ok = json_interaction(
        "/v1/chat/completions",
        {
            "id": "c",
            "model": "m-1",
            "choices": [{"index": 0, "message": {"content": "fine"}, "finish_reason": "stop"}],
        },
    )
    bad = CASES["openai-200-body"][3]
    with ReplayServer([bad, ok]) as server, _model("openai", server.base_url, {}) as model:
        with pytest.raises(ChatModelError):
            model.invoke("Hi")
        assert model.invoke("Hi").text == "fine"
        assert server.requests[1].headers["authorization"] == f"Bearer {KEY}"


class _Recorder:
    """An observer that keeps every error its scopes are told of."""

    observes_chunks = False

    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    def start(self, site: Any, request: Any) -> _Recorder:
        return self

    def attempt(self, number: int, error: BaseException | None) -> None:
        if error is not None:
            self.errors.append(error)

    def chunk(self, chunk: Any) -> None:
        pass

    def chunk_batch(self, chunks: Any) -> None:
        pass

    def end(self, response: Any) -> None:
        pass

    def fail(self, error: BaseException) -> None:
        self.errors.append(error)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_retried_attempts_report_scrubbed_errors(mode: str) -> None:
    # A retried 503 whose request id is the key: the attempt's error the observer gets is
    # scrubbed too, and so is the final one.
    busy = json_interaction(
        "/v1/chat/completions",
        {"error": {"message": _echo()}},
        status=503,
        headers=(("x-request-id", KEY), ("retry-after", "0")),
    )
    recorder = _Recorder()
    previous = set_observer(recorder)
    try:
        with ReplayServer([busy, busy]) as server:
            model = new_model(
                "openai", f"{server.base_url}/v1", api_key=KEY, model="m-1", max_retries=1
            )
            call = (
                (lambda: model.invoke("Hi"))
                if mode == "sync"
                else (lambda: asyncio.run(model.ainvoke("Hi")))
            )
            with pytest.raises(ChatModelError) as caught:
                call()
            model.close()
    finally:
        set_observer(previous)
    assert len(recorder.errors) == 3  # two attempts, one failure
    assert recorder.errors[0].request_id == "**********"  # type: ignore[attr-defined]
    for error in (*recorder.errors, caught.value):
        for text in _texts_of(error):
            assert KEY not in text
