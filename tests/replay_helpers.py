"""What the provider replay tests (providers/test_chat_*.py) share: where cassettes are, a model
pointed at a loopback server, hand-written interactions, the replay loop, secret checks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import chatmodels
from chatmodels.testing import RecordedInteraction, RecordedRequest, RecordedResponse, ReplayServer

T = TypeVar("T")

# Recorded exchanges (../shared/cassettes, read in place) and the ones written from API
# references for what no recording covers (tests/cassettes).
SHARED_CASSETTES = Path(__file__).resolve().parents[2] / "shared" / "cassettes"
OWN_CASSETTES = Path(__file__).resolve().parent / "cassettes"


def cassette_dirs(provider: str) -> tuple[Path, Path]:
    """The recorded and the reference-written cassette folders of `provider`."""
    return SHARED_CASSETTES / provider, OWN_CASSETTES / provider


def find_cassette(provider: str, name: str) -> Path:
    """The cassette `name` of `provider`: the recorded one if there is one, else our own."""
    shared, own = cassette_dirs(provider)
    return shared / name if (shared / name).exists() else own / name


def new_model(provider: str, base_url: str, **options: Any) -> chatmodels.ChatModel:
    """A registry instance of `provider` talking to `base_url`, without retries."""
    return chatmodels.new_registry_provider(
        provider, {"base_url": base_url, "max_retries": 0, **options}
    )


def json_interaction(
    path: str,
    body: Any,
    *,
    status: int = 200,
    method: str = "POST",
    headers: Sequence[tuple[str, str]] = (),
    raw: bytes | None = None,
) -> RecordedInteraction:
    """An interaction answering ``method path`` with `body` as JSON (or the `raw` bytes)."""
    content = raw if raw is not None else json.dumps(body).encode()
    content_type = () if raw is not None else (("Content-Type", "application/json"),)
    return RecordedInteraction(
        RecordedRequest(method, f"https://api.example.com{path}", path, {}, b"", None),
        RecordedResponse(status, "", (*content_type, *headers), content),
    )


class EventChunkedReplay(ReplayServer):
    """A ReplayServer that sends a stream one SSE event per HTTP chunk, as live APIs do
    (ReplayServer sends a recorded stream as a single chunk). Overrides a private method of
    chatmodels.testing: a ``chunking`` option there would replace it."""

    @staticmethod
    def _replay(recorded: RecordedResponse) -> Any:
        response = ReplayServer._replay(recorded)
        if response.chunks is not None:
            events = recorded.body.split(b"\n\n")
            response.chunks = [event + b"\n\n" for event in events if event]
        return response


def replay_each(
    interactions: Sequence[RecordedInteraction],
    model: Callable[[ReplayServer], chatmodels.ChatModel],
    call: Callable[[chatmodels.ChatModel, RecordedInteraction], T],
) -> tuple[ReplayServer, list[T]]:
    """Serve `interactions` in order and make `call` once for each (a recorded conversation
    is several turns); every interaction must have been requested, as recorded."""
    with ReplayServer(interactions) as server, model(server) as chat_model:
        results = [call(chat_model, inter) for inter in interactions]
        server.check_requests()
    return server, results


def replay_async(
    plain: Sequence[RecordedInteraction],
    streamed: Sequence[RecordedInteraction],
    model: Callable[[str], chatmodels.ChatModel],
    call_args: Callable[[Any], tuple[Any, dict[str, Any]]],
) -> tuple[ReplayServer, chatmodels.ChatResponse, ReplayServer, chatmodels.ChatResponse]:
    """`ainvoke` the one-turn recording `plain` and `astream` the one-turn recording
    `streamed` (accumulated), each from its own server, in one event loop; the servers come
    back with the responses for checking what was sent."""
    (first,), (second,) = plain, streamed

    async def run(url1: str, url2: str) -> tuple[chatmodels.ChatResponse, chatmodels.ChatResponse]:
        async with model(url1) as m1, model(url2) as m2:
            messages, params = call_args(first.request.json)
            one = await m1.ainvoke(messages, **params)
            messages, params = call_args(second.request.json)
            chunks = [c async for c in m2.astream(messages, **params)]
            return one, chatmodels.accumulate(chunks)

    with ReplayServer(plain) as s1, ReplayServer(streamed) as s2:
        one, two = asyncio.run(run(s1.base_url, s2.base_url))
    return s1, one, s2, two


def assert_secret_hidden(secret: str, *objects: object) -> None:
    """`secret` appears in neither the str nor the repr of any of `objects`."""
    for obj in objects:
        assert secret not in str(obj)
        assert secret not in repr(obj)
