"""The `anthropic` provider against recorded exchanges (../shared/cassettes/anthropic) and
exchanges written from the API reference (tests/cassettes/anthropic, marked as such).

Each test serves a cassette from `chatmodels.testing.ReplayServer`, makes the same call
through the public API, and checks the request we sent (method, path, headers, equivalent
body) and every parsed field against values read from the cassette independently of the
adapter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import chatmodels
import pytest
from chatmodels import ChatResponse, ErrorCode, FinishReason, Message, ReasoningPart, TextPart
from chatmodels._providers._http import StreamEnd
from chatmodels.testing import (
    RecordedInteraction,
    RecordedRequest,
    RecordedResponse,
    ReplayServer,
    assert_bodies_equivalent,
    load_cassette,
)
from replay_helpers import (
    assert_secret_hidden,
    cassette_dirs,
    find_cassette,
    new_model,
    replay_async,
)

SHARED, OWN = cassette_dirs("anthropic")
KEY = "sk-ant-test-secret-key-123456"


def _model(url: str, **options: Any) -> chatmodels.ChatModel:
    return new_model("anthropic", url, api_key=KEY, **options)


def _cassette(name: str) -> Path:
    return find_cassette("anthropic", name)


# -- reading a recorded request back into call arguments ------------------------------------


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """OpenAI-style messages for the recorded Anthropic ``system`` and ``messages``."""
    out: list[dict[str, Any]] = []
    if "system" in body:
        out.append({"role": "system", "content": body["system"]})
    for msg in body["messages"]:
        content = msg["content"]
        if isinstance(content, str):
            out.append({"role": msg["role"], "content": content})
            continue
        text = "".join(b["text"] for b in content if b["type"] == "text")
        calls = [
            {
                "id": b["id"],
                "type": "function",
                "function": {"name": b["name"], "arguments": json.dumps(b["input"])},
            }
            for b in content
            if b["type"] == "tool_use"
        ]
        results = [b for b in content if b["type"] == "tool_result"]
        for result in results:
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": result["tool_use_id"],
                    "content": result["content"],
                }
            )
        if not results:
            entry: dict[str, Any] = {"role": msg["role"], "content": text}
            if calls:
                entry["tool_calls"] = calls
            out.append(entry)
    return out


def _call_args(body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The invoke arguments that should produce `body`."""
    params: dict[str, Any] = {}
    specific: dict[str, Any] = {}
    for key, value in body.items():
        if key in ("messages", "system", "stream"):
            continue
        if key == "stop_sequences":
            params["stop"] = value
        elif key == "tools":
            params["tools"] = [
                {
                    "name": t["name"],
                    "description": t["description"],
                    "parameters": t["input_schema"],
                }
                for t in value
            ]
        elif key == "tool_choice":
            kind = value["type"]
            params["tool_choice"] = {"tool": value.get("name"), "any": "required"}.get(kind, kind)
            if value.get("disable_parallel_tool_use"):
                params["parallel_tool_calls"] = False
        elif key == "output_config":
            schema = value["format"]["schema"]
            params["response_format"] = {"type": "json_schema", "json_schema": {"schema": schema}}
        elif key in ("max_tokens", "model", "temperature", "top_p", "top_k"):
            params[key] = value
        else:
            specific[key] = value
    if specific:
        params["provider_specific"] = specific
    return _messages(body), params


# -- expectations read from the recorded responses -----------------------------------------

# Anthropic's stop reasons (https://docs.claude.com/en/api/handling-stop-reasons), normalised.
FINISH = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
}


def _usage_of(raw: dict[str, Any]) -> tuple[int, int, int, int | None, int | None]:
    read, write = raw.get("cache_read_input_tokens"), raw.get("cache_creation_input_tokens")
    prompt = raw["input_tokens"] + (read or 0) + (write or 0)
    return prompt, raw["output_tokens"], prompt + raw["output_tokens"], read, write


def _expected(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": data["id"],
        "model": data["model"],
        "text": "".join(b["text"] for b in data["content"] if b["type"] == "text"),
        "calls": [
            (b["id"], b["name"], b["input"]) for b in data["content"] if b["type"] == "tool_use"
        ],
        "raw_finish": data["stop_reason"],
        "usage": _usage_of(data["usage"]),
        "reasoning": [
            ReasoningPart(b["thinking"], b["signature"])
            if b["type"] == "thinking"
            else ReasoningPart(redacted=b["data"])
            for b in data["content"]
            if b["type"] in ("thinking", "redacted_thinking")
        ],
    }


def _stream_expected(body: bytes) -> dict[str, Any]:
    """What a recorded SSE body says, read without the adapter."""
    message: dict[str, Any] = {}
    usage: dict[str, Any] = {}
    text: list[str] = []
    calls: dict[int, list[Any]] = {}
    thinking: dict[int, list[str]] = {}
    finish = None
    for line in body.decode().splitlines():
        if not line.startswith("data: "):
            continue
        obj = json.loads(line[6:])
        if obj["type"] == "message_start":
            message = obj["message"]
            usage.update(message["usage"])
        elif obj["type"] == "content_block_start" and obj["content_block"]["type"] == "tool_use":
            block = obj["content_block"]
            calls[obj["index"]] = [block["id"], block["name"], ""]
        elif obj["type"] == "content_block_start" and obj["content_block"]["type"] == "thinking":
            thinking[obj["index"]] = [obj["content_block"]["thinking"], ""]
        elif obj["type"] == "content_block_delta":
            delta = obj["delta"]
            if delta["type"] == "text_delta":
                text.append(delta["text"])
            elif delta["type"] == "input_json_delta":
                calls[obj["index"]][2] += delta["partial_json"]
            elif delta["type"] == "thinking_delta":
                thinking[obj["index"]][0] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                thinking[obj["index"]][1] += delta["signature"]
        elif obj["type"] == "message_delta":
            finish = obj["delta"]["stop_reason"]
            usage.update(obj["usage"])
    return {
        "id": message["id"],
        "model": message["model"],
        "text": "".join(text),
        "calls": [(i, n, json.loads(a or "{}")) for i, n, a in (calls[k] for k in sorted(calls))],
        "raw_finish": finish,
        "usage": _usage_of(usage),
        "reasoning": [ReasoningPart(t, sig) for t, sig in (thinking[k] for k in sorted(thinking))],
    }


def _check(response: ChatResponse, expected: dict[str, Any]) -> None:
    assert response.provider == "anthropic"
    assert response.id == expected["id"]
    assert response.model == expected["model"]
    assert response.text == expected["text"]
    content = response.message.content
    reasoning = [] if isinstance(content, str) else [p for p in content if type(p) is ReasoningPart]
    assert reasoning == expected["reasoning"]
    if not reasoning:
        assert isinstance(content, str)
    assert response.message.role == "assistant"
    assert [(c.id, c.name, dict(c.arguments)) for c in response.tool_calls] == expected["calls"]
    assert response.raw_finish_reason == expected["raw_finish"]
    assert response.finish_reason is FINISH[expected["raw_finish"]]
    usage = response.usage
    assert usage is not None
    assert (
        usage.input_tokens,
        usage.output_tokens,
        usage.total_tokens,
        usage.cache_read_input_tokens,
        usage.cache_creation_input_tokens,
    ) == expected["usage"]
    assert usage.reasoning_tokens is None


def _check_sent(server: ReplayServer, *, stream: bool) -> None:
    server.check_requests()
    assert len(server.requests) == len(server.interactions)
    for sent, inter in zip(server.requests, server.interactions, strict=True):
        assert sent.method == inter.request.method == "POST"
        assert sent.path == inter.request.path == "/v1/messages"
        assert inter.request.uri == "https://api.anthropic.com/v1/messages"
        assert sent.headers["x-api-key"] == KEY
        assert sent.headers["anthropic-version"] == inter.request.headers["anthropic-version"]
        assert sent.headers["content-type"] == "application/json"
        assert "authorization" not in sent.headers
        assert sent.headers["accept"] == ("text/event-stream" if stream else "application/json")
        assert_bodies_equivalent(inter.request.json, sent.json)


# -- whole replies ---------------------------------------------------------------------------

INVOKED = [
    "messages_create_basic.yaml",
    "messages_create_aggregates_cache_tokens.yaml",
    "messages_create_captures_thinking_content.yaml",
    "messages_create_captures_tool_use_content.yaml",
    "messages_create_stop_reason.yaml",
    "messages_create_token_usage.yaml",
    "messages_create_with_all_params.yaml",
    "messages_tool_results.yaml",
    "messages_structured_output.yaml",
]


@pytest.mark.parametrize("cassette", INVOKED)
def test_invoke_replays_the_recording(cassette: str) -> None:
    with ReplayServer.from_cassette(_cassette(cassette)) as server:
        (inter,) = server.interactions
        messages, params = _call_args(inter.request.json)
        with _model(server.base_url) as model:
            response = model.invoke(messages, **params)
        _check_sent(server, stream=False)
    _check(response, _expected(json.loads(inter.response.body)))
    assert response.latency is not None
    assert response.latency > 0


def test_recorded_values_spelled_out() -> None:
    with ReplayServer.from_cassette(SHARED / "messages_create_basic.yaml") as server:
        with _model(server.base_url) as model:
            response = model.invoke(
                "Say hello in one word.", model="claude-sonnet-4-20250514", max_tokens=100
            )
        server.check_requests()
    assert response.id == "msg_0176GK1qFwwpVM59jDYiKPjN"
    assert response.text == "Hello!"
    assert response.finish_reason is FinishReason.STOP
    assert response.usage == chatmodels.Usage(
        13, 5, 18, cache_read_input_tokens=0, cache_creation_input_tokens=0
    )


def test_thinking_blocks_are_not_reply_text() -> None:
    path = SHARED / "messages_create_captures_thinking_content.yaml"
    with ReplayServer.from_cassette(path) as server, _model(server.base_url) as model:
        (inter,) = server.interactions
        messages, params = _call_args(inter.request.json)
        response = model.invoke(messages, **params)
        assert server.requests[0].json["thinking"] == {"type": "enabled", "budget_tokens": 10000}
    assert response.text.startswith("I need to calculate 17 \u00d7 19.\n\nLet me work through")
    assert "Let me double-check this with standard multiplication" not in response.text
    (block, _) = json.loads(inter.response.body)["content"]
    assert block["type"] == "thinking"
    assert response.message.content == (
        ReasoningPart(block["thinking"], block["signature"]),
        TextPart(response.text),
    )
    assert response.reasoning == block["thinking"]
    assert response.reasoning.startswith("I need to calculate 17 \u00d7 19.\n\nLet me think")
    assert response.reasoning.endswith("Both methods give me 323.")
    assert response.message.content[0].signature.startswith("EuYFCkYICxgCKkDxKjCDNXmiJ72K")


def test_streamed_thinking_spelled_out() -> None:
    with ReplayServer.from_cassette(OWN / "messages_stream_thinking.yaml") as server:
        (inter,) = server.interactions
        messages, params = _call_args(inter.request.json)
        with _model(server.base_url) as model:
            chunks = list(model.stream(messages, **params))
    assert [c.reasoning for c in chunks if c.reasoning] == [
        "17 * 19 = 17 * 20 - 17",
        " = 340 - 17 = 323.",
    ]
    signed = [c.reasoning_signature for c in chunks if c.reasoning_signature is not None]
    assert signed == ["EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"]
    assert all(c.text == "" for c in chunks if c.reasoning or c.reasoning_signature)
    response = chatmodels.accumulate(chunks)
    assert response.message.content == (
        ReasoningPart(
            "17 * 19 = 17 * 20 - 17 = 340 - 17 = 323.",
            "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds",
        ),
        TextPart("17 \u00d7 19 = 323."),
    )


def _served(body: dict[str, Any]) -> RecordedInteraction:
    return RecordedInteraction(
        RecordedRequest(
            "POST", "https://api.anthropic.com/v1/messages", "/v1/messages", {}, b"", None
        ),
        RecordedResponse(
            200, "OK", (("Content-Type", "application/json"),), json.dumps(body).encode()
        ),
    )


def test_thinking_with_its_signature_goes_back_first() -> None:
    """Anthropic requires a thinking turn that used tools to come back with its thinking
    blocks, signed and unchanged, before the tool_use (extended thinking with tool use)."""
    path = SHARED / "messages_create_captures_thinking_content.yaml"
    (recorded,) = load_cassette(path)
    thinking, _ = json.loads(recorded.response.body)["content"]
    tool_turn = {
        "id": "msg_tool_turn",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-20250514",
        "content": [
            thinking,
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
            {"type": "tool_use", "id": "toolu_1", "name": "multiply", "input": {"a": 17, "b": 19}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 50, "output_tokens": 60},
    }
    final = {**tool_turn, "id": "msg_final", "stop_reason": "end_turn"}
    final["content"] = [{"type": "text", "text": "323"}]
    tool = {"name": "multiply", "parameters": {"type": "object", "properties": {}}}
    with ReplayServer([_served(tool_turn), _served(final)]) as server:
        with _model(server.base_url) as model:
            first = model.invoke("What is 17*19?", model="claude-sonnet-4-20250514", tools=[tool])
            (call,) = first.tool_calls
            history = [Message.user("What is 17*19?"), first.message, Message.tool(call.id, "323")]
            model.invoke(history, model="claude-sonnet-4-20250514", tools=[tool])
        sent = server.requests[1].json["messages"]
    assert first.message.content == (
        ReasoningPart(thinking["thinking"], thinking["signature"]),
        ReasoningPart(redacted="EmwKAhgBEgy3va3pzix/LafPsn4a"),
    )
    assert sent[1] == {
        "role": "assistant",
        "content": [
            {
                "type": "thinking",
                "thinking": thinking["thinking"],
                "signature": thinking["signature"],
            },
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
            {"type": "tool_use", "id": "toolu_1", "name": "multiply", "input": {"a": 17, "b": 19}},
        ],
    }
    assert sent[2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "323"}],
    }


def test_reasoning_and_text_parts_in_a_plain_assistant_turn() -> None:
    model = _model("http://127.0.0.1:9")
    message = Message("assistant", (TextPart("answer"), ReasoningPart("why", "sig")))
    history = [Message.user("q"), message, Message.user("more")]
    request = model._prepare(history, {}, False, "invoke")  # type: ignore[attr-defined]
    body = model.adapter.build_body(request)  # type: ignore[attr-defined]
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "why", "signature": "sig"},
        {"type": "text", "text": "answer"},
    ]


def test_tool_call_and_tool_results_round_trip() -> None:
    path = SHARED / "messages_create_captures_tool_use_content.yaml"
    with ReplayServer.from_cassette(path) as server, _model(server.base_url) as model:
        tool = {
            "name": "get_weather",
            "description": "Get weather by city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
        response = model.invoke(
            "What is the weather in SF?",
            model="claude-sonnet-4-20250514",
            max_tokens=256,
            tools=[tool],
            tool_choice="get_weather",
        )
        server.check_requests()
    (call,) = response.tool_calls
    assert (call.id, call.name, call.arguments) == (
        "toolu_01UAcA2APHENDob6qJ8kmoaC",
        "get_weather",
        {"city": "San Francisco"},
    )
    assert response.finish_reason is FinishReason.TOOL_CALLS
    # The call goes back as a tool_use block and its result as a tool_result block.
    model = _model("http://127.0.0.1:9")
    wire = model.adapter.build_body(  # type: ignore[attr-defined]
        model._prepare(
            [
                {"role": "user", "content": "What is the weather in SF?"},
                response.message,
                {"role": "tool", "tool_call_id": call.id, "content": "Sunny"},
            ],
            {"tools": [tool]},
            False,
            "invoke",
        )
    )
    assert wire["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_01UAcA2APHENDob6qJ8kmoaC",
                    "name": "get_weather",
                    "input": {"city": "San Francisco"},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": call.id, "content": "Sunny"},
            ],
        },
    ]


def test_structured_output_is_parsed() -> None:
    with ReplayServer.from_cassette(OWN / "messages_structured_output.yaml") as server:
        (inter,) = server.interactions
        messages, params = _call_args(inter.request.json)
        with _model(server.base_url) as model:
            response = model.invoke(messages, **params)
    assert response.parsed == {"name": "Jane Doe", "age": 34, "email": "jane@example.com"}


def test_images_and_parallel_flag_on_the_wire() -> None:
    model = _model("http://127.0.0.1:9")
    request = model._prepare(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                    },
                ],
            }
        ],
        {"tools": [lambda_tool], "tool_choice": "required", "parallel_tool_calls": False},
        False,
        "invoke",
    )
    body = model.adapter.build_body(request)  # type: ignore[attr-defined]
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
    ]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert body["max_tokens"] == 4096
    assert body["model"] == "claude-sonnet-4-5"


def lambda_tool(city: str) -> str:
    """Look a city up."""
    return city


# -- streams ---------------------------------------------------------------------------------

STREAMED = [
    "messages_create_streaming.yaml",
    "messages_stream_tool_use.yaml",
    "messages_stream_thinking.yaml",
]


@pytest.mark.parametrize("cassette", STREAMED)
def test_stream_replays_the_recording(cassette: str) -> None:
    with ReplayServer.from_cassette(_cassette(cassette)) as server:
        (inter,) = server.interactions
        messages, params = _call_args(inter.request.json)
        with _model(server.base_url) as model:
            chunks = list(model.stream(messages, **params))
        _check_sent(server, stream=True)
    assert server.requests[0].json["stream"] is True
    response = chatmodels.accumulate(chunks)
    _check(response, _stream_expected(inter.response.body))
    assert chunks[-1].usage == response.usage
    assert chunks[-1].finish_reason == response.finish_reason


def test_streamed_tool_call_spelled_out() -> None:
    with ReplayServer.from_cassette(OWN / "messages_stream_tool_use.yaml") as server:
        (inter,) = server.interactions
        with _model(server.base_url) as model:
            messages, params = _call_args(inter.request.json)
            chunks = list(model.stream(messages, **params))
    response = chatmodels.accumulate(chunks)
    assert response.text == "Okay, let's check the weather for San Francisco, CA:"
    (call,) = response.tool_calls
    assert call.id == "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
    assert call.arguments == {"location": "San Francisco, CA"}
    assert response.finish_reason is FinishReason.TOOL_CALLS
    # 472 uncached + 1,024 read from the cache
    assert response.usage == chatmodels.Usage(1496, 89, 1585, 1024, 0)
    starts = [d for c in chunks for d in c.tool_call_deltas if d.id]
    assert [(d.index, d.name) for d in starts] == [(1, "get_weather")]


def _whole(expected: dict[str, Any], usage: dict[str, Any]) -> bytes:
    content: list[dict[str, Any]] = [
        {"type": "thinking", "thinking": p.text, "signature": p.signature}
        for p in expected["reasoning"]
    ]
    if expected["text"]:
        content.append({"type": "text", "text": expected["text"]})
    content += [
        {"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in expected["calls"]
    ]
    return json.dumps(
        {
            "id": expected["id"],
            "type": "message",
            "role": "assistant",
            "model": expected["model"],
            "content": content,
            "stop_reason": expected["raw_finish"],
            "stop_sequence": None,
            "usage": usage,
        }
    ).encode()


@pytest.mark.parametrize(
    ("cassette", "usage"),
    [
        (
            "messages_create_streaming.yaml",
            {
                "input_tokens": 13,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 5,
            },
        ),
        (
            "messages_stream_tool_use.yaml",
            {
                "input_tokens": 472,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 1024,
                "output_tokens": 89,
            },
        ),
        (
            "messages_stream_thinking.yaml",
            {
                "input_tokens": 42,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 187,
            },
        ),
    ],
)
def test_streamed_reply_accumulates_to_the_invoked_one(
    cassette: str, usage: dict[str, Any]
) -> None:
    (streamed,) = load_cassette(_cassette(cassette))
    whole = RecordedInteraction(
        RecordedRequest("POST", streamed.request.uri, "/v1/messages", {}, b"", None),
        RecordedResponse(
            200,
            "OK",
            (("Content-Type", "application/json"),),
            _whole(_stream_expected(streamed.response.body), usage),
        ),
    )
    messages, params = _call_args(streamed.request.json)
    with ReplayServer([whole]) as server, _model(server.base_url) as model:
        invoked = model.invoke(messages, **params)
    with ReplayServer([streamed]) as server, _model(server.base_url) as model:
        accumulated = chatmodels.accumulate(model.stream(messages, **params))
    fields = {name: getattr(invoked, name) for name in ChatResponse.__dataclass_fields__}
    assert accumulated == ChatResponse(**{**fields, "latency": None})


def test_stream_framing_does_not_matter() -> None:
    """Fed one byte at a time, the adapter yields the same chunks as from one piece."""
    (inter,) = load_cassette(OWN / "messages_stream_tool_use.yaml")
    adapter = _model("http://127.0.0.1:9").adapter  # type: ignore[attr-defined]

    def run(pieces: list[bytes]) -> list[chatmodels.ChatChunk]:
        decoder = adapter.new_decoder()
        state: dict[str, Any] = {}
        out: list[chatmodels.ChatChunk] = []
        try:
            for piece in pieces:
                for event in decoder.feed(piece):
                    out.extend(adapter.parse_event(event, state))
        except StreamEnd:
            pass
        return out

    body = inter.response.body
    assert run([body[i : i + 1] for i in range(len(body))]) == run([body])


def test_error_event_in_a_stream_raises() -> None:
    with ReplayServer.from_cassette(OWN / "messages_stream_error_event.yaml") as server:
        with _model(server.base_url) as model, pytest.raises(chatmodels.ChatModelError) as caught:
            for _ in model.stream("Hello"):
                pass
        _check_sent(server, stream=True)
    error = caught.value
    assert error.code is ErrorCode.PROVIDER_UNAVAILABLE
    assert error.status_code == 529
    assert "overloaded_error: Overloaded" in str(error)
    assert error.provider == "anthropic"


# -- errors ----------------------------------------------------------------------------------


def test_404_recording_maps_to_bad_request() -> None:
    with ReplayServer.from_cassette(SHARED / "messages_create_api_error.yaml") as server:
        (inter,) = server.interactions
        messages, params = _call_args(inter.request.json)
        with _model(server.base_url) as model, pytest.raises(chatmodels.BadRequestError) as caught:
            model.invoke(messages, **params)
        _check_sent(server, stream=False)
    error = caught.value
    recorded = json.loads(inter.response.body)
    assert error.code is ErrorCode.BAD_REQUEST
    assert error.status_code == 404
    assert error.request_id == recorded["request_id"] == "req_011CYfQMhgSid28ainNjq126"
    assert recorded["error"]["type"] in str(error)
    assert recorded["error"]["message"] in str(error)
    assert_secret_hidden(KEY, error)


@pytest.mark.parametrize(
    ("index", "code"),
    [
        (0, ErrorCode.CONTEXT_LENGTH_EXCEEDED),
        (1, ErrorCode.AUTHENTICATION),
        (2, ErrorCode.RATE_LIMITED),
        (3, ErrorCode.PROVIDER_UNAVAILABLE),
    ],
)
def test_http_errors_map_to_codes(index: int, code: ErrorCode) -> None:
    inter = load_cassette(OWN / "messages_http_errors.yaml")[index]
    recorded = json.loads(inter.response.body)
    with ReplayServer([inter]) as server:
        with _model(server.base_url) as model, pytest.raises(chatmodels.ChatModelError) as caught:
            model.invoke("Hello")  # the default model and max_tokens make the recorded body
        _check_sent(server, stream=False)
    error = caught.value
    assert error.code is code
    assert error.status_code == inter.response.status
    assert error.request_id == recorded["request_id"]
    assert recorded["error"]["message"] in str(error)
    assert_secret_hidden(KEY, error)


def test_unsupported_parameters_fail_before_any_request() -> None:
    with ReplayServer([]) as server, _model(server.base_url) as model:
        with pytest.raises(chatmodels.CapabilityNotSupportedError, match="seed"):
            model.invoke("Hi", seed=1)
        with pytest.raises(chatmodels.CapabilityNotSupportedError, match="json_object"):
            model.invoke("Hi", response_format={"type": "json_object"})
    assert server.requests == []


# -- async -----------------------------------------------------------------------------------


def test_async_invoke_and_stream_replay() -> None:
    plain = load_cassette(SHARED / "messages_create_with_all_params.yaml")
    streamed = load_cassette(OWN / "messages_stream_tool_use.yaml")
    s1, one, s2, two = replay_async(plain, streamed, _model, _call_args)
    _check_sent(s1, stream=False)
    _check_sent(s2, stream=True)
    _check(one, _expected(json.loads(plain[0].response.body)))
    _check(two, _stream_expected(streamed[0].response.body))


# -- health and metadata ---------------------------------------------------------------------


def test_health_probe_lists_models() -> None:
    with ReplayServer.from_cassette(OWN / "models_list.yaml") as server:
        with _model(server.base_url) as model:
            healthy = model.health_check()
            unhealthy = model.health_check()
        server.check_requests()
        sent = server.requests
    assert [(r.method, r.path) for r in sent] == [("GET", "/v1/models")] * 2
    assert sent[0].headers["x-api-key"] == KEY
    assert sent[0].headers["anthropic-version"] == "2023-06-01"
    assert healthy.status == "healthy"
    assert unhealthy.status == "unhealthy"
    assert unhealthy.error_code == "authentication"
    assert KEY not in unhealthy.detail


def test_metadata_is_truthful(monkeypatch: pytest.MonkeyPatch) -> None:
    meta = chatmodels.get_provider_metadata("anthropic")
    assert meta.gen_ai_provider_name == "anthropic"
    assert meta.api_key_env == "ANTHROPIC_API_KEY"
    assert meta.default_base_url == "https://api.anthropic.com"
    assert meta.supports_health_check is True
    caps = {c.value for c in meta.capabilities}
    assert {"chat", "streaming", "tool_calling", "structured_output", "system_prompt"} <= caps
    assert "json_mode" not in caps
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env-abcdef")
    model = chatmodels.new_registry_provider("anthropic")
    wire = model.adapter.build_request(model._prepare("hi", {}, False, "invoke"))  # type: ignore[attr-defined]
    assert wire.headers["x-api-key"] == "sk-ant-from-env-abcdef"
    for text in (repr(model), repr(model.options), repr(wire)):
        assert "sk-ant-from-env" not in text
