"""Replies that do not fit their wire format, over loopback, for every wire format, sync and
async: a field of the wrong type is invalid_response naming the field's path; a stream cut
short (no end marker) is a network error after the chunks it did deliver; a 200 body that is
not a stream (HTML, empty, a whole reply) is invalid_response. After each, the same model
makes a good call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import chatmodels
import pytest
from chatmodels.testing import RecordedInteraction, ReplayServer
from wire_shapes import BY_NAME, DELETE, FORMATS, WireFormat, check_chunks, check_response, mutate

Path = Sequence[str | int]

# (format, path in the whole reply, wrong value, the path the error names)
WHOLE: list[tuple[str, Path, Any, str]] = [
    ("openai", ["choices", 0, "message", "content"], 5, "choices[0].message.content"),
    ("openai", ["usage", "prompt_tokens"], "12", "usage.prompt_tokens"),
    ("openai", ["usage", "completion_tokens"], 1.5, "usage.completion_tokens"),
    ("openai", ["usage", "total_tokens"], -1, "usage.total_tokens"),
    ("openai", ["usage", "prompt_tokens"], True, "usage.prompt_tokens"),
    ("openai", ["usage", "prompt_tokens"], 2**70, "usage.prompt_tokens"),
    (
        "openai",
        ["usage", "prompt_tokens_details", "cached_tokens"],
        "1",
        "usage.prompt_tokens_details.cached_tokens",
    ),
    ("openai", ["choices"], {"0": {}}, "choices"),
    ("openai", ["choices", 0, "finish_reason"], 3, "choices[0].finish_reason"),
    (
        "openai",
        ["choices", 0, "message", "tool_calls", 0, "function", "arguments"],
        5,
        "choices[0].message.tool_calls[0].function.arguments",
    ),
    (
        "openai",
        ["choices", 0, "message", "tool_calls", 0, "function", "name"],
        None,
        "choices[0].message.tool_calls[0].function.name",
    ),
    ("openai", ["id"], 5, "id"),
    ("anthropic", ["content", 1, "text"], 5, "content[1].text"),
    ("anthropic", ["content"], "Hello", "content"),
    ("anthropic", ["content", 2, "input"], 5, "content[2].input"),
    ("anthropic", ["usage", "input_tokens"], "5", "usage.input_tokens"),
    ("anthropic", ["usage", "cache_read_input_tokens"], -3, "usage.cache_read_input_tokens"),
    ("anthropic", ["stop_reason"], ["end_turn"], "stop_reason"),
    ("gemini", ["candidates", 0, "content", "parts", 0, "text"], 5, "parts[0].text"),
    ("gemini", ["candidates"], {"0": 1}, "candidates"),
    ("gemini", ["candidates", 0, "finishReason"], 1, "candidates[0].finishReason"),
    (
        "gemini",
        ["candidates", 0, "content", "parts", 1, "functionCall", "args"],
        "x",
        "candidates[0].content.parts[1].functionCall.args",
    ),
    ("gemini", ["usageMetadata", "promptTokenCount"], "5", "usageMetadata.promptTokenCount"),
    ("gemini", ["modelVersion"], 3, "modelVersion"),
    ("ollama", ["message", "content"], 5, "message.content"),
    ("ollama", ["message"], "Hello", "message"),
    ("ollama", ["prompt_eval_count"], "5", "prompt_eval_count"),
    ("ollama", ["eval_count"], False, "eval_count"),
    (
        "ollama",
        ["message", "tool_calls", 0, "function", "arguments"],
        5,
        "message.tool_calls[0].function.arguments",
    ),
    ("ollama", ["done_reason"], 5, "done_reason"),
    ("bedrock", ["output", "message", "content", 1, "text"], 5, "output.message.content[1].text"),
    ("bedrock", ["output"], 5, "output"),
    (
        "bedrock",
        ["output", "message", "content", 2, "toolUse", "input"],
        5,
        "output.message.content[2].toolUse.input",
    ),
    ("bedrock", ["usage", "inputTokens"], "5", "usage.inputTokens"),
    ("bedrock", ["stopReason"], 5, "stopReason"),
    ("cohere", ["message", "content", 0, "text"], 5, "message.content[0].text"),
    ("cohere", ["message"], DELETE, "message"),
    ("cohere", ["usage", "tokens", "input_tokens"], "5", "usage.tokens.input_tokens"),
    ("cohere", ["finish_reason"], 5, "finish_reason"),
    (
        "cohere",
        ["message", "tool_calls", 0, "function", "arguments"],
        5,
        "message.tool_calls[0].function.arguments",
    ),
    ("mistral", ["choices", 0, "message", "content", 1, "text"], 5, "content[1].text"),
    ("mistral", ["usage", "prompt_tokens"], "5", "usage.prompt_tokens"),
]

# (format, event index, path in that event (empty: the whole event), value, the path named)
EVENTS: list[tuple[str, int, Path, Any, str]] = [
    ("openai", 1, ["choices", 0, "delta", "content"], 5, "choices[0].delta.content"),
    ("openai", 1, ["choices", 0, "delta", "reasoning_content"], 5, "reasoning_content"),
    ("openai", 1, ["model"], 5, "model"),
    ("openai", 1, [], [1, 2], "the event"),
    ("openai", 1, ["choices"], "x", "choices"),
    ("openai", 6, ["usage", "prompt_tokens"], "5", "usage.prompt_tokens"),
    ("openai", 6, ["usage", "total_tokens"], 1e300, "usage.total_tokens"),
    (
        "openai",
        3,
        ["choices", 0, "delta", "tool_calls", 0, "index"],
        "0",
        "choices[0].delta.tool_calls[0].index",
    ),
    (
        "openai",
        4,
        ["choices", 0, "delta", "tool_calls", 0, "function", "arguments"],
        {"city": "Paris"},
        "choices[0].delta.tool_calls[0].function.arguments",
    ),
    ("openai", 5, ["choices", 0, "finish_reason"], 1, "choices[0].finish_reason"),
    ("anthropic", 2, ["delta", "text"], 5, "delta.text"),
    ("anthropic", 0, ["message", "usage", "input_tokens"], "5", "message.usage.input_tokens"),
    ("anthropic", 8, ["usage", "output_tokens"], -1, "usage.output_tokens"),
    ("anthropic", 8, ["delta", "stop_reason"], 5, "delta.stop_reason"),
    ("anthropic", 5, ["content_block", "name"], 5, "content_block.name"),
    ("anthropic", 6, ["delta", "partial_json"], 5, "delta.partial_json"),
    ("anthropic", 6, ["index"], "1", "index"),
    ("gemini", 0, ["candidates", 0, "content", "parts", 0, "text"], 5, "parts[0].text"),
    ("gemini", 2, ["usageMetadata", "totalTokenCount"], "12", "usageMetadata.totalTokenCount"),
    ("gemini", 2, ["candidates", 0, "finishReason"], 5, "candidates[0].finishReason"),
    ("gemini", 1, ["candidates", 0, "content"], [], "candidates[0].content"),
    ("ollama", 0, ["message", "content"], 5, "message.content"),
    ("ollama", 3, ["eval_count"], "7", "eval_count"),
    ("ollama", 3, ["done"], "yes", "done"),
    ("ollama", 2, ["message", "tool_calls", 0, "function", "name"], 5, "function.name"),
    ("bedrock", 1, [1, "delta", "text"], 5, "contentBlockDelta.delta.text"),
    ("bedrock", 8, [1, "usage", "inputTokens"], "5", "usage.inputTokens"),
    ("bedrock", 7, [1, "stopReason"], 5, "messageStop.stopReason"),
    ("bedrock", 5, [1, "delta", "toolUse", "input"], 5, "contentBlockDelta.delta.toolUse.input"),
    ("bedrock", 5, [1, "contentBlockIndex"], "1", "contentBlockDelta.contentBlockIndex"),
    ("cohere", 2, ["delta", "message", "content", "text"], 5, "delta.message.content.text"),
    (
        "cohere",
        8,
        ["delta", "usage", "tokens", "input_tokens"],
        "5",
        "delta.usage.tokens.input_tokens",
    ),
    ("cohere", 8, ["delta", "finish_reason"], 5, "delta.finish_reason"),
    ("cohere", 6, ["index"], "1", "index"),
    ("mistral", 1, ["choices", 0, "delta", "content"], 5, "choices[0].delta.content"),
    ("mistral", 6, ["usage", "prompt_tokens"], "5", "usage.prompt_tokens"),
]


def _whole_id(case: tuple[str, Path, Any, str]) -> str:
    return f"{case[0]}-{case[3]}-{type(case[2]).__name__}"


def _event_id(case: tuple[str, int, Path, Any, str]) -> str:
    return f"{case[0]}-{case[1]}-{case[4]}-{type(case[3]).__name__}"


def _invoke_both(
    wire: WireFormat, bad: RecordedInteraction
) -> list[tuple[chatmodels.ChatModelError | None, Any]]:
    """`invoke` then `ainvoke` (each on its own model) with `bad` first and a good reply
    after: what the bad call raised and the good call's response, for each."""
    good = wire.good(stream=False)
    results: list[tuple[chatmodels.ChatModelError | None, Any]] = []
    with ReplayServer([bad, good]) as server, wire.new_model(server.base_url) as model:
        error: chatmodels.ChatModelError | None = None
        try:
            model.invoke("hi", model=wire.model)
        except chatmodels.ChatModelError as exc:
            error = exc
        results.append((error, model.invoke("hi", model=wire.model)))
        server.check_requests()

    async def run(url: str) -> tuple[chatmodels.ChatModelError | None, Any]:
        async with wire.new_model(url) as model:
            error: chatmodels.ChatModelError | None = None
            try:
                await model.ainvoke("hi", model=wire.model)
            except chatmodels.ChatModelError as exc:
                error = exc
            return error, await model.ainvoke("hi", model=wire.model)

    with ReplayServer([bad, good]) as server:
        results.append(asyncio.run(run(server.base_url)))
        server.check_requests()
    return results


StreamResult = tuple[list[chatmodels.ChatChunk], chatmodels.ChatModelError | None, Any]


def _stream_both(wire: WireFormat, bad: RecordedInteraction) -> list[StreamResult]:
    """`stream` then `astream` with `bad` first and a good stream after: the chunks the bad
    stream delivered, what it raised, and the good stream accumulated, for each."""
    good = wire.good(stream=True)
    results: list[StreamResult] = []
    with ReplayServer([bad, good]) as server, wire.new_model(server.base_url) as model:
        chunks: list[chatmodels.ChatChunk] = []
        error: chatmodels.ChatModelError | None = None
        try:
            for chunk in model.stream("hi", model=wire.model):
                chunks.append(chunk)
        except chatmodels.ChatModelError as exc:
            error = exc
        after = chatmodels.accumulate(model.stream("hi", model=wire.model))
        results.append((chunks, error, after))
        server.check_requests()

    async def run(url: str) -> StreamResult:
        async with wire.new_model(url) as model:
            chunks: list[chatmodels.ChatChunk] = []
            error: chatmodels.ChatModelError | None = None
            try:
                async for chunk in model.astream("hi", model=wire.model):
                    chunks.append(chunk)
            except chatmodels.ChatModelError as exc:
                error = exc
            after = chatmodels.accumulate([c async for c in model.astream("hi", model=wire.model)])
            return chunks, error, after

    with ReplayServer([bad, good]) as server:
        results.append(asyncio.run(run(server.base_url)))
        server.check_requests()
    return results


def _usable(response: chatmodels.ChatResponse) -> None:
    """The good call after the bad one: its whole, well-typed reply."""
    check_response(response)
    assert response.text == "Hello"
    assert [c.name for c in response.tool_calls] == ["get_weather"]


@pytest.mark.parametrize("case", WHOLE, ids=_whole_id)
def test_a_whole_reply_field_of_the_wrong_type_is_invalid_response(
    case: tuple[str, Path, Any, str],
) -> None:
    name, path, value, named = case
    wire = BY_NAME[name]
    body = json.dumps(mutate(wire.reply, path, value)).encode()
    for error, after in _invoke_both(wire, wire.interaction(body, stream=False)):
        assert isinstance(error, chatmodels.InvalidResponseError), error
        assert error.code.value == "invalid_response"
        assert named in str(error), str(error)
        assert error.op == "invoke"
        _usable(after)


@pytest.mark.parametrize("case", EVENTS, ids=_event_id)
def test_a_stream_event_field_of_the_wrong_type_is_invalid_response(
    case: tuple[str, int, Path, Any, str],
) -> None:
    name, at, path, value, named = case
    wire = BY_NAME[name]
    events = list(wire.events)
    events[at] = mutate(events[at], path, value) if path else value
    bad = wire.interaction(wire.stream_body(events), stream=True)
    for chunks, error, after in _stream_both(wire, bad):
        assert isinstance(error, chatmodels.InvalidResponseError), error
        assert named in str(error), str(error)
        check_chunks(chunks)  # what came before the bad event, delivered as it was
        _usable(after)


@pytest.mark.parametrize("wire", FORMATS, ids=str)
def test_a_stream_without_its_end_is_a_network_error_after_its_chunks(wire: WireFormat) -> None:
    bad = wire.interaction(wire.stream_body(wire.events[: -wire.end]), stream=True)
    for chunks, error, after in _stream_both(wire, bad):
        assert isinstance(error, chatmodels.NetworkError), error
        assert error.code.value == "network"
        assert "end marker" in str(error)
        assert "".join(c.text for c in chunks) == "Hello"  # delivered before the error
        _usable(after)


@pytest.mark.parametrize("wire", FORMATS, ids=str)
def test_a_stream_cut_inside_its_last_event_is_a_network_error(wire: WireFormat) -> None:
    body = wire.stream_body()
    bad = wire.interaction(body[: len(body) - 5], stream=True)
    for chunks, error, after in _stream_both(wire, bad):
        assert isinstance(error, chatmodels.NetworkError), error
        assert "Hello" in "".join(c.text for c in chunks)
        _usable(after)


_NOT_A_STREAM = (
    [
        pytest.param(
            w, b"<html><body><h1>502 Bad Gateway</h1></body></html>\n", "text/html", id=f"{w}-html"
        )
        for w in FORMATS
    ]
    + [pytest.param(w, b"", None, id=f"{w}-empty") for w in FORMATS]
    + [
        # the whole reply, where a stream was asked for (not Ollama's: a whole Ollama reply is a
        # one-line stream that ends with done: true, a valid stream)
        pytest.param(w, None, "application/json", id=f"{w}-whole-reply")
        for w in FORMATS
        if w.provider != "ollama"
    ]
)


@pytest.mark.parametrize(("wire", "body", "content_type"), _NOT_A_STREAM)
def test_a_200_body_that_is_not_a_stream_is_invalid_response(
    wire: WireFormat, body: bytes | None, content_type: str | None
) -> None:
    if body is None:
        body = json.dumps(wire.reply).encode()
    bad = wire.interaction(body, stream=True)
    if content_type is not None:
        response = bad.response
        bad = RecordedInteraction(
            bad.request,
            type(response)(200, "", (("Content-Type", content_type),), response.body),
        )
    for chunks, error, after in _stream_both(wire, bad):
        assert isinstance(error, chatmodels.InvalidResponseError), error
        assert chunks == []
        _usable(after)


def test_an_unterminated_final_openai_event_that_parses_is_still_cut_short() -> None:
    # The usage chunk arrives whole but without its blank line, and no [DONE] follows.
    wire = BY_NAME["openai"]
    body = wire.stream_body(wire.events[:-1]).rstrip(b"\n")
    for chunks, error, _ in _stream_both(wire, wire.interaction(body, stream=True)):
        assert isinstance(error, chatmodels.NetworkError)
        assert chunks[-1].usage is not None


def test_tool_call_arguments_nested_too_deep_for_json_are_kept_raw() -> None:
    # json.loads raises RecursionError on them: the call keeps its raw text, no arguments.
    deep = "[" * 100_000
    wire = BY_NAME["openai"]
    reply = mutate(
        wire.reply, ["choices", 0, "message", "tool_calls", 0, "function", "arguments"], deep
    )
    events = list(wire.events)
    events[4] = mutate(
        events[4], ["choices", 0, "delta", "tool_calls", 0, "function", "arguments"], deep
    )
    interactions = [
        wire.interaction(json.dumps(reply).encode(), stream=False),
        wire.interaction(wire.stream_body(events), stream=True),
    ]
    with ReplayServer(interactions) as server, wire.new_model(server.base_url) as model:
        whole = model.invoke("hi", model=wire.model)
        streamed = chatmodels.accumulate(model.stream("hi", model=wire.model))
    for response in (whole, streamed):
        (call,) = response.tool_calls
        assert call.arguments == {}
        assert call.raw_arguments is not None
        assert call.raw_arguments.endswith(deep)
