"""The mistral provider against recorded chat completions (../shared/cassettes/mistral) and
cassettes written from the API reference (tests/cassettes/mistral).

Each test serves a recording from a loopback server, makes the equivalent call through the
public API and checks the request (method, path, equivalent JSON body) and every parsed field
against values read from the recording itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import chatmodels
import pytest
from chatmodels import ChatResponse, FinishReason, ReasoningPart, TextPart
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
    json_interaction,
    new_model,
    replay_each,
)

SHARED, OWN = cassette_dirs("mistral")
KEY = "mistral-test-secret-key-0123456789"

# Mistral's finish reasons and what they mean, per the API reference.
_NORMALIZED = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "model_length": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "error": FinishReason.ERROR,
}


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)


def _model(server: ReplayServer, **options: Any) -> chatmodels.ChatModel:
    return new_model("mistral", server.base_url, api_key=KEY, **options)


def _call_args(body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The invoke arguments that should produce the recorded `body`."""
    params = {k: v for k, v in body.items() if k not in ("messages", "stream")}
    if "random_seed" in params:
        params["seed"] = params.pop("random_seed")
    if "safe_prompt" in params:
        params["provider_specific"] = {"safe_prompt": params.pop("safe_prompt")}
    return body["messages"], params


def _text(content: Any) -> str:
    if isinstance(content, list):  # reasoning models: thinking and text chunks
        return "".join(p["text"] for p in content if p["type"] == "text")
    return content or ""


def _usage_of(raw: dict[str, Any]) -> chatmodels.Usage:
    return chatmodels.Usage(
        raw["prompt_tokens"],
        raw["completion_tokens"],
        raw["total_tokens"],
        cache_read_input_tokens=(raw.get("prompt_tokens_details") or {}).get("cached_tokens"),
    )


def _expected(data: dict[str, Any]) -> dict[str, Any]:
    """What a recorded ``chat.completion`` says, read independently of the adapter."""
    choice = data["choices"][0]
    return {
        "id": data["id"],
        "model": data["model"],
        "text": _text(choice["message"]["content"]),
        "calls": [
            (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in choice["message"].get("tool_calls") or ()
        ],
        "raw_finish": choice["finish_reason"],
        "usage": _usage_of(data["usage"]),
    }


def _stream_expected(body: bytes) -> dict[str, Any]:
    """What a recorded SSE body says. Mistral sends each tool call whole, so calls are
    listed in the order they arrive, whatever index they claim."""
    text: list[str] = []
    calls: list[tuple[str, str, dict[str, Any]]] = []
    ident = model = finish = usage = None
    for line in body.decode().splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        obj = json.loads(line[6:])
        ident, model = ident or obj["id"], model or obj["model"]
        if obj.get("usage"):
            usage = _usage_of(obj["usage"])
        choice = obj["choices"][0]
        text.append(_text(choice["delta"].get("content")))
        for call in choice["delta"].get("tool_calls") or ():
            fn = call["function"]
            calls.append((call["id"], fn["name"], json.loads(fn["arguments"])))
        finish = choice["finish_reason"] or finish
    return {
        "id": ident,
        "model": model,
        "text": "".join(text),
        "calls": calls,
        "raw_finish": finish,
        "usage": usage,
    }


def _check(response: ChatResponse, expected: dict[str, Any]) -> None:
    assert response.provider == "mistral"
    assert response.id == expected["id"]
    assert response.model == expected["model"]
    assert response.text == expected["text"]
    assert [(c.id, c.name, dict(c.arguments)) for c in response.tool_calls] == expected["calls"]
    assert response.raw_finish_reason == expected["raw_finish"]
    assert response.finish_reason is _NORMALIZED[expected["raw_finish"]]
    assert response.usage == expected["usage"]


NON_STREAMED = [
    SHARED / "chat_with_events_with_content.yaml",
    SHARED / "chat_with_cache_tokens.yaml",
    OWN / "chat_tool_calls.yaml",
    OWN / "chat_json_schema.yaml",
    OWN / "chat_reasoning_content.yaml",
]


@pytest.mark.parametrize("cassette", NON_STREAMED, ids=lambda p: p.name)
def test_invoke_replays_the_recording(cassette: Path) -> None:
    # The tool-call recording is a conversation: the second turn sends the results back.
    interactions = load_cassette(cassette)

    def invoke(model: chatmodels.ChatModel, inter: RecordedInteraction) -> ChatResponse:
        messages, params = _call_args(inter.request.json)
        return model.invoke(messages, **params)

    server, responses = replay_each(interactions, _model, invoke)
    for inter, received, response in zip(interactions, server.requests, responses, strict=True):
        assert received.method == inter.request.method == "POST"
        assert received.path == inter.request.path == "/v1/chat/completions"
        assert received.headers["authorization"] == f"Bearer {KEY}"
        assert received.headers["accept"] == "application/json"
        assert_bodies_equivalent(inter.request.json, received.json)
        _check(response, _expected(json.loads(inter.response.body)))
        assert response.latency is not None
        assert response.latency > 0


def test_recorded_values_spelled_out() -> None:
    with (
        ReplayServer.from_cassette(SHARED / "chat_with_cache_tokens.yaml") as server,
        _model(server) as model,
    ):
        response = model.invoke("Tell me a joke about OpenTelemetry", model="mistral-tiny")
    assert response.id == "abc123cached456"
    assert response.text == (
        "Why did OpenTelemetry go to therapy? Because it had too many unresolved traces!"
    )
    assert response.finish_reason is FinishReason.STOP
    assert response.usage == chatmodels.Usage(20, 18, 38, cache_read_input_tokens=10)


def test_structured_output_is_parsed() -> None:
    (inter,) = load_cassette(OWN / "chat_json_schema.yaml")
    messages, params = _call_args(inter.request.json)
    with ReplayServer([inter]) as server, _model(server) as model:
        response = model.invoke(messages, **params)
    assert response.parsed == {"name": "Dune", "year": 1965}


STREAMED = [
    SHARED / "streaming_chat_with_events_with_content.yaml",
    OWN / "streaming_chat_tool_calls.yaml",
]


@pytest.mark.parametrize("cassette", STREAMED, ids=lambda p: p.name)
def test_stream_replays_the_recording(cassette: Path) -> None:
    (inter,) = load_cassette(cassette)
    messages, params = _call_args(inter.request.json)
    with ReplayServer([inter]) as server, _model(server) as model:
        chunks = list(model.stream(messages, **params))
        server.check_requests()
    (received,) = server.requests
    assert received.path == "/v1/chat/completions"
    assert received.headers["accept"] == "text/event-stream"
    assert received.json["stream"] is True
    assert "stream_options" not in received.json  # not a Mistral field
    assert_bodies_equivalent(inter.request.json, received.json)
    expected = _stream_expected(inter.response.body)
    _check(chatmodels.accumulate(chunks), expected)
    assert chunks[-1].usage == expected["usage"]


def test_parallel_streamed_tool_calls_with_one_index_stay_apart() -> None:
    (inter,) = load_cassette(OWN / "streaming_chat_tool_calls.yaml")
    messages, params = _call_args(inter.request.json)
    with ReplayServer([inter]) as server, _model(server) as model:
        response = chatmodels.accumulate(model.stream(messages, **params))
    assert [(c.id, c.arguments) for c in response.tool_calls] == [
        ("D681PevKs", {"city": "Paris"}),
        ("x3Rk9PqLm", {"city": "Lyon"}),
    ]
    assert response.finish_reason is FinishReason.TOOL_CALLS


def test_streamed_reply_accumulates_to_the_invoked_one() -> None:
    (inter,) = load_cassette(SHARED / "streaming_chat_with_events_with_content.yaml")
    expected = _stream_expected(inter.response.body)
    usage = expected["usage"]
    whole = {
        "id": expected["id"],
        "object": "chat.completion",
        "model": expected["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": expected["text"], "tool_calls": None},
                "finish_reason": expected["raw_finish"],
            }
        ],
        "usage": {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
        },
    }
    plain = RecordedInteraction(
        inter.request,
        RecordedResponse(
            200, "OK", (("Content-Type", "application/json"),), json.dumps(whole).encode()
        ),
    )
    messages, params = _call_args(inter.request.json)
    with ReplayServer([plain]) as server, _model(server) as model:
        invoked = model.invoke(messages, **params)
    with ReplayServer([inter]) as server, _model(server) as model:
        streamed = chatmodels.accumulate(model.stream(messages, **params))
    fields = {name: getattr(invoked, name) for name in ChatResponse.__dataclass_fields__}
    assert streamed == ChatResponse(**{**fields, "latency": None})


def test_async_invoke_and_astream() -> None:
    (plain,) = load_cassette(SHARED / "chat_with_events_with_content.yaml")
    (streamed,) = load_cassette(OWN / "streaming_chat_tool_calls.yaml")

    async def run(one: ReplayServer, two: ReplayServer) -> tuple[ChatResponse, ChatResponse]:
        async with _model(one) as m1, _model(two) as m2:
            messages, params = _call_args(plain.request.json)
            invoked = await m1.ainvoke(messages, **params)
            messages, params = _call_args(streamed.request.json)
            chunks = [c async for c in m2.astream(messages, **params)]
            return invoked, chatmodels.accumulate(chunks)

    with ReplayServer([plain]) as one, ReplayServer([streamed]) as two:
        invoked, accumulated = asyncio.run(run(one, two))
        one.check_requests()
        two.check_requests()
    _check(invoked, _expected(json.loads(plain.response.body)))
    _check(accumulated, _stream_expected(streamed.response.body))
    assert_bodies_equivalent(plain.request.json, one.requests[0].json)
    assert_bodies_equivalent(streamed.request.json, two.requests[0].json)


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cassette", "error_class", "request_id"),
    [
        (
            OWN / "chat_401.yaml",
            chatmodels.AuthenticationError,
            "933f233947ff6d346065bb297e4a4d56",  # only in the body
        ),
        (
            OWN / "chat_429.yaml",
            chatmodels.RateLimitError,
            "01994f2a-0000-7000-8000-000000000429",
        ),
        (
            OWN / "chat_context_length.yaml",
            chatmodels.ContextLengthExceededError,
            "01994f2a-0000-7000-8000-000000000400",
        ),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else None,
)
def test_error_recordings_map_to_codes(
    cassette: Path, error_class: type[chatmodels.ChatModelError], request_id: str
) -> None:
    (inter,) = load_cassette(cassette)
    messages, params = _call_args(inter.request.json)
    with (
        ReplayServer([inter]) as server,
        _model(server) as model,
        pytest.raises(error_class) as caught,
    ):
        model.invoke(messages, **params)
    error = caught.value
    assert error.status_code == inter.response.status
    assert error.request_id == request_id
    assert json.loads(inter.response.body)["message"] in str(error)
    assert error.provider == "mistral"
    assert_secret_hidden(KEY, error)
    assert_bodies_equivalent(inter.request.json, server.requests[0].json)


# -- options, health, metadata -----------------------------------------------------------------


def test_safe_prompt_option_applies_to_every_call() -> None:
    (inter,) = load_cassette(SHARED / "chat_with_events_with_content.yaml")
    with ReplayServer([inter]) as server, _model(server, safe_prompt=True) as model:
        model.invoke("Tell me a joke about OpenTelemetry", model="mistral-tiny")
    assert_bodies_equivalent({**inter.request.json, "safe_prompt": True}, server.requests[0].json)


def test_key_from_environment_and_never_in_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", KEY)
    (inter,) = load_cassette(SHARED / "chat_with_events_with_content.yaml")
    with (
        ReplayServer([inter]) as server,
        chatmodels.new_registry_provider("mistral", {"base_url": server.base_url}) as model,
    ):
        model.invoke("Tell me a joke about OpenTelemetry", model="mistral-tiny")
        assert_secret_hidden(KEY, model, model.options)
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_missing_key_is_invalid_config() -> None:
    with pytest.raises(chatmodels.InvalidConfigError, match="api_key"):
        chatmodels.new_registry_provider("mistral")


def test_health_probe_lists_models() -> None:
    models = RecordedInteraction(
        RecordedRequest("GET", "https://api.mistral.ai/v1/models", "/v1/models", {}, b"", None),
        RecordedResponse(
            200, "OK", (("Content-Type", "application/json"),), b'{"object":"list","data":[]}'
        ),
    )
    with ReplayServer([models]) as server, _model(server) as model:
        status = model.health_check(timeout=5)
        server.check_requests()
    assert status.status == "healthy"
    (received,) = server.requests
    assert (received.method, received.path) == ("GET", "/v1/models")
    assert received.headers["authorization"] == f"Bearer {KEY}"


def test_metadata_is_truthful() -> None:
    meta = chatmodels.get_provider_metadata("mistral")
    assert meta.gen_ai_provider_name == "mistral_ai"
    assert meta.api_key_env == "MISTRAL_API_KEY"
    assert meta.default_base_url == "https://api.mistral.ai"
    assert meta.supports_health_check
    for cap in ("tool_calling", "structured_output", "json_mode", "streaming", "system_prompt"):
        assert meta.supports(cap)


# -- reasoning (Magistral) ------------------------------------------------------------------
# Written from the Mistral API reference and its reasoning guide
# (https://docs.mistral.ai/capabilities/reasoning/), not recorded: a Magistral reply's content
# is a list of chunks, {"type": "thinking", "thinking": [{"type": "text", ...}]} before the
# {"type": "text"} answer; streamed, each delta's content is such a list.

MAGISTRAL_THOUGHT = "17 * 3: 10 * 3 = 30 and 7 * 3 = 21, so 51."
MAGISTRAL_USAGE = {"prompt_tokens": 10, "completion_tokens": 30, "total_tokens": 40}


def _magistral_event(content: Any, finish: str | None = None, **extra: Any) -> bytes:
    obj = {
        "id": "c0ffee00c0ffee00c0ffee00c0ffee01",
        "object": "chat.completion.chunk",
        "created": 1757760300,
        "model": "magistral-medium-2509",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _thinking(text: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": [{"type": "text", "text": text}]}


MAGISTRAL_STREAM = b"".join(
    [
        _magistral_event([_thinking("17 * 3: 10 * 3 = 30")]),
        _magistral_event([_thinking(" and 7 * 3 = 21, so 51.")]),
        _magistral_event([{"type": "text", "text": "17 \u00d7 3"}]),
        _magistral_event(" = 51."),
        _magistral_event("", "stop", usage=MAGISTRAL_USAGE),
        b"data: [DONE]\n\n",
    ]
)
MAGISTRAL_WHOLE = {
    "id": "c0ffee00c0ffee00c0ffee00c0ffee01",
    "object": "chat.completion",
    "created": 1757760300,
    "model": "magistral-medium-2509",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": [
                    _thinking("17 * 3: 10 * 3 = 30"),
                    _thinking(" and 7 * 3 = 21, so 51."),
                    {"type": "text", "text": "17 \u00d7 3 = 51."},
                ],
                "tool_calls": None,
            },
            "finish_reason": "stop",
        }
    ],
    "usage": MAGISTRAL_USAGE,
}


def test_reasoning_recording_has_the_thinking_apart() -> None:
    (inter,) = load_cassette(OWN / "chat_reasoning_content.yaml")
    messages, params = _call_args(inter.request.json)
    with ReplayServer([inter]) as server, _model(server) as model:
        response = model.invoke(messages, **params)
    assert response.message.content == (
        ReasoningPart("17 * 3 = 51."),
        TextPart("17 \u00d7 3 = 51."),
    )


def test_thinking_chunks_whole_and_streamed() -> None:
    whole = json_interaction("/v1/chat/completions", MAGISTRAL_WHOLE)
    streamed = json_interaction(
        "/v1/chat/completions",
        None,
        raw=MAGISTRAL_STREAM,
        headers=(("Content-Type", "text/event-stream"),),
    )
    with ReplayServer([whole, streamed]) as server, _model(server) as model:
        invoked = model.invoke("What is 17 * 3?", model="magistral-medium-2509")
        chunks = list(model.stream("What is 17 * 3?", model="magistral-medium-2509"))
        server.check_requests()
    assert invoked.message.content == (
        ReasoningPart(MAGISTRAL_THOUGHT),
        TextPart("17 \u00d7 3 = 51."),
    )
    assert (invoked.text, invoked.reasoning) == ("17 \u00d7 3 = 51.", MAGISTRAL_THOUGHT)
    assert [(c.reasoning, c.text) for c in chunks if c.reasoning or c.text] == [
        ("17 * 3: 10 * 3 = 30", ""),
        (" and 7 * 3 = 21, so 51.", ""),
        ("", "17 \u00d7 3"),
        ("", " = 51."),
    ]
    accumulated = chatmodels.accumulate(chunks)
    assert accumulated == dataclasses.replace(invoked, latency=None)
