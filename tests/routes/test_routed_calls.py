"""Routed calls against loopback servers scripted to fail: where each call lands, which codes
fail over, and that no deployment is sent a call twice. Every test runs on both backends and
for the four call kinds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import chatmodels
import pytest
from chatmodels import (
    ChatModelError,
    Deployment,
    ErrorCode,
    ProviderRegistry,
    ProviderUnavailableError,
    RoutedModel,
)
from chatmodels._providers._builtins import register_builtins
from chatmodels.testing import OpenAICompatibleServer, ScriptedError, ScriptedReply

KINDS = ("invoke", "stream", "ainvoke", "astream")


def call(model: chatmodels.ChatModel, kind: str, text: str = "hi", **params: Any) -> str:
    """The reply's text, by `kind` of call."""
    if kind == "invoke":
        return model.invoke(text, **params).text
    if kind == "stream":
        return "".join(c.text for c in model.stream(text, **params))
    if kind == "ainvoke":
        return asyncio.run(model.ainvoke(text, **params)).text

    async def run() -> str:
        return "".join([c.text async for c in model.astream(text, **params)])

    return asyncio.run(run())


@pytest.fixture
def reg(backend: str) -> Iterator[ProviderRegistry]:
    registry = ProviderRegistry(backend=backend)  # type: ignore[arg-type]
    register_builtins(registry)
    yield registry
    registry.clear()


@pytest.fixture
def servers() -> Iterator[Callable[..., OpenAICompatibleServer]]:
    started: list[OpenAICompatibleServer] = []

    def make(*replies: Any) -> OpenAICompatibleServer:
        server = OpenAICompatibleServer(list(replies) if replies else None).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def dep(server: OpenAICompatibleServer, **kw: Any) -> Deployment:
    options = {"model": "m", "api_key": "sk-test", "base_url": server.base_url}
    return Deployment("openai", options, **kw)


def chats(server: OpenAICompatibleServer) -> int:
    return sum(1 for r in server.requests if r.path.endswith("/chat/completions"))


FAILOVER_CASES = [
    pytest.param(ScriptedError(429, retry_after=7), "rate_limited", id="429"),
    pytest.param(ScriptedError(503), "provider_unavailable", id="503"),
    pytest.param(ScriptedError(500), "provider_unavailable", id="500"),
    pytest.param(ScriptedReply(disconnect_after=0), "network", id="reset"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("failure", "code"), FAILOVER_CASES)
def test_failover_codes_move_the_call_once_to_the_next(
    reg: ProviderRegistry, servers: Any, kind: str, failure: Any, code: str
) -> None:
    bad, good = servers(failure), servers()
    reg.register_route("chat", [dep(bad), dep(good)], timeout=10)
    model = reg.create("chat")
    assert isinstance(model, RoutedModel)
    assert call(model, kind) == "Echo: hi"
    assert chats(bad) == 1  # the deployment's own retries are off: one attempt, no more
    assert chats(good) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_hanging_deployment_times_out_and_the_call_fails_over(
    reg: ProviderRegistry, servers: Any, kind: str
) -> None:
    slow, good = servers(ScriptedReply(delay=5)), servers()
    hanging = Deployment(
        "openai", {"model": "m", "api_key": "sk-test", "base_url": slow.base_url, "timeout": 0.3}
    )
    reg.register_route("chat", [hanging, dep(good)], timeout=10)
    start = time.monotonic()
    assert call(reg.create("chat"), kind) == "Echo: hi"
    assert time.monotonic() - start < 3  # the attempt's own 0.3 s, not the route's 10 s
    assert (chats(slow), chats(good)) == (1, 1)


@pytest.mark.parametrize("kind", KINDS)
def test_the_route_timeout_bounds_every_attempt_together(
    reg: ProviderRegistry, servers: Any, kind: str
) -> None:
    slow, never = servers(ScriptedReply(delay=5)), servers()
    reg.register_route("chat", [dep(slow), dep(never)], timeout=0.5)
    start = time.monotonic()
    with pytest.raises(ChatModelError) as info:
        call(reg.create("chat"), kind)
    assert time.monotonic() - start < 3
    assert info.value.code is ErrorCode.TIMEOUT
    assert [e.code for e in info.value.attempts] == [ErrorCode.TIMEOUT]
    assert chats(never) == 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("status", "code"),
    [(401, "authentication"), (403, "permission_denied"), (400, "bad_request")],
)
def test_caller_and_config_errors_fail_at_once(
    reg: ProviderRegistry, servers: Any, kind: str, status: int, code: str
) -> None:
    bad, good = servers(ScriptedError(status)), servers()
    reg.register_route("chat", [dep(bad), dep(good)])
    with pytest.raises(ChatModelError) as info:
        call(reg.create("chat"), kind)
    assert info.value.code.value == code
    assert chats(bad) == 1
    assert chats(good) == 0
    # they never count toward the breaker: the deployment stays closed
    assert reg.create("chat").status()[0].circuit == "closed"  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS)
def test_every_deployment_failing_raises_provider_unavailable_with_the_attempts(
    reg: ProviderRegistry, servers: Any, kind: str
) -> None:
    a, b = servers(ScriptedError(503)), servers(ScriptedError(429))
    reg.register_route("chat", [dep(a), dep(b)])
    with pytest.raises(ProviderUnavailableError) as info:
        call(reg.create("chat"), kind)
    error = info.value
    assert [e.code.value for e in error.attempts] == ["provider_unavailable", "rate_limited"]
    assert error.__cause__ is error.attempts[-1]
    assert "'chat'" in str(error)
    assert "provider_unavailable" in str(error)
    assert "rate_limited" in str(error)
    assert (chats(a), chats(b)) == (1, 1)


def test_failover_on_replaces_the_codes(reg: ProviderRegistry, servers: Any) -> None:
    bad, good = servers(ScriptedError(503), ScriptedError(401)), servers()
    reg.register_route("chat", [dep(bad), dep(good)], failover_on=["authentication"])
    model = reg.create("chat")
    with pytest.raises(ChatModelError) as info:
        model.invoke("hi")  # 503 no longer fails over
    assert info.value.code is ErrorCode.PROVIDER_UNAVAILABLE
    assert model.invoke("hi").text == "Echo: hi"  # 401 now does
    assert chats(good) == 1


def test_retry_after_opens_the_circuit_for_exactly_that_long(
    reg: ProviderRegistry, servers: Any
) -> None:
    now = [100.0]
    bad, good = servers(ScriptedError(429, retry_after=7)), servers()
    reg.register_route("chat", [dep(bad), dep(good)], clock=lambda: now[0])
    model = reg.create("chat")
    assert isinstance(model, RoutedModel)
    model.invoke("hi")
    first = model.status()[0]
    assert first.circuit == "open"
    assert first.seconds_until_close == pytest.approx(7.0)
    model.invoke("again")
    assert chats(bad) == 1  # open: skipped
    now[0] += 7.0
    assert model.status()[0].circuit == "half_open"
    model.invoke("trial")  # the trial goes to the half-open deployment and succeeds
    assert chats(bad) == 2
    assert model.status()[0].circuit == "closed"


def test_a_stream_fails_over_only_before_its_first_chunk(
    reg: ProviderRegistry, servers: Any
) -> None:
    cut = ScriptedReply(text="one two three four", disconnect_after=2)
    bad, good = servers(cut), servers()
    reg.register_route("chat", [dep(bad), dep(good)])
    stream = reg.create("chat").stream("hi")
    got = []

    def read() -> None:
        for chunk in stream:
            got.append(chunk.text)

    with pytest.raises(ChatModelError):
        read()
    assert got  # text already shown: the error reaches the caller as it is
    assert chats(good) == 0


def test_context_length_moves_only_to_a_larger_declared_window(
    reg: ProviderRegistry, servers: Any
) -> None:
    too_long = ScriptedError(
        400, message="maximum context length exceeded", code="context_length_exceeded"
    )
    small, same, large = servers(too_long), servers(), servers()
    reg.register_route(
        "chat",
        [
            dep(small, context_window=8000),
            dep(same, context_window=8000),
            dep(large, context_window=128_000),
        ],
    )
    assert reg.create("chat").invoke("hi").text == "Echo: hi"
    assert (chats(small), chats(same), chats(large)) == (1, 0, 1)


def test_capabilities_and_windows_make_deployments_ineligible(
    reg: ProviderRegistry, servers: Any
) -> None:
    tiny, good = servers(), servers()
    reg.register_route("chat", [dep(tiny, context_window=10), dep(good)])
    model = reg.create("chat")
    model.invoke("hello " * 20, max_tokens=5)  # 10 tokens cannot hold it
    assert (chats(tiny), chats(good)) == (0, 1)
    reg.register_route("tiny", [dep(tiny, context_window=10)])
    with pytest.raises(ProviderUnavailableError, match="context window"):
        reg.create("tiny").invoke("hello " * 20)
    assert chats(tiny) == 0


def test_a_cancelled_call_is_not_retried(reg: ProviderRegistry, servers: Any) -> None:
    slow, good = servers(ScriptedReply(delay=2)), servers()
    reg.register_route("chat", [dep(slow), dep(good)])
    model = reg.create("chat")

    async def run() -> None:
        task = asyncio.ensure_future(model.ainvoke("hi"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert chats(good) == 0
    assert isinstance(model, RoutedModel)
    assert [s.in_flight for s in model.status()] == [0, 0]
    assert model.status()[0].circuit == "closed"


def test_a_routed_model_follows_replacements_and_old_models_close_after_drain(
    reg: ProviderRegistry, servers: Any
) -> None:
    a, b = servers(), servers()
    reg.register_route("chat", [dep(a)])
    model = reg.create("chat")
    assert isinstance(model, RoutedModel)
    old = model.route
    model.invoke("one")
    reg.register_route("chat", [dep(b)], replace=True)
    model.invoke("two")
    assert (chats(a), chats(b)) == (1, 1)
    assert old.retired
    assert all(m.closed for m in old.models)
    current = model.route
    reg.unregister("chat")
    assert current.retired
    assert all(m.closed for m in current.models)
    with pytest.raises(chatmodels.ProviderNotFoundError):
        model.invoke("three")


def test_a_replaced_provider_entry_is_picked_up(reg: ProviderRegistry, servers: Any) -> None:
    a = servers()
    reg.register_route("chat", [dep(a)])
    model = reg.create("chat")
    assert isinstance(model, RoutedModel)
    before = model.route.models[0]
    original = reg.metadata("openai")
    made: list[chatmodels.ChatModel] = []

    def creator(options: chatmodels.ProviderOptions) -> chatmodels.ChatModel:
        from chatmodels._providers._fake import FakeChatModel

        fake = FakeChatModel(original, options, responses=["from the replacement"])
        made.append(fake)
        return fake

    reg.register("openai", creator, metadata=original, replace=True)
    assert model.invoke("hi").text == "from the replacement"
    assert model.route.models[0] is made[0]
    assert before.closed


def test_closing_a_routed_model_releases_nothing_shared(
    reg: ProviderRegistry, servers: Any
) -> None:
    a = servers()
    reg.register_route("chat", [dep(a)])
    one, two = reg.create("chat"), reg.create("chat")
    one.close()
    assert two.invoke("hi").text == "Echo: hi"
    with pytest.raises(chatmodels.InvalidConfigError):
        one.invoke("hi")


def test_a_replaced_entry_with_other_capabilities_changes_the_routes(
    reg: ProviderRegistry, servers: Any
) -> None:
    from chatmodels._providers._fake import FakeChatModel

    a = servers()
    reg.register_route("chat", [dep(a)])
    model = reg.create("chat")
    assert isinstance(model, RoutedModel)
    assert "tool_calling" in reg.metadata("chat").capabilities
    assert "chat" in reg.by_capability("tool_calling")
    plain = chatmodels.ProviderMetadata(name="openai", capabilities=["chat", "streaming"])

    def creator(options: chatmodels.ProviderOptions) -> chatmodels.ChatModel:
        return FakeChatModel(plain, options, responses=["plain"])

    reg.register("openai", creator, metadata=plain, replace=True)
    assert model.invoke("hi").text == "plain"  # the call picks the replaced entry up
    assert reg.metadata("chat").capabilities == frozenset({"chat", "streaming"})
    assert model.route.metadata.capabilities == frozenset({"chat", "streaming"})
    assert "chat" not in reg.by_capability("tool_calling")
    assert "chat" in reg.by_capability("streaming")
