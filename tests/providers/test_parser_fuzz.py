"""Hypothesis: each wire format's valid reply and stream, mutated (fields of the wrong type,
fields removed, events dropped or repeated, the body truncated, junk bytes), fed to every
parser, sync and async, invoke and stream, with an OpenTelemetry SDK recording. The only
exception that may leave a call is a `ChatModelError`; a call that succeeds has fields of
their documented types; and the model stays usable (the next good call succeeds).

Most examples go through the adapters with a canned transport (no sockets, so many
examples are cheap); a smaller number go over loopback through `ReplayServer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import chatmodels
import pytest
from chatmodels import telemetry
from chatmodels._observe import set_observer
from chatmodels._transport._framing import DEFAULT_MAX_EVENT_BYTES
from chatmodels.testing import ReplayServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from wire_shapes import DELETE, FORMATS, WireFormat, check_chunks, check_response, mutate

FUZZ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
LOOPBACK = settings(FUZZ, max_examples=10)


@pytest.fixture(scope="module", autouse=True)
def sdk() -> Iterator[None]:
    """An SDK with in-memory exporters as chatmodels' telemetry (usage lands in metrics)."""
    previous_container = telemetry.get_container()
    previous_observer = set_observer(telemetry.TelemetryObserver())
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    chatmodels.configure(
        tracer_provider=tracer_provider, meter_provider=meter_provider, capture_content=True
    )
    yield
    meter_provider.shutdown()
    tracer_provider.shutdown()
    set_observer(previous_observer)
    telemetry.set_container(previous_container)


# -- strategies ----------------------------------------------------------------------------

_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=6),
)
_JSON = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=5,
)


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path to a value inside `value` (the root excluded)."""
    out: list[tuple[str | int, ...]] = []
    if not isinstance(value, (dict, list)):
        return out
    items: Any = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        path = (*prefix, key)
        out.append(path)
        out.extend(_paths(item, path))
    return out


@st.composite
def _mutated(draw: st.DrawFn, value: Any) -> Any:
    """`value` with one to three fields replaced by random JSON or removed."""
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(value)
        if not paths:
            return draw(_JSON)
        path = draw(st.sampled_from(paths))
        new = draw(st.one_of(_JSON, st.just(DELETE)))
        parent = value
        for step in path[:-1]:
            parent = parent[step]
        if new is DELETE and isinstance(parent, list):
            new = None
        value = mutate(value, path, new)
    return value


@st.composite
def _damaged(draw: st.DrawFn, body: bytes) -> bytes:
    """`body` as it is, truncated, or with junk bytes inserted."""
    kind = draw(st.sampled_from(["as is", "truncated", "junk"]))
    if kind == "truncated":
        return body[: draw(st.integers(0, max(len(body) - 1, 0)))]
    if kind == "junk":
        at = draw(st.integers(0, len(body)))
        return body[:at] + draw(st.binary(min_size=1, max_size=8)) + body[at:]
    return body


@st.composite
def whole_bodies(draw: st.DrawFn, wire: WireFormat) -> bytes:
    """A whole reply of `wire`: mutated, then maybe damaged as bytes."""
    reply = draw(st.one_of(_mutated(wire.reply), st.just(wire.reply)))
    return draw(_damaged(json.dumps(reply).encode()))


@st.composite
def stream_bodies(draw: st.DrawFn, wire: WireFormat) -> bytes:
    """A stream of `wire`: events mutated, dropped or repeated, framed, maybe damaged."""
    events = list(wire.events)
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(events) - 1))
        action = draw(st.sampled_from(["mutate", "mutate", "drop", "repeat"]))
        if action == "drop":
            del events[at]
        elif action == "repeat":
            events.insert(at, events[at])
        elif wire.provider == "bedrock":  # keep the [event_type, payload] pair framable
            kind, payload = events[at]
            events[at] = [kind, draw(_mutated(payload))]
        else:
            events[at] = draw(_mutated(events[at]))
        if not events:
            break
    return draw(_damaged(wire.stream_body(events)))


def _pieces(data: st.DataObject, body: bytes) -> list[bytes]:
    """`body` cut into the network reads it arrives in."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=4)))
    bounds = [0, *cuts, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds) if b > a]


# -- a canned transport: the adapters and the stream loop without sockets -----------------


class _Headers:
    def get(self, name: str, /) -> str | None:
        return None


class _Stream:
    status = 200
    headers = _Headers()

    def __init__(self, pieces: Sequence[bytes]) -> None:
        self._pieces = list(pieces)

    def touch(self) -> None:
        """The idle limit's restart: no clock here."""

    def chunks(self) -> Iterator[bytes]:
        yield from self._pieces

    async def read(self) -> bytes:
        return self._pieces.pop(0) if self._pieces else b""

    def body(self) -> bytes:
        return b"".join(self._pieces)

    def drain(self, *args: Any) -> Any:
        return _done() if isinstance(self, _AsyncStream) else None

    def close(self) -> None:
        pass


class _AsyncStream(_Stream):
    pass


async def _done() -> None:
    pass


class _Canned:
    """A transport answering each call with the next canned body (whole or in pieces)."""

    base_url = "http://canned.invalid"
    host = "canned.invalid"
    port = 80
    max_event_bytes = DEFAULT_MAX_EVENT_BYTES

    def __init__(self) -> None:
        self.bodies: list[list[bytes]] = []

    def request(self, *args: Any, **kwargs: Any) -> Any:
        from chatmodels._transport._wire import WireResponse

        return WireResponse(200, _Headers(), b"".join(self.bodies.pop(0)))

    async def arequest(self, *args: Any, **kwargs: Any) -> Any:
        return self.request()

    def stream(self, *args: Any, **kwargs: Any) -> _Stream:
        return _Stream(self.bodies.pop(0))

    async def astream(self, *args: Any, **kwargs: Any) -> _Stream:
        return _AsyncStream(self.bodies.pop(0))

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def _canned(wire: WireFormat) -> tuple[chatmodels.ChatModel, _Canned]:
    model = wire.new_model("http://canned.invalid")
    canned = _Canned()
    model.transport = canned  # type: ignore[attr-defined]
    return model, canned


def _invoke(model: chatmodels.ChatModel, wire: WireFormat, sync: bool) -> chatmodels.ChatResponse:
    if sync:
        return model.invoke("hi", model=wire.model)
    return asyncio.run(model.ainvoke("hi", model=wire.model))


def _stream(
    model: chatmodels.ChatModel, wire: WireFormat, sync: bool, got: list[chatmodels.ChatChunk]
) -> None:
    """Stream into `got` (kept when the stream raises)."""
    if sync:
        for chunk in model.stream("hi", model=wire.model):
            got.append(chunk)
        return

    async def run() -> None:
        stream: AsyncIterator[chatmodels.ChatChunk] = model.astream("hi", model=wire.model)
        async for chunk in stream:
            got.append(chunk)

    asyncio.run(run())


def _whole_then_good(model: chatmodels.ChatModel, wire: WireFormat, sync: bool) -> None:
    with contextlib.suppress(chatmodels.ChatModelError):  # any other exception fails
        check_response(_invoke(model, wire, sync))
    after = _invoke(model, wire, sync)
    check_response(after)
    assert after.text == "Hello"


def _stream_then_good(model: chatmodels.ChatModel, wire: WireFormat, sync: bool) -> None:
    got: list[chatmodels.ChatChunk] = []
    with contextlib.suppress(chatmodels.ChatModelError):
        _stream(model, wire, sync, got)
    check_chunks(got)  # what was delivered, error or not
    after: list[chatmodels.ChatChunk] = []
    _stream(model, wire, sync, after)
    check_chunks(after)
    assert chatmodels.accumulate(after).text == "Hello"


_GOOD_WHOLE = {w.provider: json.dumps(w.reply).encode() for w in FORMATS}


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
@pytest.mark.parametrize("wire", FORMATS, ids=str)
@FUZZ
@given(data=st.data())
def test_any_whole_reply_gives_a_response_or_a_chat_model_error(
    wire: WireFormat, sync: bool, data: st.DataObject
) -> None:
    model, canned = _canned(wire)
    canned.bodies = [[data.draw(whole_bodies(wire))], [_GOOD_WHOLE[wire.provider]]]
    _whole_then_good(model, wire, sync)


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
@pytest.mark.parametrize("wire", FORMATS, ids=str)
@FUZZ
@given(data=st.data())
def test_any_stream_gives_chunks_and_at_most_a_chat_model_error(
    wire: WireFormat, sync: bool, data: st.DataObject
) -> None:
    model, canned = _canned(wire)
    body = data.draw(stream_bodies(wire))
    canned.bodies = [_pieces(data, body), _pieces(data, wire.stream_body())]
    _stream_then_good(model, wire, sync)


@pytest.mark.parametrize("wire", FORMATS, ids=str)
@LOOPBACK
@given(whole=st.data())
def test_over_loopback_any_reply_leaves_the_model_usable(
    wire: WireFormat, whole: st.DataObject
) -> None:
    bad_whole = whole.draw(whole_bodies(wire))
    bad_stream = whole.draw(stream_bodies(wire))
    interactions = [
        wire.interaction(bad_whole, stream=False),
        wire.good(stream=False),
        wire.interaction(bad_stream, stream=True),
        wire.good(stream=True),
    ]
    with ReplayServer(interactions) as server, wire.new_model(server.base_url) as model:
        _whole_then_good(model, wire, True)
        _stream_then_good(model, wire, True)

    async def run(url: str) -> None:
        async with wire.new_model(url) as model:
            with contextlib.suppress(chatmodels.ChatModelError):
                check_response(await model.ainvoke("hi", model=wire.model))
            check_response(await model.ainvoke("hi", model=wire.model))
            got: list[chatmodels.ChatChunk] = []
            try:
                async for chunk in model.astream("hi", model=wire.model):
                    got.append(chunk)
            except chatmodels.ChatModelError:
                pass
            check_chunks(got)
            after = [c async for c in model.astream("hi", model=wire.model)]
            assert chatmodels.accumulate(after).text == "Hello"

    with ReplayServer(interactions) as server:
        asyncio.run(run(server.base_url))


def test_the_strategies_reach_the_error_paths() -> None:
    # The fuzzing is only as good as what it generates: most mutated replies must fail.
    wire = FORMATS[0]
    outcomes: list[str] = []

    @settings(max_examples=60, deadline=None, database=None)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        model, canned = _canned(wire)
        canned.bodies = [[data.draw(whole_bodies(wire))]]
        try:
            model.invoke("hi", model=wire.model)
            outcomes.append("ok")
        except chatmodels.InvalidResponseError:
            outcomes.append("invalid_response")
        except chatmodels.ChatModelError as exc:
            outcomes.append(exc.code.value)

    run()
    assert "invalid_response" in outcomes
