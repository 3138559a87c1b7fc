"""Transport and error mapping: status codes, retries, timeouts, connection reuse, early close."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import socket
import threading
import warnings
from collections.abc import Callable
from typing import Any

import chatmodels
import pytest
from chatmodels import ErrorCode
from chatmodels._transport._framing import NDJSONDecoder, SSEDecoder
from chatmodels.testing import (
    OpenAICompatibleServer,
    RecordedInteraction,
    ReplayServer,
    ScriptedReply,
)
from replay_helpers import EventChunkedReplay, assert_secret_hidden, json_interaction

KEY = "sk-never-show-me-0123456789"

OK = {
    "id": "chatcmpl-1",
    "model": "m-1",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}
_EVENT = 'data: {"id":"c","model":"m","choices":[{"index":0,"delta":%s,"finish_reason":%s}]}\n\n'
SSE = (
    (_EVENT % ('{"content":"a"}', "null")).encode()
    + (_EVENT % ('{"content":"b"}', "null")).encode()
    + b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


def _model(url: str, **options: Any) -> chatmodels.ChatModel:
    return chatmodels.new_registry_provider(
        "openai_compatible", {"api_key": KEY, "base_url": url, "model": "m", **options}
    )


CHAT = "/chat/completions"


def _error(
    status: int, message: str, code: str | None = None, **headers: str
) -> RecordedInteraction:
    body = {"error": {"message": message, "type": "x", "code": code}}
    return json_interaction(CHAT, body, status=status, headers=tuple(headers.items()))


def _sse(*, chunked: bool = True) -> RecordedInteraction:
    """`SSE` as a stream (chunked), or as a plain body with Content-Length (ReplayServer frames
    a body by its stream content type, so that header is left out)."""
    headers = (("Content-Type", "text/event-stream"),) if chunked else ()
    return json_interaction(CHAT, None, raw=SSE, headers=headers)


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (
            _error(401, "Incorrect API key provided: sk-never-show-me-0123456789"),
            ErrorCode.AUTHENTICATION,
        ),
        (_error(403, "no access"), ErrorCode.PERMISSION_DENIED),
        (_error(429, "slow down"), ErrorCode.RATE_LIMITED),
        (
            _error(
                400, "This model's maximum context length is 8192 tokens", "context_length_exceeded"
            ),
            ErrorCode.CONTEXT_LENGTH_EXCEEDED,
        ),
        (_error(400, "The response was filtered", "content_filter"), ErrorCode.CONTENT_FILTERED),
        (_error(422, "bad field"), ErrorCode.BAD_REQUEST),
        (_error(503, "overloaded"), ErrorCode.PROVIDER_UNAVAILABLE),
        (
            json_interaction(
                CHAT, None, raw=b"<html>not json", headers=(("Content-Type", "text/html"),)
            ),
            ErrorCode.INVALID_RESPONSE,
        ),
    ],
)
def test_status_and_body_map_to_codes(reply: RecordedInteraction, code: ErrorCode) -> None:
    response = reply.response
    headers = (*response.headers, ("x-request-id", "req_42"))
    reply = dataclasses.replace(reply, response=dataclasses.replace(response, headers=headers))
    with (
        ReplayServer([reply]) as server,
        _model(server.base_url, max_retries=0) as model,
        pytest.raises(chatmodels.ChatModelError) as caught,
    ):
        model.invoke("hi")
    error = caught.value
    assert error.code is code
    assert error.provider == "openai_compatible"
    assert_secret_hidden(KEY, error)
    if response.status != 200:
        assert error.status_code == response.status
        assert error.request_id == "req_42"
        assert json.loads(response.body)["error"]["message"].split(":")[0] in str(error)


def test_429_with_retry_after_is_retried_then_succeeds() -> None:
    replies = [
        _error(429, "wait", **{"Retry-After": "0"}),
        _error(500, "oops"),
        json_interaction(CHAT, OK),
    ]
    with ReplayServer(replies) as server, _model(server.base_url, max_retries=2) as model:
        assert model.invoke("hi").text == "hi"
    assert len(server.requests) == 3


def _call_once(model: Any, kind: str) -> None:
    """One call of `kind` (invoke, stream, ainvoke, astream), consumed to the end."""
    if kind == "invoke":
        model.invoke("hi")
    elif kind == "stream":
        list(model.stream("hi"))
    else:

        async def run() -> None:
            try:
                if kind == "ainvoke":
                    await model.ainvoke("hi")
                else:
                    async for _ in model.astream("hi"):
                        pass
            finally:
                await model.aclose()

        asyncio.run(run())


@pytest.mark.parametrize("kind", ["invoke", "stream", "ainvoke", "astream"])
def test_a_retry_after_too_long_to_wait_is_not_retried(kind: str) -> None:
    # Retry-After beyond MAX_RETRY_AFTER: every call kind hands the 429 back at once, after
    # exactly one request (streams used to send once more to get a readable response).
    replies = [_error(429, "slow down", **{"Retry-After": "3600"})] * 3
    with (
        ReplayServer(replies) as server,
        _model(server.base_url, max_retries=2) as model,
        pytest.raises(chatmodels.RateLimitError),
    ):
        _call_once(model, kind)
    assert len(server.requests) == 1


def test_retries_are_bounded_by_max_retries() -> None:
    with (
        ReplayServer([_error(502, "bad gateway", **{"retry-after-ms": "1"})] * 4) as server,
        _model(server.base_url, max_retries=2) as model,
        pytest.raises(chatmodels.ProviderUnavailableError),
    ):
        model.invoke("hi")
    assert len(server.requests) == 3


def test_bad_request_is_not_retried() -> None:
    with (
        ReplayServer([_error(400, "no")] * 4) as server,
        _model(server.base_url, max_retries=3) as model,
        pytest.raises(chatmodels.BadRequestError),
    ):
        model.invoke("hi")
    assert len(server.requests) == 1


def test_connection_refused_is_a_network_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with _model(f"http://127.0.0.1:{port}", max_retries=1) as model:
        with pytest.raises(chatmodels.NetworkError) as caught:
            model.invoke("hi")
        status = model.health_check(timeout=1)
    assert caught.value.retryable
    assert status.status == "unhealthy"
    assert status.error_code == "network"


@pytest.mark.parametrize("mode", ["invoke", "stream", "ainvoke", "astream"])
def test_a_transport_failure_names_the_call(mode: str) -> None:
    """The transport does not know the call it serves; the error the caller sees names it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()

    async def call_async(model: chatmodels.ChatModel) -> None:
        try:
            if mode == "ainvoke":
                await model.ainvoke("hi")
            else:
                async for _ in model.astream("hi"):
                    pass
        finally:
            await model.aclose()

    def call(model: chatmodels.ChatModel) -> None:
        if mode == "invoke":
            model.invoke("hi")
        elif mode == "stream":
            list(model.stream("hi"))
        else:
            asyncio.run(call_async(model))

    with (
        _model(f"http://127.0.0.1:{port}", max_retries=0) as model,
        pytest.raises(chatmodels.NetworkError) as caught,
    ):
        call(model)
    assert caught.value.op == mode
    assert str(caught.value).startswith(f"chatmodels.{mode}: connection to ")
    assert caught.value.args == (str(caught.value),)


def test_read_timeout_is_a_timeout_error() -> None:
    with (
        OpenAICompatibleServer([ScriptedReply(delay=0.5)]) as server,
        _model(server.base_url, max_retries=0) as model,
        pytest.raises(chatmodels.TimeoutError),
    ):
        model.invoke("hi", timeout=0.05)


def test_keep_alive_reuses_one_connection() -> None:
    with ReplayServer([json_interaction(CHAT, OK)] * 5) as server, _model(server.base_url) as model:
        for _ in range(5):
            model.invoke("hi")
        assert server.connections_accepted == 1


@pytest.mark.parametrize("chunked", [True, False])
def test_stream_closed_early_releases_its_connection(chunked: bool) -> None:
    with EventChunkedReplay([_sse(chunked=chunked)] * 3) as server:
        model = _model(server.base_url)
        transport = model.transport  # type: ignore[attr-defined]
        with model.stream("hi") as stream:
            first = next(stream)
        assert first.text == "a"
        assert transport._idle == []  # closed, not pooled half-read
        assert "".join(c.text for c in model.stream("hi")) == "ab"
        assert len(transport._idle) == 1  # read to the end: back in the pool
        assert "".join(c.text for c in model.stream("hi")) == "ab"  # and reusable
        model.close()
        assert transport._idle == []
    assert server.connections_accepted == 2


def test_async_calls_map_errors_and_retry() -> None:
    async def run(url: str) -> None:
        async with _model(url, max_retries=1) as model:
            with pytest.raises(chatmodels.RateLimitError):
                await model.ainvoke("hi")
            with pytest.raises(chatmodels.RateLimitError):
                async for _ in model.astream("hi"):
                    pass

    with ReplayServer([_error(429, "no", **{"Retry-After": "0"})] * 5) as server:
        asyncio.run(run(server.base_url))
    assert len(server.requests) == 4


def test_async_stream_closed_early_and_health() -> None:
    async def run(url: str) -> tuple[str, str]:
        async with _model(url) as model:
            stream = model.astream("hi")
            first = await stream.__anext__()
            await stream.aclose()
            status = await model.ahealth_check()
            return first.text, status.status

    replies = [_sse(), json_interaction("/models", {"data": []}, method="GET")]
    with EventChunkedReplay(replies) as server:
        assert asyncio.run(run(server.base_url)) == ("a", "healthy")
    assert server.requests[1].path == "/models"


def test_closed_model_refuses_calls() -> None:
    model = _model("http://127.0.0.1:9")
    model.close()
    with pytest.raises(chatmodels.InvalidConfigError):
        model.invoke("hi")


def test_sse_decoder_handles_split_lines_crlf_comments_and_multiline_data() -> None:
    decoder = SSEDecoder()
    raw = b': ping\r\nevent: message_start\r\ndata: {"a":\r\ndata: 1}\r\n\r\ndata: x\n\ndata: tail'
    events = []
    for i in range(0, len(raw), 3):
        events += decoder.feed(raw[i : i + 3])
    events += decoder.flush()
    assert events == [("message_start", b'{"a":\n1}'), (None, b"x"), (None, b"tail")]


def test_ndjson_decoder() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a":1}\n\n{"b"') == [b'{"a":1}']
    assert decoder.feed(b":2}\n") == [b'{"b":2}']
    assert decoder.flush() == []


def _resource(caught: list[warnings.WarningMessage]) -> list[str]:
    gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def _ainvoke(model: chatmodels.ChatModel) -> Any:
    return model.ainvoke("hi")


def _ahealth(model: chatmodels.ChatModel) -> Any:
    return model.ahealth_check()


@pytest.mark.parametrize("call", [_ainvoke, _ahealth], ids=["ainvoke", "ahealth_check"])
def test_sync_close_after_asyncio_run_releases_the_async_session(
    call: Callable[[chatmodels.ChatModel], Any],
) -> None:
    with OpenAICompatibleServer() as server:
        model = _model(server.base_url)
        transport = model.transport  # type: ignore[attr-defined]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            asyncio.run(call(model))
            session = transport._session
            assert session is not None
            assert not session.closed
            protos = [p for conns in session.connector._conns.values() for p, _ in conns]
            assert protos  # a kept-alive connection of the loop asyncio.run closed
            model.close()
            assert session.closed
            assert all(p.transport is None or p.transport.is_closing() for p in protos)
            del session, protos
            assert _resource(caught) == []


def test_sync_close_schedules_the_session_close_on_a_loop_in_another_thread() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        with OpenAICompatibleServer() as server:
            model = _model(server.base_url)
            transport = model.transport  # type: ignore[attr-defined]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                reply = asyncio.run_coroutine_threadsafe(model.ainvoke("hi"), loop).result(10)
                assert reply.text == "Echo: hi"
                session = transport._session
                model.close()
                asyncio.run_coroutine_threadsafe(asyncio.sleep(0.05), loop).result(10)
                assert session.closed
                del session
                loop.call_soon_threadsafe(loop.stop)
                thread.join(10)
                loop.close()
                assert _resource(caught) == []
    finally:
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
        if not loop.is_closed():
            loop.close()


def test_the_async_http_stack_is_installed_with_the_package() -> None:
    """`pip install chatmodels` is enough for `ainvoke` and `astream`: aiohttp is a runtime
    requirement, not an extra (it is imported on the first async call only)."""
    import importlib.metadata

    required = importlib.metadata.requires("chatmodels") or []
    assert [r for r in required if r.startswith("aiohttp") and "extra ==" not in r]


@pytest.mark.parametrize("kind", ["invoke", "stream", "ainvoke", "astream"])
def test_the_scope_hears_each_retried_attempt_and_no_first_success(kind: str) -> None:
    from chatmodels._observe import set_observer

    heard: list[tuple[int, str | None]] = []

    class Scope:
        observes_chunks = False

        def attempt(self, number: int, error: Any) -> None:
            heard.append((number, None if error is None else error.code.value))

        def chunk(self, chunk: Any) -> None: ...
        def chunk_batch(self, chunks: Any) -> None: ...
        def end(self, response: Any) -> None: ...
        def fail(self, error: Any) -> None: ...
        def close(self) -> None: ...

    class Observer:
        def start(self, site: Any, request: Any) -> Scope:
            return Scope()

    ok = json_interaction(CHAT, OK) if "stream" not in kind else _sse()
    replies = [ok, _error(429, "wait", **{"Retry-After": "0"}), _error(500, "oops"), ok]
    previous = set_observer(Observer())
    try:
        with ReplayServer(replies) as server:
            with _model(server.base_url, max_retries=2) as model:
                _call_once(model, kind)
            assert heard == []  # the first attempt succeeded: nothing to report
            with _model(server.base_url, max_retries=2) as model:
                _call_once(model, kind)
    finally:
        set_observer(previous)
    assert heard == [(1, "rate_limited"), (2, "provider_unavailable"), (3, None)]
