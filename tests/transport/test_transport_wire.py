"""The request head the transport writes itself (one write: head and body together), and
stream chunks parsed before a failing event being delivered before the error."""

from __future__ import annotations

from collections.abc import Iterator

import chatmodels
import pytest
from chatmodels import ErrorCode
from chatmodels._providers._http import StreamEnd
from chatmodels._transport import Transport
from chatmodels._transport._wire import WireRequest
from chatmodels.testing import OpenAICompatibleServer
from replay_helpers import EventChunkedReplay, json_interaction

BODY = b'{"messages":[{"role":"user","content":"hi"}],"model":"m"}'


@pytest.fixture
def server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer() as srv:
        yield srv


def test_head_carries_host_length_and_identity_encoding(server: OpenAICompatibleServer) -> None:
    transport = Transport(server.base_url)
    try:
        headers = {"Content-Type": "application/json", "Authorization": "Bearer k"}
        resp = transport.request(WireRequest("POST", "/chat/completions", headers, BODY))
        assert resp.status == 200
        got = server.requests[-1]
        assert got.method == "POST"
        assert got.path == "/v1/chat/completions"
        assert got.body == BODY
        assert got.headers["host"] == f"127.0.0.1:{server.port}"
        assert got.headers["content-length"] == str(len(BODY))
        assert got.headers["accept-encoding"] == "identity"
        assert got.headers["authorization"] == "Bearer k"
        # a GET without a body sends no Content-Length
        assert transport.request(WireRequest("GET", "/models", {})).status == 200
        assert "content-length" not in server.requests[-1].headers
    finally:
        transport.close()
    assert server.connections_accepted == 1


def test_headers_given_by_the_caller_are_not_doubled(server: OpenAICompatibleServer) -> None:
    transport = Transport(server.base_url)
    try:
        headers = {"host": "example.test", "Accept-Encoding": "gzip", "Content-Type": "x"}
        transport.request(WireRequest("POST", "/chat/completions", headers, BODY))
    finally:
        transport.close()
    got = server.requests[-1].headers  # repeated headers would be joined with ", "
    assert got["host"] == "example.test"
    assert got["accept-encoding"] == "gzip"


def test_an_empty_post_says_content_length_0(server: OpenAICompatibleServer) -> None:
    transport = Transport(server.base_url)
    try:
        transport.request(WireRequest("POST", "/chat/completions", {}))
    finally:
        transport.close()
    assert server.requests[-1].headers["content-length"] == "0"


@pytest.mark.parametrize(
    ("headers", "path"),
    [
        ({"X-Note": "a\r\nInjected: 1"}, "/chat/completions"),
        ({"X-Note": "a\nInjected: 1"}, "/chat/completions"),
        ({"X-Bad\r\nInjected": "1"}, "/chat/completions"),
        ({"X-Note": "caf\u00e9 \u2615"}, "/chat/completions"),  # not latin-1
        ({}, "/chat/completions HTTP/1.1\r\nInjected: 1"),
        ({}, "/chat completions"),
    ],
)
def test_unsafe_heads_are_refused_before_sending(
    server: OpenAICompatibleServer, headers: dict[str, str], path: str
) -> None:
    transport = Transport(server.base_url, provider="openai")
    try:
        with pytest.raises(chatmodels.InvalidConfigError) as caught:
            transport.request(WireRequest("POST", path, headers, BODY))
    finally:
        transport.close()
    assert caught.value.code is ErrorCode.INVALID_CONFIG
    assert caught.value.provider == "openai"
    assert server.requests == []
    assert server.connections_accepted == 0


def test_ipv6_and_default_port_host_lines() -> None:
    assert Transport("http://[::1]:8080/v1")._host_line == "Host: [::1]:8080\r\n"
    assert Transport("https://api.example.com/v1")._host_line == "Host: api.example.com\r\n"
    assert Transport("http://example.com:80")._host_line == "Host: example.com\r\n"


_EVENT = b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"%s"}}]}\n\n'
_ERROR = b'data: {"error":{"message":"overloaded mid-stream","type":"server_error"}}\n\n'


@pytest.mark.parametrize("chunked", [True, False])
def test_chunks_before_an_error_event_arrive_before_the_error(chunked: bool) -> None:
    body = _EVENT % b"a" + _EVENT % b"b" + _ERROR  # one read: all three events at once
    stream_type = (("Content-Type", "text/event-stream"),) if chunked else ()
    reply = json_interaction("/chat/completions", None, raw=body, headers=stream_type)
    with EventChunkedReplay([reply] * 2) as server:
        model = chatmodels.new_registry_provider(
            "openai_compatible", {"base_url": server.base_url, "model": "m"}
        )
        got: list[str] = []

        def consume() -> None:
            got.extend(chunk.text for chunk in model.stream("hi"))

        with pytest.raises(chatmodels.ChatModelError) as caught:
            consume()
        assert got == ["a", "b"]
        assert caught.value.code is ErrorCode.PROVIDER_UNAVAILABLE
        assert "overloaded mid-stream" in str(caught.value)

        async def collect() -> list[str]:
            seen: list[str] = []

            async def consume() -> None:
                async for chunk in model.astream("hi"):
                    seen.append(chunk.text)

            with pytest.raises(chatmodels.ChatModelError):
                await consume()
            await model.aclose()
            return seen

        import asyncio

        assert asyncio.run(collect()) == ["a", "b"]


def test_a_malformed_event_after_good_ones_is_invalid_response() -> None:
    body = _EVENT % b"a" + b"data: {not json}\n\n"
    stream_type = (("Content-Type", "text/event-stream"),)
    reply = json_interaction("/chat/completions", None, raw=body, headers=stream_type)
    with EventChunkedReplay([reply]) as server:
        model = chatmodels.new_registry_provider(
            "openai_compatible", {"base_url": server.base_url, "model": "m"}
        )
        stream = model.stream("hi")
        assert next(stream).text == "a"
        with pytest.raises(chatmodels.InvalidResponseError) as caught:
            next(stream)
        assert isinstance(caught.value.__cause__, ValueError)
        model.close()


def _events(*datas: bytes) -> list[tuple[str | None, bytes]]:
    return [(None, data) for data in datas]


def _text_event(text: str) -> bytes:
    return (_EVENT % text.encode())[6:-2]


def test_a_read_of_events_parses_as_its_events_one_by_one() -> None:
    from chatmodels._providers._openai import OpenAIAdapter

    adapter = OpenAIAdapter("openai", None)
    usage = b'{"id":"c","model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}'
    events = _events(_text_event("a"), _text_event("b"), usage, b"[DONE]", _text_event("late"))
    together: list[chatmodels.ChatChunk] = []
    with pytest.raises(StreamEnd):
        adapter.parse_events(events, {}, together)
    alone: list[chatmodels.ChatChunk] = []
    for event in events[:3]:
        got = adapter.parse_event(event, {})
        alone.extend([got] if isinstance(got, chatmodels.ChatChunk) else got)
    assert together == alone
    assert [c.text for c in together] == ["a", "b", ""]
    assert together[-1].usage is not None
    assert together[-1].usage.total_tokens == 5


@pytest.mark.parametrize(
    "bad",
    [b"{not json}", b"1,2", b'{"x":[1'],  # not JSON; two values in one event; half a value
)
def test_a_bad_event_in_a_read_keeps_the_chunks_before_it(bad: bytes) -> None:
    from chatmodels._providers._openai import OpenAIAdapter

    adapter = OpenAIAdapter("openai", None)
    out: list[chatmodels.ChatChunk] = []
    with pytest.raises((ValueError, AttributeError)):
        adapter.parse_events(_events(_text_event("a"), bad, _text_event("c")), {}, out)
    assert [c.text for c in out] == ["a"]


def test_a_request_json_cannot_hold_is_invalid_config_and_nothing_is_sent(
    server: OpenAICompatibleServer,
) -> None:
    model = chatmodels.new_registry_provider(
        "openai_compatible", {"base_url": server.base_url, "model": "m"}
    )
    circular: dict[str, object] = {}
    circular["self"] = circular
    for extra in ({"x": object()}, {"x": {1, 2}}, circular):
        for call in (model.invoke, lambda *a, **k: list(model.stream(*a, **k))):
            with pytest.raises(chatmodels.InvalidConfigError) as caught:
                call("hi", provider_specific=extra)
            assert caught.value.code is ErrorCode.INVALID_CONFIG
            assert caught.value.op == "encode"
    assert server.requests == []
    assert model.invoke("hi").text  # the model is still usable
    model.close()


@pytest.mark.parametrize(
    "part",
    [
        {"type": "thinking", "thinking": "t", "signature": 5},
        {"type": "redacted_thinking", "data": ["x"]},
    ],
)
def test_a_reasoning_dict_with_a_non_str_opaque_field_is_invalid_config(part: object) -> None:
    model = chatmodels.new_registry_provider("fake", {})
    with pytest.raises(chatmodels.InvalidConfigError) as caught:
        model.invoke([{"role": "assistant", "content": [part]}, {"role": "user", "content": "x"}])
    assert caught.value.op == "invoke"
