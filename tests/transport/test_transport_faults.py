"""The transport against a misbehaving server (tests/faults.py), over every wire format, sync
and async, invoke and stream: deadlines that hold on the wall clock, redirects refused,
undecodable or oversized bodies refused with bounded memory, framing linear in its input.

Out of scope here (the parsers' tests): replies of the wrong JSON types, streams without their
end marker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import re
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import chatmodels
import faults
import pytest
from chatmodels import ErrorCode
from chatmodels._transport._framing import EventStreamDecoder, NDJSONDecoder, SSEDecoder
from chatmodels.testing import load_cassette
from replay_helpers import find_cassette

MARGIN = 0.5  # seconds a call may run past its limit (scheduling on a busy machine)
KEY = "sk-fault-key-0123456789"


@dataclasses.dataclass(frozen=True)
class Wire:
    """A provider as the tests drive it: its options, and a recorded reply and stream."""

    options: dict[str, Any]
    reply: tuple[str, str]  # cassette (provider dir, name)
    stream: tuple[str, str]

    def body(self, streamed: bool) -> tuple[bytes, str]:
        """The recorded body and content type of a reply (or of a stream)."""
        (interaction,) = load_cassette(find_cassette(*(self.stream if streamed else self.reply)))
        response = interaction.response
        ctype = next(v for k, v in response.headers if k.lower() == "content-type")
        return response.body, ctype


_OPENAI = (
    ("openai", "chat_completion_with_content.yaml"),
    ("openai", "chat_completion_streaming.yaml"),
)
WIRES = {
    "openai_compatible": Wire({"api_key": KEY, "model": "m"}, *_OPENAI),
    "azure_openai": Wire({"api_key": KEY, "model": "m", "api_version": "2024-06-01"}, *_OPENAI),
    "anthropic": Wire(
        {"api_key": KEY, "model": "m"},
        ("anthropic", "messages_create_basic.yaml"),
        ("anthropic", "messages_create_streaming.yaml"),
    ),
    "gemini": Wire(
        {"api_key": KEY, "model": "m"},
        ("gemini", "generate_content_non_streaming.yaml"),
        ("gemini", "generate_content_streaming.yaml"),
    ),
    "ollama": Wire(
        {"model": "m"},
        ("ollama", "chat_with_events_with_content.yaml"),
        ("ollama", "streaming_chat_with_events_with_content.yaml"),
    ),
    "bedrock": Wire(
        {"api_key": KEY, "model": "m", "region": "us-east-1"},
        ("bedrock", "converse_with_content.yaml"),
        ("bedrock", "converse_stream_with_content.yaml"),
    ),
    "cohere": Wire(
        {"api_key": KEY, "model": "m"},
        ("cohere", "v2_chat_legacy.yaml"),
        ("cohere", "v2_chat_legacy_with_streaming.yaml"),
    ),
    "mistral": Wire(
        {"api_key": KEY, "model": "m"},
        ("mistral", "chat_with_events_with_content.yaml"),
        ("mistral", "streaming_chat_with_events_with_content.yaml"),
    ),
}
PROVIDERS = sorted(WIRES)
KINDS = ["invoke", "stream", "ainvoke", "astream"]


def _model(provider: str, url: str, **options: Any) -> chatmodels.ChatModel:
    opts = {"base_url": url, "max_retries": 0, **WIRES[provider].options, **options}
    return chatmodels.new_registry_provider(provider, opts)


def _first_event(provider: str, body: bytes) -> bytes:
    """The first event of a recorded stream, with its framing."""
    if provider == "bedrock":
        return body[: int.from_bytes(body[:4], "big")]
    if provider == "ollama":
        return body[: body.index(b"\n") + 1]
    end = re.search(rb"\r?\n\r?\n", body)
    assert end is not None
    return body[: end.end()]


def _call(
    model: chatmodels.ChatModel,
    kind: str,
    *,
    timeout: float | None = None,
    between: Callable[[], None] | None = None,
) -> list[Any]:
    """One call of `kind`, consumed to the end: the response, or the chunks of a stream
    (`between` runs after each chunk)."""
    params = {} if timeout is None else {"timeout": timeout}
    if kind == "invoke":
        return [model.invoke("hi", **params)]
    if kind == "stream":
        chunks = []
        for chunk in model.stream("hi", **params):
            chunks.append(chunk)
            if between:
                between()
        return chunks

    async def run() -> list[Any]:
        try:
            if kind == "ainvoke":
                return [await model.ainvoke("hi", **params)]
            chunks = []
            async for chunk in model.astream("hi", **params):
                chunks.append(chunk)
                if between:
                    await asyncio.sleep(0)
                    between()
            return chunks
        finally:
            await model.aclose()

    return asyncio.run(run())


def _failing(
    model: chatmodels.ChatModel, kind: str, **params: Any
) -> tuple[chatmodels.ChatModelError, float, list[Any]]:
    """The error a call of `kind` ends with, the seconds it took, and the chunks a stream
    delivered before it."""
    got: list[Any] = []
    start = time.monotonic()
    streamed = kind in ("stream", "astream")
    with model, pytest.raises(chatmodels.ChatModelError) as caught:
        _collect(model, kind, got, **params) if streamed else _call(model, kind, **params)
    return caught.value, time.monotonic() - start, got


def _collect(model: chatmodels.ChatModel, kind: str, got: list[Any], **params: Any) -> None:
    if kind == "stream":
        for chunk in model.stream("hi", **params):
            got.append(chunk)
        return

    async def run() -> None:
        try:
            async for chunk in model.astream("hi", **params):
                got.append(chunk)
        finally:
            await model.aclose()

    asyncio.run(run())


def _reply_behaviour(provider: str, kind: str) -> tuple[bytes, str]:
    return WIRES[provider].body(kind in ("stream", "astream"))


# -- deadlines -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_trickled_body_cannot_hold_a_call_past_its_timeout(provider: str, kind: str) -> None:
    body, ctype = _reply_behaviour(provider, kind)
    head = faults.response(200, b"", content_type=ctype, length=len(body))

    def behave(conn: faults.Conn, request: faults.Request) -> bool:
        return conn.send(head) and faults.trickle(body, 0.05)(conn, request)

    with faults.FaultServer([behave]) as server:
        model = _model(provider, server.base_url)
        error, took, _ = _failing(model, kind, timeout=0.6)
    assert isinstance(error, chatmodels.TimeoutError), error
    assert error.code is ErrorCode.TIMEOUT
    assert "timeout of 0.6 s" in str(error)
    assert took < 0.6 + MARGIN


@pytest.mark.parametrize("kind", KINDS)
def test_a_trickled_head_cannot_hold_a_call_past_its_timeout(kind: str) -> None:
    body, ctype = _reply_behaviour("openai_compatible", kind)
    data = faults.response(200, body, content_type=ctype)
    with faults.FaultServer([faults.trickle(data, 0.05)]) as server:
        model = _model("openai_compatible", server.base_url, timeout=0.6)
        error, took, _ = _failing(model, kind)
    assert isinstance(error, chatmodels.TimeoutError)
    assert took < 0.6 + MARGIN


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_retries_against_a_silent_server_stay_within_the_timeout(provider: str, kind: str) -> None:
    with faults.FaultServer([faults.silent()]) as server:
        model = _model(provider, server.base_url, max_retries=2, timeout=0.6)
        error, took, _ = _failing(model, kind)
    assert isinstance(error, chatmodels.TimeoutError)
    assert "timeout of 0.6 s" in str(error)
    assert took < 0.6 + MARGIN
    assert len(server.requests) == 1  # the deadline had nothing left for a retry


@pytest.mark.parametrize("kind", KINDS)
def test_connecting_honours_the_timeout(kind: str) -> None:
    with faults.full_backlog() as url:
        model = _model("openai_compatible", url, max_retries=2)
        error, took, _ = _failing(model, kind, timeout=1)
    assert isinstance(error, chatmodels.TimeoutError), error
    assert "within the call's timeout of 1 s" in str(error)
    assert took < 1 + MARGIN


@pytest.mark.parametrize("kind", KINDS)
def test_a_retry_after_past_the_deadline_is_not_waited_for(kind: str) -> None:
    error_body = b'{"error":{"message":"busy","type":"x"}}'
    busy = faults.reply(503, error_body, (("Retry-After", "5"),))
    with faults.FaultServer([busy]) as server:
        model = _model("openai_compatible", server.base_url, max_retries=2, timeout=1)
        error, took, _ = _failing(model, kind)
    assert error.code is ErrorCode.PROVIDER_UNAVAILABLE
    assert took < 1
    assert len(server.requests) == 1


@pytest.mark.parametrize("kind", ["stream", "astream"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_stream_gone_quiet_ends_at_its_idle_limit(provider: str, kind: str) -> None:
    body, ctype = WIRES[provider].body(True)
    first = _first_event(provider, body)
    with faults.FaultServer([faults.stream([first], content_type=ctype, hold=True)]) as server:
        model = _model(provider, server.base_url, timeout=5, stream_idle_timeout=0.5)
        error, took, _ = _failing(model, kind)
    assert isinstance(error, chatmodels.TimeoutError), error
    assert "stream_idle_timeout (0.5 s)" in str(error)
    assert 0.5 <= took < 0.5 + MARGIN  # not the 5 s deadline: it ended at the first event


@pytest.mark.parametrize("kind", ["stream", "astream"])
def test_a_stream_may_outlast_its_timeout_while_events_keep_coming(kind: str) -> None:
    body, ctype = WIRES["openai_compatible"].body(True)
    events = [event + b"\n\n" for event in body.split(b"\n\n") if event]
    events = [*events[:2], b"".join(events[2:])]
    paced = faults.stream(events, content_type=ctype, interval=0.25)
    with faults.FaultServer([paced]) as server:
        model = _model("openai_compatible", server.base_url, timeout=0.6)
        with model:
            start = time.monotonic()
            naps = [0.7, 0.7]  # after the first two chunks, longer than the idle limit
            chunks = _call(model, kind, between=lambda: time.sleep(naps.pop() if naps else 0))
    assert time.monotonic() - start > 0.6  # past the deadline: each event within the idle limit
    assert "".join(c.text for c in chunks)  # the caller's own time between chunks is not idle


def test_the_idle_limit_is_validated() -> None:
    for bad in (0, -1, "5", True, float("inf")):
        with pytest.raises(chatmodels.InvalidConfigError) as caught:
            _model("openai_compatible", "http://127.0.0.1:9", stream_idle_timeout=bad)
        assert "stream_idle_timeout" in str(caught.value)
    for name in ("max_response_bytes", "max_event_bytes"):
        for bad in (0, -1, 1.5, True):
            with pytest.raises(chatmodels.InvalidConfigError, match=name):
                _model("openai_compatible", "http://127.0.0.1:9", **{name: bad})


# -- redirects, resets, truncation ------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_redirect_is_refused_and_credentials_stay_home(provider: str, kind: str) -> None:
    body, ctype = _reply_behaviour(provider, kind)
    with faults.FaultServer([faults.reply(200, body, content_type=ctype)]) as elsewhere:
        target = f"{elsewhere.base_url}/steal?token=abc"
        with faults.FaultServer([faults.redirect(target, 307)]) as server:
            model = _model(provider, server.base_url, max_retries=2)
            error, _, _ = _failing(model, kind)
    assert isinstance(error, chatmodels.InvalidResponseError), error
    assert error.status_code == 307
    assert f"{elsewhere.base_url}/steal?..." in str(error)
    assert "token=abc" not in str(error)
    assert not error.retryable
    assert len(server.requests) == 1
    assert elsewhere.requests == []


@pytest.mark.parametrize("kind", ["invoke", "ainvoke"])
@pytest.mark.parametrize("fault", ["reset", "truncated"])
def test_a_reset_or_cut_reply_is_a_retried_network_error(kind: str, fault: str) -> None:
    body, _ = _reply_behaviour("openai_compatible", kind)
    behaviour = faults.reset() if fault == "reset" else faults.truncated(body, len(body) // 2)
    with faults.FaultServer([behaviour, behaviour]) as server:
        model = _model("openai_compatible", server.base_url, max_retries=1, timeout=10)
        error, took, _ = _failing(model, kind)
    assert isinstance(error, chatmodels.NetworkError), error
    assert error.retryable
    assert len(server.requests) == 2
    assert took < 5


# -- encodings and sizes ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_garbage_encoding_is_invalid_response_not_retried(provider: str, kind: str) -> None:
    body, ctype = _reply_behaviour(provider, kind)
    stream = kind in ("stream", "astream")
    bad = faults.encoded(body, "x-garbage", content_type=ctype, stream=stream)
    with faults.FaultServer([bad]) as server:
        model = _model(provider, server.base_url, max_retries=2)
        error, _, got = _failing(model, kind)
    assert isinstance(error, chatmodels.InvalidResponseError), error
    assert "x-garbage" in str(error)
    assert len(server.requests) == 1
    assert got == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_corrupt_gzip_body_is_invalid_response(kind: str) -> None:
    body, ctype = _reply_behaviour("openai_compatible", kind)
    corrupt = gzip.compress(body)[:20] + b"\xff" * 40
    stream = kind in ("stream", "astream")
    bad = faults.encoded(corrupt, "gzip", content_type=ctype, stream=stream)
    with faults.FaultServer([bad]) as server:
        model = _model("openai_compatible", server.base_url, max_retries=2)
        error, _, _ = _failing(model, kind)
    assert isinstance(error, chatmodels.InvalidResponseError), error
    assert len(server.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_gzip_and_deflate_replies_are_decoded(provider: str, kind: str) -> None:
    import zlib

    body, ctype = _reply_behaviour(provider, kind)
    stream = kind in ("stream", "astream")
    replies = [
        faults.encoded(gzip.compress(body), "gzip", content_type=ctype, stream=stream),
        faults.encoded(zlib.compress(body), "deflate", content_type=ctype, stream=stream),
    ]
    with faults.FaultServer(replies) as server:
        for _ in replies:
            with _model(provider, server.base_url) as model:
                got = _call(model, kind)
            assert got
            if stream:
                assert any(chunk.text or chunk.finish_reason for chunk in got)
            else:
                assert got[0].text


def _peak(call: Callable[[], Any]) -> tuple[BaseException | None, int]:
    """The exception `call` raised (or None) and its traced memory peak in bytes."""
    tracemalloc.start()
    try:
        call()
    except BaseException as exc:
        return exc, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return None, 0


MIB = 1 << 20


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_gzip_bomb_stops_at_its_bound_with_memory_bounded(provider: str, kind: str) -> None:
    stream = kind in ("stream", "astream")
    bomb = faults.gzip_bomb(64 * MIB, stream=stream)  # built (once) before tracing
    with faults.FaultServer([bomb]) as server:
        model = _model(provider, server.base_url, max_response_bytes=MIB, max_event_bytes=MIB)
        with model:
            error, peak = _peak(lambda: _call(model, kind))
    assert isinstance(error, chatmodels.InvalidResponseError), error
    assert "max_event_bytes" in str(error) if stream else "max_response_bytes" in str(error)
    assert peak < 12 * MIB, peak  # the bomb holds 64 MiB


@pytest.mark.parametrize("kind", ["invoke", "ainvoke"])
def test_a_gzip_bomb_stops_at_the_default_bound(kind: str) -> None:
    with faults.FaultServer([faults.gzip_bomb(128 * MIB)]) as server:
        model = _model("openai_compatible", server.base_url)
        with model:
            error, peak = _peak(lambda: _call(model, kind))
    assert isinstance(error, chatmodels.InvalidResponseError)
    assert f"max_response_bytes ({32 * MIB} bytes)" in str(error)
    assert peak < 80 * MIB, peak  # the bomb holds 128 MiB; zlib's pieces and their join: 2x


@pytest.mark.parametrize("kind", ["invoke", "ainvoke"])
@pytest.mark.parametrize("chunked", [False, True])
def test_a_huge_body_is_refused_at_its_bound(kind: str, chunked: bool) -> None:
    with faults.FaultServer([faults.huge(256 * MIB, chunked=chunked)]) as server:
        model = _model("openai_compatible", server.base_url, max_response_bytes=MIB, timeout=20)
        with model:
            start = time.monotonic()
            error, peak = _peak(lambda: _call(model, kind))
    assert isinstance(error, chatmodels.InvalidResponseError), error
    assert "max_response_bytes" in str(error)
    assert peak < 12 * MIB, peak
    assert time.monotonic() - start < 10  # not read to its end


@pytest.mark.parametrize("kind", ["stream", "astream"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_line_that_never_ends_stops_at_the_event_bound(provider: str, kind: str) -> None:
    with faults.FaultServer([faults.long_line(32 * MIB)]) as server:
        model = _model(provider, server.base_url, timeout=20)
        with model:
            start = time.monotonic()
            error, peak = _peak(lambda: _call(model, kind))
    assert isinstance(error, chatmodels.InvalidResponseError), error
    assert "max_event_bytes (4194304 bytes)" in str(error)
    assert peak < 16 * MIB, peak
    assert time.monotonic() - start < 10


# -- framing in linear time ------------------------------------------------------------------


def _frame_of(size: int) -> bytes:
    """An event stream frame with a payload of `size` bytes."""
    import binascii
    import struct

    headers = b"\x0b:event-type\x07\x00\x0ccontentBlock"
    total = 16 + len(headers) + size
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + headers + b"x" * size
    return message + struct.pack(">I", binascii.crc32(message))


@pytest.mark.parametrize("decoder", ["sse", "ndjson", "eventstream"])
def test_framing_a_long_event_is_linear(decoder: str) -> None:
    size = 32 * MIB
    if decoder == "eventstream":
        size = 16 * MIB  # botocore refuses payloads past 24 MiB
        data = _frame_of(size)
        dec: Any = EventStreamDecoder(max_event=64 * MIB)
    else:
        data = (b"data: " if decoder == "sse" else b"") + b"x" * size + b"\n\n"
        dec = (SSEDecoder if decoder == "sse" else NDJSONDecoder)(max_event=64 * MIB)
    start = time.monotonic()
    events = []
    for i in range(0, len(data), 65536):
        events += dec.feed(data[i : i + 65536])
    events += dec.flush()
    took = time.monotonic() - start
    assert len(events) == 1
    assert took < 2, took  # a quadratic join of 512 pieces took about 27 s


def test_sse_events_of_many_lines_are_bounded_too() -> None:
    decoder = SSEDecoder(max_event=1000)
    lines = (b"data: " + b"x" * 20 + b"\n") * 10  # 210 bytes of data, no blank line
    for _ in range(4):
        decoder.feed(lines)  # one event that keeps growing
    with pytest.raises(chatmodels.InvalidResponseError, match="max_event_bytes"):
        decoder.feed(lines)
    decoder = SSEDecoder(max_event=1000)
    for _ in range(200):  # the same bytes as many small events are fine
        assert len(decoder.feed(b"data: xx\n\n" * 10)) == 10


def test_eventstream_refuses_a_frame_larger_than_the_bound_from_its_prelude() -> None:
    decoder = EventStreamDecoder(max_event=1000)
    with pytest.raises(chatmodels.InvalidResponseError, match="max_event_bytes"):
        decoder.feed(_frame_of(5000)[:8])
