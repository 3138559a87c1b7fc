"""Bad input gets a clear error and changes nothing: one test per kind of bad input, each run
through every operation that takes a name, on both backends, via methods and global functions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import chatmodels
import pytest
from chatmodels import (
    InvalidConfigError,
    InvalidCreatorError,
    InvalidProviderNameError,
    ProviderAlreadyRegisteredError,
    ProviderNotFoundError,
    ProviderRegistry,
)
from chatmodels.testing import ReplayServer
from helpers import EchoModel, check_error, echo_creator, snapshot

NameOp = Callable[[ProviderRegistry, Any], object]

# (op name in the error, how to call it); the registry argument is the one under test, which
# the global functions reach through the `global_registry` fixture.
NAME_OPS: dict[str, NameOp] = {
    "register": lambda r, n: r.register(n, echo_creator),
    "is_registered": lambda r, n: r.is_registered(n),
    "metadata": lambda r, n: r.metadata(n),
    "create": lambda r, n: r.create(n),
    "unregister": lambda r, n: r.unregister(n),
    "register_global": lambda r, n: chatmodels.register_global(n, echo_creator),
    "register_global_with_metadata": lambda r, n: chatmodels.register_global_with_metadata(
        n, echo_creator, {}
    ),
    "is_provider_registered": lambda r, n: chatmodels.is_provider_registered(n),
    "get_provider_metadata": lambda r, n: chatmodels.get_provider_metadata(n),
    "new_registry_provider": lambda r, n: chatmodels.new_registry_provider(n),
    "unregister_provider": lambda r, n: chatmodels.unregister_provider(n),
}

REGISTER_OPS: dict[str, Callable[[ProviderRegistry, str, Any], object]] = {
    "register": lambda r, n, c: r.register(n, c),
    "register_global": lambda r, n, c: chatmodels.register_global(n, c),
    "register_global_with_metadata": lambda r, n, c: chatmodels.register_global_with_metadata(
        n, c, {}
    ),
}


@pytest.fixture(params=sorted(NAME_OPS))
def op(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def populated(global_registry: ProviderRegistry) -> ProviderRegistry:
    """The global registry of the backend under test, with two providers in it."""
    global_registry.register("openai", echo_creator)
    global_registry.register("anthropic", echo_creator, metadata={"capabilities": ["vision"]})
    return global_registry


def refuse_name(registry: ProviderRegistry, op: str, name: object, detail: str) -> None:
    before = snapshot(registry)
    with pytest.raises(InvalidProviderNameError) as info:
        NAME_OPS[op](registry, name)
    check_error(
        info.value,
        InvalidProviderNameError,
        op=op,
        code="invalid_provider_name",
        detail=f"invalid provider name {detail}",
    )
    assert isinstance(info.value, ValueError)
    assert info.value.__cause__ is None
    assert snapshot(registry) == before


def test_empty_name(populated: ProviderRegistry, op: str) -> None:
    refuse_name(populated, op, "", "'': must not be empty")


@pytest.mark.parametrize("name", [" ", "   ", "\u3000", "\u00a0"])
def test_whitespace_only_name(populated: ProviderRegistry, op: str, name: str) -> None:
    refuse_name(populated, op, name, f"{name!r}: must not start or end with whitespace")


@pytest.mark.parametrize("name", [" openai", "openai ", " openai ", "openai\u2003"])
def test_leading_or_trailing_whitespace(populated: ProviderRegistry, op: str, name: str) -> None:
    refuse_name(populated, op, name, f"{name!r}: must not start or end with whitespace")


@pytest.mark.parametrize(
    ("name", "type_name"),
    [(5, "int"), (None, "NoneType"), (b"openai", "bytes"), (3.5, "float"), (["a"], "list")],
)
def test_name_not_a_str(populated: ProviderRegistry, op: str, name: object, type_name: str) -> None:
    refuse_name(populated, op, name, f"of type {type_name}: must be a str")


def test_name_over_256_characters(populated: ProviderRegistry, op: str) -> None:
    name = "x" * 257
    shown = repr(name)[:56] + "...'"
    refuse_name(populated, op, name, f"{shown}: must be at most 256 characters")


def test_name_over_256_multibyte_characters(populated: ProviderRegistry, op: str) -> None:
    name = "é" * 257  # 257 characters, 514 bytes in UTF-8
    shown = repr(name)[:56] + "...'"
    refuse_name(populated, op, name, f"{shown}: must be at most 256 characters")


@pytest.mark.parametrize("char", ["x", "é", "\U0001f600"])
def test_name_of_exactly_256_characters_is_accepted(registry: ProviderRegistry, char: str) -> None:
    name = char * 256  # the limit counts characters, not UTF-8 bytes
    assert registry.is_registered(name) is False
    registry.register(name, echo_creator)
    assert registry.is_registered(name) is True
    assert registry.names() == [name]
    assert registry.metadata(name).name == name
    assert isinstance(registry.create(name), EchoModel)
    registry.unregister(name)
    assert registry.names() == []


@pytest.mark.parametrize(
    "name", ["open\x00ai", "a\nb", "a\rb", "a\tb", "\t", "a\x1bb", "a\x7fb", "a\x85b", "a\x9fb"]
)
def test_control_characters(populated: ProviderRegistry, op: str, name: str) -> None:
    refuse_name(populated, op, name, f"{name!r}: must not contain control characters")


def test_lone_surrogate(populated: ProviderRegistry, op: str) -> None:
    # Not encodable as UTF-8 (so not as a Rust String, a log line or a span attribute): both
    # backends must refuse it as a bad name rather than fail in their own ways.
    name = "open\ud800ai"
    before = snapshot(populated)
    with pytest.raises(InvalidProviderNameError) as info:
        NAME_OPS[op](populated, name)
    check_error(
        info.value,
        InvalidProviderNameError,
        op=op,
        code="invalid_provider_name",
        detail=f"invalid provider name {name!r}: must not contain lone surrogates",
    )
    assert snapshot(populated) == before


@pytest.mark.parametrize("name", ["a b", "open-ai", "openai/v1", "ünï", "模型", "a\u200bb", "🙂"])
def test_unusual_but_valid_names(registry: ProviderRegistry, name: str) -> None:
    registry.register(name, echo_creator)
    assert registry.is_registered(name) is True
    assert registry.names() == [name]


@pytest.mark.parametrize("creator", [5, "echo", None, object()])
@pytest.mark.parametrize("via", ["register", "register_global", "register_global_with_metadata"])
def test_creator_not_callable(populated: ProviderRegistry, via: str, creator: object) -> None:
    before = snapshot(populated)
    with pytest.raises(InvalidCreatorError) as info:
        REGISTER_OPS[via](populated, "newcomer", creator)
    check_error(
        info.value,
        InvalidCreatorError,
        op=via,
        code="invalid_creator",
        detail=f"creator must be callable, got {type(creator).__name__}",
        provider="newcomer",
    )
    assert isinstance(info.value, TypeError)
    assert snapshot(populated) == before


def test_non_callable_creator_under_a_taken_name(populated: ProviderRegistry) -> None:
    # even with replace=True a bad creator never replaces the working one
    meta = populated.metadata("openai")
    before = snapshot(populated)
    with pytest.raises(InvalidCreatorError):
        populated.register("openai", 42, replace=True)  # type: ignore[arg-type]
    assert snapshot(populated) == before
    assert populated.metadata("openai") is meta


def test_bad_name_is_reported_before_a_bad_creator(populated: ProviderRegistry) -> None:
    with pytest.raises(InvalidProviderNameError):
        populated.register("", 42)  # type: ignore[arg-type]


@pytest.mark.parametrize("via", ["register", "register_global", "register_global_with_metadata"])
def test_duplicate_without_replace(populated: ProviderRegistry, via: str) -> None:
    meta = populated.metadata("openai")
    before = snapshot(populated)
    with pytest.raises(ProviderAlreadyRegisteredError) as info:
        REGISTER_OPS[via](populated, "openai", echo_creator)
    check_error(
        info.value,
        ProviderAlreadyRegisteredError,
        op=via,
        code="provider_already_registered",
        detail="provider 'openai' is already registered; pass replace=True to swap it",
        provider="openai",
    )
    assert snapshot(populated) == before
    assert populated.metadata("openai") is meta


@pytest.mark.parametrize(
    "op",
    [
        "metadata",
        "create",
        "unregister",
        "get_provider_metadata",
        "new_registry_provider",
        "unregister_provider",
    ],
)
def test_unknown_name_suggests(populated: ProviderRegistry, op: str) -> None:
    before = snapshot(populated)
    with pytest.raises(ProviderNotFoundError) as info:
        NAME_OPS[op](populated, "anthropix")
    check_error(
        info.value,
        ProviderNotFoundError,
        op=op,
        code="provider_not_found",
        detail="provider 'anthropix' is not registered; did you mean 'anthropic'?",
        provider="anthropix",
    )
    assert snapshot(populated) == before


@pytest.mark.parametrize("op", ["is_registered", "is_provider_registered"])
def test_unknown_name_is_not_an_error_for_is_registered(
    populated: ProviderRegistry, op: str
) -> None:
    assert NAME_OPS[op](populated, "anthropix") is False


def test_unknown_name_in_an_empty_registry(registry: ProviderRegistry) -> None:
    with pytest.raises(ProviderNotFoundError) as info:
        registry.metadata("openai")
    check_error(
        info.value,
        ProviderNotFoundError,
        op="metadata",
        code="provider_not_found",
        detail="provider 'openai' is not registered",
    )


def test_long_unknown_name_is_shortened_in_the_message(registry: ProviderRegistry) -> None:
    name = "y" * 256
    with pytest.raises(ProviderNotFoundError) as info:
        registry.metadata(name)
    assert str(info.value) == (
        f"chatmodels.metadata: provider {repr(name)[:56]}...' is not registered"
        " (code=provider_not_found)"
    )


# -- malformed call arguments --------------------------------------------------------------
# Each is invalid_config with its op, raised before anything is sent (the loopback server
# records no request), and the model answers the next, good call.

OK_REPLY = {
    "id": "c1",
    "model": "m-1",
    "choices": [{"index": 0, "message": {"content": "fine"}, "finish_reason": "stop"}],
}


def _user(**fields: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": "Hi", **fields}]


def _image(image_url: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": image_url}]}]


def _assistant_calls(calls: Any) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "", "tool_calls": calls},
    ]


# name → (messages, params)
BAD_CALLS: dict[str, tuple[Any, dict[str, Any]]] = {
    "role as a list": ([{"role": ["user"], "content": "Hi"}], {}),
    "role as a dict": ([{"role": {"user": 1}, "content": "Hi"}], {}),
    "unknown role": ([{"role": "wizard", "content": "Hi"}], {}),
    "image_url of 5": (_image(5), {}),
    "image_url with url 5": (_image({"url": 5}), {}),
    "tool_calls of 5": (_assistant_calls(5), {}),
    "tool call with function None": (_assistant_calls([{"id": "1", "function": None}]), {}),
    "tool call arguments of 5": (
        _assistant_calls([{"id": "1", "function": {"name": "f", "arguments": 5}}]),
        {},
    ),
    "name of 5": (_user(name=5), {}),
    "tool_call_id of 5": ([{"role": "tool", "tool_call_id": 5, "content": "r"}], {}),
    "text part of None": ([{"role": "user", "content": [{"type": "text", "text": None}]}], {}),
    "text part without text": ([{"role": "user", "content": [{"type": "text"}]}], {}),
    "content of 5": ([{"role": "user", "content": 5}], {}),
    "no content and no tool calls": ([{"role": "user"}], {}),
    "assistant with neither": ([{"role": "user", "content": "Hi"}, {"role": "assistant"}], {}),
    "tool result without content": ([{"role": "tool", "tool_call_id": "1"}], {}),
    "tools of 5": ("Hi", {"tools": 5}),
    "tools of True": ("Hi", {"tools": True}),
    "tool with parameters 5": ("Hi", {"tools": [{"name": "f", "parameters": 5}]}),
    "tool with description 5": ("Hi", {"tools": [{"name": "f", "description": 5}]}),
    "json_schema not a mapping": (
        "Hi",
        {"response_format": {"type": "json_schema", "json_schema": 5}},
    ),
    "NaN in provider_specific": ("Hi", {"provider_specific": {"x": float("nan")}}),
    "infinity in a tool schema": (
        "Hi",
        {"tools": [{"name": "f", "parameters": {"type": "number", "maximum": float("inf")}}]},
    ),
    "-infinity in provider_specific": ("Hi", {"provider_specific": {"y": [-1e999]}}),
}


@pytest.fixture
def openai_model(global_registry: ProviderRegistry) -> Iterator[tuple[Any, Any]]:
    """An openai-compatible model (made through the backend under test) and its server."""
    from chatmodels._providers._builtins import register_builtins
    from replay_helpers import json_interaction

    register_builtins(global_registry)
    ok = json_interaction("/v1/chat/completions", OK_REPLY)
    with ReplayServer([ok]) as server:
        model = chatmodels.new_registry_provider(
            "openai",
            {"base_url": f"{server.base_url}/v1", "api_key": "sk-x", "model": "m-1"},
        )
        with model:
            yield model, server


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
@pytest.mark.parametrize("op", ["invoke", "ainvoke", "stream", "astream", "batch", "abatch"])
def test_malformed_call_is_refused_before_sending(
    openai_model: tuple[Any, Any], case: str, op: str
) -> None:
    model, server = openai_model
    messages, params = BAD_CALLS[case]
    with pytest.raises(InvalidConfigError) as info:
        _call(model, op, messages, params)
    error = info.value
    assert type(error) is InvalidConfigError
    assert error.code.value == "invalid_config"
    assert error.op in (op, "encode")
    if "NaN" in case or "infinity" in case:
        assert error.op == "encode"
    assert server.requests == []
    assert model.invoke("Hi").text == "fine"  # still usable


def _call(model: Any, op: str, messages: Any, params: dict[str, Any]) -> Any:
    if op == "invoke":
        return model.invoke(messages, **params)
    if op == "stream":
        return list(model.stream(messages, **params))
    if op == "batch":
        return model.batch(["Hi", messages], **params)

    async def run() -> Any:
        if op == "ainvoke":
            return await model.ainvoke(messages, **params)
        if op == "astream":
            return [c async for c in model.astream(messages, **params)]
        return await model.abatch(["Hi", messages], **params)

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("make", "op"),
    [
        (lambda: chatmodels.Message("user", 5), "Message"),
        (lambda: chatmodels.Message("user", None), "Message"),
        (lambda: chatmodels.Message(["user"], "Hi"), "Message"),
        (lambda: chatmodels.Message("wizard", "Hi"), "Message"),
        (lambda: chatmodels.Message("user", "Hi", name=5), "Message"),
        (lambda: chatmodels.Message("tool", "r", tool_call_id=5), "Message"),
        (lambda: chatmodels.Message("user", [chatmodels.TextPart(None)]), "Message"),  # type: ignore[arg-type]
        (lambda: chatmodels.Message("user", ["Hi"]), "Message"),
        (lambda: chatmodels.Message("assistant", "", 5), "Message"),
        (lambda: chatmodels.Message("assistant", "", [{"function": None}]), "Message"),
        (lambda: chatmodels.ImagePart(url=5), "ImagePart"),
        (lambda: chatmodels.Tool("f", "", 5), "Tool"),
        (lambda: chatmodels.Tool("", "", {}), "Tool"),
        (lambda: chatmodels.Tool("f", 5), "Tool"),
    ],
)
def test_malformed_value_objects_are_refused(make: Callable[[], object], op: str) -> None:
    with pytest.raises(InvalidConfigError) as info:
        make()
    assert info.value.op == op
    assert info.value.code.value == "invalid_config"


def test_well_formed_messages_stay_accepted(openai_model: tuple[Any, Any]) -> None:
    model, server = openai_model
    text = chatmodels.TextPart("Hi")
    call = chatmodels.ToolCall("1", "f", {"a": 1})
    messages = [
        chatmodels.Message("user", [text]),  # a list of parts: kept as a tuple
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}], "name": "ann"},
        {"role": "assistant", "tool_calls": [{"id": "1", "function": {"name": "f"}}]},
        {"role": "tool", "tool_call_id": "1", "content": ""},
        chatmodels.Message("assistant", "", [call]),
        {"role": "tool", "tool_call_id": "1", "content": "r"},
    ]
    assert model.invoke(messages, tools=[{"name": "f", "parameters": {}}]).text == "fine"
    sent = server.requests[0].json
    assert [m["role"] for m in sent["messages"]] == [
        "user",
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
    ]
    assert chatmodels.Message("user", [text]).content == (text,)


# -- an async creator past its creation timeout ----------------------------------------------


@pytest.mark.parametrize("via", ["new_registry_provider", "anew_registry_provider"])
def test_async_creator_past_its_timeout_is_cancelled(
    global_registry: ProviderRegistry, via: str
) -> None:
    import threading

    started, cancelled, finished = threading.Event(), threading.Event(), threading.Event()

    async def slow(options: Any) -> Any:
        started.set()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        finished.set()
        return EchoModel(chatmodels.ProviderMetadata(name="aslow"), options)

    global_registry.register("aslow", slow)

    def create() -> object:
        if via == "new_registry_provider":
            return chatmodels.new_registry_provider("aslow", creation_timeout=0.2)
        return asyncio.run(chatmodels.anew_registry_provider("aslow", creation_timeout=0.2))

    with pytest.raises(chatmodels.CreationTimeoutError) as info:
        create()
    assert info.value.code.value == "creation_timeout"
    assert started.is_set()
    assert cancelled.wait(2), "the creator was not cancelled"
    assert not finished.is_set()


def test_async_creator_cancelled_before_it_starts(global_registry: ProviderRegistry) -> None:
    # A timeout shorter than the worker thread's start: the creator never runs.
    from chatmodels._registry import _Cancel

    cancel = _Cancel()
    cancel.cancel()
    assert cancel.attach(object(), object()) is False
