"""The `cohere` provider against recorded exchanges (../shared/cassettes/cohere) and
exchanges written from the API reference (tests/cassettes/cohere, marked as such).

Each test serves a cassette from `chatmodels.testing.ReplayServer`, makes the same call
through the public API, and checks the request we sent (method, path, headers, equivalent
body) and every parsed field against values read from the cassette independently of the
adapter.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import chatmodels
import pytest
from chatmodels import ChatResponse, ErrorCode, FinishReason
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

SHARED, OWN = cassette_dirs("cohere")
KEY = "co-test-secret-key-123456"

# Cohere's finish reasons (https://docs.cohere.com/reference/chat), normalised.
FINISH = {
    "COMPLETE": FinishReason.STOP,
    "STOP_SEQUENCE": FinishReason.STOP,
    "MAX_TOKENS": FinishReason.LENGTH,
    "TOOL_CALL": FinishReason.TOOL_CALLS,
    "ERROR": FinishReason.ERROR,
    "TIMEOUT": FinishReason.ERROR,
}


def _model(url: str, **options: Any) -> chatmodels.ChatModel:
    return new_model("cohere", url, api_key=KEY, **options)


def _cassette(name: str) -> Path:
    return find_cassette("cohere", name)


def _call_args(body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The invoke arguments that should produce `body` (its messages are OpenAI-shaped)."""
    renamed = {"p": "top_p", "k": "top_k", "stop_sequences": "stop"}
    params: dict[str, Any] = {}
    for key, value in body.items():
        if key in ("messages", "stream"):
            continue
        if key == "tool_choice":
            params[key] = value.lower()
        elif key == "response_format":
            params[key] = {"type": "json_schema", "json_schema": {"schema": value["json_schema"]}}
        else:
            params[renamed.get(key, key)] = value
    return body["messages"], params


def _recorded_body(body: dict[str, Any]) -> dict[str, Any]:
    """The recorded request body, where an assistant turn's ``"content": null`` (the SDK
    passes it through) is the same as no content, which is what we send."""
    out = dict(body)
    out["messages"] = [
        {k: v for k, v in m.items() if not (k == "content" and v is None)} for m in body["messages"]
    ]
    return out


def _check_sent(server: ReplayServer, *, stream: bool) -> None:
    server.check_requests()
    assert len(server.requests) == len(server.interactions)
    for sent, inter in zip(server.requests, server.interactions, strict=True):
        assert sent.method == inter.request.method == "POST"
        assert sent.path == inter.request.path == "/v2/chat"
        assert inter.request.uri == "https://api.cohere.com/v2/chat"
        assert sent.headers["authorization"] == f"Bearer {KEY}"
        assert sent.headers["content-type"] == "application/json"
        assert sent.headers["accept"] == ("text/event-stream" if stream else "application/json")
        assert sent.json["stream"] is stream
        assert_bodies_equivalent(_recorded_body(inter.request.json), sent.json)


# -- expectations read from the recorded responses -----------------------------------------


def _counts(usage: dict[str, Any]) -> tuple[int, int, int]:
    tokens = usage["tokens"]
    return (
        tokens["input_tokens"],
        tokens["output_tokens"],
        tokens["input_tokens"] + tokens["output_tokens"],
    )


def _expected(data: dict[str, Any]) -> dict[str, Any]:
    message = data["message"]
    return {
        "id": data["id"],
        "text": "".join(c["text"] for c in message.get("content") or () if c["type"] == "text"),
        "calls": [
            (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in message.get("tool_calls") or ()
        ],
        "raw_finish": data["finish_reason"],
        "usage": _counts(data["usage"]),
    }


def _stream_expected(body: bytes) -> dict[str, Any]:
    """What a recorded SSE body says, read without the adapter."""
    ident, finish, usage = None, None, None
    text: list[str] = []
    calls: dict[int, list[str]] = {}
    for line in body.decode().splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        obj = json.loads(line[6:])
        kind = obj["type"]
        if kind == "message-start":
            ident = obj["id"]
        elif kind == "content-delta":
            text.append(obj["delta"]["message"]["content"]["text"])
        elif kind == "tool-call-start":
            call = obj["delta"]["message"]["tool_calls"]
            calls[obj["index"]] = [call["id"], call["function"]["name"], ""]
        elif kind == "tool-call-delta":
            calls[obj["index"]][2] += obj["delta"]["message"]["tool_calls"]["function"]["arguments"]
        elif kind == "message-end":
            finish = obj["delta"]["finish_reason"]
            usage = _counts(obj["delta"]["usage"])
    return {
        "id": ident,
        "text": "".join(text),
        "calls": [(i, n, json.loads(a)) for i, n, a in (calls[k] for k in sorted(calls))],
        "raw_finish": finish,
        "usage": usage,
    }


def _check(response: ChatResponse, expected: dict[str, Any]) -> None:
    assert response.provider == "cohere"
    assert response.id == expected["id"]
    assert response.model is None  # the API does not name the model in its reply
    assert response.text == expected["text"]
    assert response.message.role == "assistant"
    assert [(c.id, c.name, dict(c.arguments)) for c in response.tool_calls] == expected["calls"]
    assert response.raw_finish_reason == expected["raw_finish"]
    assert response.finish_reason is FINISH[expected["raw_finish"]]
    usage = response.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == expected["usage"]
    assert usage.cache_read_input_tokens is None
    assert usage.cache_creation_input_tokens is None
    assert usage.reasoning_tokens is None


# -- whole replies ---------------------------------------------------------------------------

INVOKED = [
    "v2_chat_legacy.yaml",
    "v2_chat_legacy_with_tool_calls_and_history.yaml",
    "v2_chat_json_schema_params.yaml",
]


@pytest.mark.parametrize("cassette", INVOKED)
def test_invoke_replays_the_recording(cassette: str) -> None:
    # The tool-call recording is a conversation: it sends the tool results back.
    responses = []
    with ReplayServer.from_cassette(_cassette(cassette)) as server:
        with _model(server.base_url) as model:
            for inter in server.interactions:
                messages, params = _call_args(inter.request.json)
                responses.append(model.invoke(messages, **params))
        _check_sent(server, stream=False)
    for response, inter in zip(responses, server.interactions, strict=True):
        _check(response, _expected(json.loads(inter.response.body)))
        assert response.latency is not None
        assert response.latency > 0


def test_recorded_values_spelled_out() -> None:
    with ReplayServer.from_cassette(SHARED / "v2_chat_legacy.yaml") as server:
        with _model(server.base_url) as model:
            response = model.invoke("Tell me a joke, pirate style", model="command")
        _check_sent(server, stream=False)
    assert response.id == "83e3e297-264b-478e-9b22-5058386292ed"
    assert response.text.startswith("Arrrr, matey! Shiver me timbers")
    assert response.finish_reason is FinishReason.STOP
    # usage.tokens (what the model processed), not usage.billed_units (7 in, 88 out)
    assert response.usage == chatmodels.Usage(69, 89, 158)


def test_tool_calls_come_back_and_results_go_out() -> None:
    path = SHARED / "v2_chat_legacy_with_tool_calls_and_history.yaml"
    with ReplayServer.from_cassette(path) as server, _model(server.base_url) as model:
        first, second = server.interactions
        messages, params = _call_args(first.request.json)
        response = model.invoke(messages, **params)
        assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
            ("get_time_dp3men9jrvhf", "get_time", {"location": "Tokyo"}),
            ("get_weather_d7arjgsc96yf", "get_weather", {"location": "Tokyo"}),
        ]
        assert response.finish_reason is FinishReason.TOOL_CALLS
        # Feed our own response message and the results back, as a user would.
        history: list[Any] = [
            *messages,
            response.message,
            chatmodels.Message.tool("get_time_dp3men9jrvhf", "4:20 PM"),
            chatmodels.Message.tool("get_weather_d7arjgsc96yf", "Sunny 20 degrees Celsius"),
        ]
        final = model.invoke(history, **params)
        _check_sent(server, stream=False)
    assert final.text == (
        "The current time in Tokyo is 4:20 PM and the weather is sunny with a "
        "temperature of 20\u00b0C."
    )
    assert final.id == json.loads(second.response.body)["id"]


def test_structured_output_and_parameter_names() -> None:
    with ReplayServer.from_cassette(OWN / "v2_chat_json_schema_params.yaml") as server:
        (inter,) = server.interactions
        messages, params = _call_args(inter.request.json)
        with _model(server.base_url) as model:
            response = model.invoke(messages, **params)
        _check_sent(server, stream=False)
    sent = server.requests[0].json
    assert (sent["p"], sent["k"], sent["stop_sequences"]) == (0.9, 40, ["###"])
    assert sent["messages"][0] == {"role": "system", "content": "You extract people as JSON."}
    assert response.parsed == {"name": "Jane Doe", "age": 34}
    assert response.finish_reason is FinishReason.LENGTH


def test_tool_choice_and_images_on_the_wire() -> None:
    model = _model("http://127.0.0.1:9")

    def weather(location: str) -> str:
        """Gets the weather."""
        return location

    def body(**params: Any) -> dict[str, Any]:
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Where is this?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                ],
            }
        ]
        request = model._prepare(messages, {"tools": [weather], **params}, False, "invoke")
        return model.adapter.build_body(request)  # type: ignore[attr-defined, no-any-return]

    assert "tool_choice" not in body(tool_choice="auto")
    assert body(tool_choice="required")["tool_choice"] == "REQUIRED"
    assert body(tool_choice="none")["tool_choice"] == "NONE"
    assert body()["messages"][0]["content"] == [
        {"type": "text", "text": "Where is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]
    assert body()["model"] == "command-a-03-2025"
    with pytest.raises(chatmodels.CapabilityNotSupportedError, match="tool_choice"):
        body(tool_choice="weather")
    with pytest.raises(chatmodels.CapabilityNotSupportedError, match="parallel_tool_calls"):
        body(parallel_tool_calls=False)


# -- streams ---------------------------------------------------------------------------------

STREAMED = ["v2_chat_legacy_with_streaming.yaml", "v2_chat_stream_tool_calls.yaml"]


@pytest.mark.parametrize("cassette", STREAMED)
def test_stream_replays_the_recording(cassette: str) -> None:
    with ReplayServer.from_cassette(_cassette(cassette)) as server:
        (inter,) = server.interactions
        messages, params = _call_args(inter.request.json)
        with _model(server.base_url) as model:
            chunks = list(model.stream(messages, **params))
        _check_sent(server, stream=True)
    response = chatmodels.accumulate(chunks)
    _check(response, _stream_expected(inter.response.body))
    assert chunks[-1].usage == response.usage
    assert chunks[-1].finish_reason == response.finish_reason


def test_streamed_tool_calls_spelled_out() -> None:
    with ReplayServer.from_cassette(OWN / "v2_chat_stream_tool_calls.yaml") as server:
        (inter,) = server.interactions
        messages, params = _call_args(inter.request.json)
        with _model(server.base_url) as model:
            response = chatmodels.accumulate(model.stream(messages, **params))
    assert [(c.id, c.arguments) for c in response.tool_calls] == [
        ("get_weather_p0dage9q1nv4", {"location": "Madrid"}),
        ("get_weather_6fw1t1ar4hvg", {"location": "Brasilia"}),
    ]
    assert response.text == ""  # the tool plan is not reply text
    assert response.finish_reason is FinishReason.TOOL_CALLS
    assert response.usage == chatmodels.Usage(913, 83, 996)


def test_streamed_reply_accumulates_to_the_invoked_one() -> None:
    (streamed,) = load_cassette(SHARED / "v2_chat_legacy_with_streaming.yaml")
    expected = _stream_expected(streamed.response.body)
    whole = {
        "id": expected["id"],
        "message": {"role": "assistant", "content": [{"type": "text", "text": expected["text"]}]},
        "finish_reason": expected["raw_finish"],
        "usage": {
            "billed_units": {"input_tokens": 7, "output_tokens": 109},
            "tokens": {"input_tokens": 69, "output_tokens": 110},
        },
    }
    recorded = RecordedInteraction(
        RecordedRequest("POST", streamed.request.uri, "/v2/chat", {}, b"", None),
        RecordedResponse(
            200, "OK", (("Content-Type", "application/json"),), json.dumps(whole).encode()
        ),
    )
    with ReplayServer([recorded]) as server, _model(server.base_url) as model:
        invoked = model.invoke("Tell me a joke, pirate style", model="command")
    with ReplayServer([streamed]) as server, _model(server.base_url) as model:
        accumulated = chatmodels.accumulate(
            model.stream("Tell me a joke, pirate style", model="command")
        )
    fields = {name: getattr(invoked, name) for name in ChatResponse.__dataclass_fields__}
    assert accumulated == ChatResponse(**{**fields, "latency": None})


def test_stream_framing_does_not_matter() -> None:
    """Fed one byte at a time, the adapter yields the same chunks as from one piece."""
    (inter,) = load_cassette(OWN / "v2_chat_stream_tool_calls.yaml")
    adapter = _model("http://127.0.0.1:9").adapter  # type: ignore[attr-defined]

    def run(pieces: list[bytes]) -> tuple[list[chatmodels.ChatChunk], bool]:
        decoder = adapter.new_decoder()
        state: dict[str, Any] = {}
        out: list[chatmodels.ChatChunk] = []
        try:
            for piece in pieces:
                for event in decoder.feed(piece):
                    out.extend(adapter.parse_event(event, state))
        except StreamEnd:
            return out, True
        return out, False

    body = inter.response.body
    whole, ended = run([body])
    assert ended  # "data: [DONE]" ends the stream
    assert run([body[i : i + 1] for i in range(len(body))]) == (whole, True)


# -- errors ----------------------------------------------------------------------------------


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
    inter = load_cassette(OWN / "v2_chat_http_errors.yaml")[index]
    with ReplayServer([inter]) as server:
        with _model(server.base_url) as model, pytest.raises(chatmodels.ChatModelError) as caught:
            model.invoke("Hello")  # the default model makes the recorded body
        _check_sent(server, stream=False)
    error = caught.value
    headers = dict(inter.response.headers)
    assert error.code is code
    assert error.status_code == inter.response.status
    assert error.request_id == headers["x-debug-trace-id"]
    assert json.loads(inter.response.body)["message"] in str(error)
    assert error.provider == "cohere"
    assert_secret_hidden(KEY, error)


def test_unsupported_parameters_fail_before_any_request() -> None:
    with ReplayServer([]) as server, _model(server.base_url) as model:
        with pytest.raises(chatmodels.CapabilityNotSupportedError, match="'n'"):
            model.invoke("Hi", n=2)
        with pytest.raises(chatmodels.CapabilityNotSupportedError, match="tool_choice"):
            model.invoke("Hi", tools=[{"name": "f"}], tool_choice="f")
    assert server.requests == []


# -- async -----------------------------------------------------------------------------------


def test_async_invoke_and_stream_replay() -> None:
    plain = load_cassette(SHARED / "v2_chat_legacy.yaml")
    streamed = load_cassette(OWN / "v2_chat_stream_tool_calls.yaml")
    s1, one, s2, two = replay_async(plain, streamed, _model, _call_args)
    _check_sent(s1, stream=False)
    _check_sent(s2, stream=True)
    _check(one, _expected(json.loads(plain[0].response.body)))
    _check(two, _stream_expected(streamed[0].response.body))


# -- health and metadata ---------------------------------------------------------------------


def test_health_probe_lists_models() -> None:
    async def probe(url: str) -> chatmodels.HealthStatus:
        async with _model(url) as model:
            return await model.ahealth_check()

    with ReplayServer.from_cassette(OWN / "models_list.yaml") as server:
        status = asyncio.run(probe(server.base_url))
        server.check_requests()
    (sent,) = server.requests
    assert (sent.method, sent.path) == ("GET", "/v1/models")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert status.status == "healthy"


def test_metadata_is_truthful(monkeypatch: pytest.MonkeyPatch) -> None:
    meta = chatmodels.get_provider_metadata("cohere")
    assert meta.gen_ai_provider_name == "cohere"
    assert meta.api_key_env == "CO_API_KEY"  # what the official SDK reads
    assert meta.default_base_url == "https://api.cohere.com"
    assert meta.supports_health_check is True
    caps = {c.value for c in meta.capabilities}
    assert {"chat", "streaming", "tool_calling", "structured_output", "json_mode"} <= caps
    monkeypatch.setenv("CO_API_KEY", "co-from-env-abcdef")
    model = chatmodels.new_registry_provider("cohere")
    wire = model.adapter.build_request(model._prepare("hi", {}, False, "invoke"))  # type: ignore[attr-defined]
    assert wire.headers["Authorization"] == "Bearer co-from-env-abcdef"
    assert (wire.method, wire.path) == ("POST", "/v2/chat")
    for text in (repr(model), repr(model.options), repr(wire)):
        assert "co-from-env" not in text
