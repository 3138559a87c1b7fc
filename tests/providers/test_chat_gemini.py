"""Gemini and Vertex AI against recorded and reference-written exchanges.

../shared/cassettes/gemini holds real Vertex recordings (generateContent and
streamGenerateContent?alt=sse); tests/cassettes/gemini holds exchanges written from the
Gemini API reference for what no recording covers (function calling, streamed function calls,
structured output, errors). Expected values are read from the recorded bodies, never from the
adapter.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import chatmodels
import pytest
from chatmodels import ChatResponse, FinishReason, Message, ReasoningPart, TextPart, Usage
from chatmodels.testing import (
    RecordedInteraction,
    RecordedRequest,
    RecordedResponse,
    ReplayServer,
    assert_bodies_equivalent,
    load_cassette,
)
from pydantic import BaseModel
from replay_helpers import assert_secret_hidden, cassette_dirs, new_model

SHARED, OWN = cassette_dirs("gemini")
KEY = "AIzaSy-test-secret-key-0123456789"
TOKEN = "ya29.test-access-token-0123456789"
VERTEX_PATH = "/v1beta1/projects/test-project/locations/test-location/publishers/google/models"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "The city name."}},
        "required": ["city"],
    },
}


def _vertex(url: str, **options: Any) -> chatmodels.ChatModel:
    return new_model(
        "vertex_ai",
        url,
        api_key=TOKEN,
        project="test-project",
        location="test-location",
        **options,
    )


def _gemini(url: str, **options: Any) -> chatmodels.ChatModel:
    return new_model("gemini", url, api_key=KEY, **options)


def _usage_of(raw: dict[str, Any]) -> Usage:
    """usageMetadata as the library reports it: thoughts are output tokens."""
    thoughts = raw.get("thoughtsTokenCount")
    return Usage(
        input_tokens=raw["promptTokenCount"],
        output_tokens=raw.get("candidatesTokenCount", 0) + (thoughts or 0),
        total_tokens=raw["totalTokenCount"],
        cache_read_input_tokens=raw.get("cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def _expected(data: dict[str, Any]) -> dict[str, Any]:
    candidate = data["candidates"][0]
    parts = candidate["content"]["parts"]
    return {
        "id": data["responseId"],
        "model": data["modelVersion"],
        "text": "".join(p["text"] for p in parts if "text" in p and not p.get("thought")),
        "calls": [
            (p["functionCall"]["name"], p["functionCall"]["args"])
            for p in parts
            if "functionCall" in p
        ],
        "raw_finish": candidate["finishReason"],
        "usage": _usage_of(data["usageMetadata"]),
    }


def _stream_events(inter: RecordedInteraction) -> list[dict[str, Any]]:
    events = []
    for block in inter.response.body.decode().split("\r\n\r\n"):
        if block.startswith("data: "):
            events.append(json.loads(block[len("data: ") :]))
    return events


def _stream_expected(inter: RecordedInteraction) -> dict[str, Any]:
    events = _stream_events(inter)
    text, calls, finish, usage = [], [], None, None
    for event in events:
        candidate = event["candidates"][0]
        for part in candidate["content"]["parts"]:
            if "text" in part and not part.get("thought"):
                text.append(part["text"])
            if "functionCall" in part:
                calls.append((part["functionCall"]["name"], part["functionCall"]["args"]))
        finish = candidate.get("finishReason") or finish
        if "totalTokenCount" in event["usageMetadata"]:
            usage = _usage_of(event["usageMetadata"])
    return {
        "id": events[0]["responseId"],
        "model": events[0]["modelVersion"],
        "text": "".join(text),
        "calls": calls,
        "raw_finish": finish,
        "usage": usage,
    }


def _check(response: ChatResponse, expected: dict[str, Any], provider: str) -> None:
    assert response.id == expected["id"]
    assert response.model == expected["model"]
    assert response.provider == provider
    assert response.text == expected["text"]
    assert [(c.name, dict(c.arguments)) for c in response.tool_calls] == expected["calls"]
    assert response.raw_finish_reason == expected["raw_finish"]
    normalized = FinishReason.TOOL_CALLS if expected["calls"] else FinishReason.STOP
    assert expected["raw_finish"] == "STOP"
    assert response.finish_reason is normalized
    assert response.usage == expected["usage"]


def _user_text(inter: RecordedInteraction) -> str:
    (content,) = inter.request.json["contents"]
    assert content["role"] == "user"
    return str(content["parts"][0]["text"])


# -- the real Vertex recordings ------------------------------------------------------------


def test_vertex_invoke_replays_the_recording() -> None:
    (inter,) = load_cassette(SHARED / "generate_content_non_streaming.yaml")
    with ReplayServer([inter]) as server, _vertex(server.base_url) as model:
        response = model.invoke(_user_text(inter), model="gemini-2.5-flash")
    server.check_requests()
    (sent,) = server.requests
    assert sent.method == inter.request.method == "POST"
    assert sent.path == inter.request.path == f"{VERTEX_PATH}/gemini-2.5-flash:generateContent"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert "x-goog-api-key" not in sent.headers
    assert_bodies_equivalent(inter.request.json, sent.json)
    expected = _expected(json.loads(inter.response.body))
    _check(response, expected, "vertex_ai")
    # the recorded numbers, spelled out: 1477 thinking tokens are output tokens
    assert response.usage == Usage(8, 433 + 1477, 1918, reasoning_tokens=1477)
    assert response.id == "hizpaKmcH9qs698P85HHgAU"
    assert response.latency is not None


def test_vertex_stream_replays_the_recording() -> None:
    (inter,) = load_cassette(SHARED / "generate_content_streaming.yaml")
    with ReplayServer([inter]) as server, _vertex(server.base_url) as model:
        chunks = list(model.stream(_user_text(inter)))
    server.check_requests()
    (sent,) = server.requests
    assert sent.path == inter.request.path
    assert sent.path.endswith(":streamGenerateContent?alt=sse")
    assert sent.headers["accept"] == "text/event-stream"
    assert_bodies_equivalent(inter.request.json, sent.json)
    expected = _stream_expected(inter)
    response = chatmodels.accumulate(chunks)
    _check(response, expected, "vertex_ai")
    assert len(chunks) == len(_stream_events(inter))
    assert all(c.usage is None and c.finish_reason is None for c in chunks[:-1])
    assert chunks[-1].usage == expected["usage"]
    assert chunks[-1].finish_reason is FinishReason.STOP


def _whole_from_stream(inter: RecordedInteraction) -> RecordedInteraction:
    """The non-streamed reply the streamed recording amounts to."""
    events = _stream_events(inter)
    text = "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events)
    last = events[-1]
    whole = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": text}]},
                "finishReason": last["candidates"][0]["finishReason"],
            }
        ],
        "usageMetadata": last["usageMetadata"],
        "modelVersion": last["modelVersion"],
        "responseId": last["responseId"],
    }
    request = RecordedRequest(
        method="POST",
        uri=inter.request.uri.replace(":streamGenerateContent?alt=sse", ":generateContent"),
        path=inter.request.path.replace(":streamGenerateContent?alt=sse", ":generateContent"),
        headers={},
        body=inter.request.body,
        json=inter.request.json,
    )
    body = json.dumps(whole).encode()
    return RecordedInteraction(
        request, RecordedResponse(200, "OK", (("Content-Type", "application/json"),), body)
    )


def test_streamed_reply_accumulates_to_the_invoked_one() -> None:
    (streamed,) = load_cassette(SHARED / "generate_content_streaming.yaml")
    whole = _whole_from_stream(streamed)
    with ReplayServer([whole, streamed]) as server, _vertex(server.base_url) as model:
        invoked = model.invoke(_user_text(streamed))
        accumulated = chatmodels.accumulate(model.stream(_user_text(streamed)))
    server.check_requests()
    assert accumulated == ChatResponse(
        **{f: getattr(invoked, f) for f in ChatResponse.__dataclass_fields__ if f != "latency"}
    )


def test_async_invoke_and_stream_replay() -> None:
    (plain,) = load_cassette(SHARED / "generate_content_non_streaming.yaml")
    (streamed,) = load_cassette(SHARED / "generate_content_streaming.yaml")

    async def run(url: str) -> tuple[ChatResponse, ChatResponse]:
        async with _vertex(url) as model:
            one = await model.ainvoke(_user_text(plain))
            chunks = [c async for c in model.astream(_user_text(streamed))]
            return one, chatmodels.accumulate(chunks)

    with ReplayServer([plain, streamed]) as server:
        one, two = asyncio.run(run(server.base_url))
    server.check_requests()
    assert_bodies_equivalent(plain.request.json, server.requests[0].json)
    _check(one, _expected(json.loads(plain.response.body)), "vertex_ai")
    _check(two, _stream_expected(streamed), "vertex_ai")


# -- the API-key endpoint, from the reference ----------------------------------------------


def test_function_calling_round_trip() -> None:
    first, second = load_cassette(OWN / "function_calling.yaml")
    system = first.request.json["systemInstruction"]["parts"][0]["text"]
    question = first.request.json["contents"][0]["parts"][0]["text"]
    params: dict[str, Any] = {"tools": [WEATHER_TOOL], "tool_choice": "auto", "temperature": 0}
    params["max_tokens"] = 256
    with ReplayServer([first, second]) as server, _gemini(server.base_url) as model:
        history: list[Any] = [Message.system(system), Message.user(question)]
        reply = model.invoke(history, **params)
        results = [
            Message.tool(
                reply.tool_calls[0].id,
                {"city": "Paris", "temperature_c": 18, "conditions": "sunny"},
            ),
            Message.tool(reply.tool_calls[1].id, "London: 14 C, light rain"),
        ]
        answer = model.invoke([*history, reply.message, *results], **params)
    server.check_requests()
    one, two = server.requests
    assert one.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert one.headers["x-goog-api-key"] == KEY
    assert "authorization" not in one.headers
    assert_bodies_equivalent(first.request.json, one.json)
    # the calls go back with the thoughtSignature they came with; both results in one turn
    assert_bodies_equivalent(second.request.json, two.json)

    _check(reply, _expected(json.loads(first.response.body)), "gemini")
    assert reply.finish_reason is FinishReason.TOOL_CALLS
    assert reply.text == ""
    assert len({c.id for c in reply.tool_calls}) == 2
    assert reply.usage is not None
    assert reply.usage.reasoning_tokens == 72
    assert reply.usage.cache_read_input_tokens is None  # not reported on this turn
    _check(answer, _expected(json.loads(second.response.body)), "gemini")
    assert answer.usage is not None
    assert answer.usage.cache_read_input_tokens == 32
    assert answer.usage.reasoning_tokens is None


def test_streamed_function_call() -> None:
    (inter,) = load_cassette(OWN / "function_calling_streaming.yaml")
    with ReplayServer([inter]) as server, _gemini(server.base_url) as model:
        chunks = list(model.stream("What is the weather in Tokyo?", tools=[WEATHER_TOOL]))
    server.check_requests()
    assert_bodies_equivalent(inter.request.json, server.requests[0].json)
    response = chatmodels.accumulate(chunks)
    _check(response, _stream_expected(inter), "gemini")
    assert response.finish_reason is FinishReason.TOOL_CALLS
    assert response.tool_calls[0].arguments == {"city": "Tokyo"}
    assert chunks[-1].tool_call_deltas[0].index == 0


class City(BaseModel):
    name: str
    population: int


def test_structured_output_with_a_pydantic_class() -> None:
    (inter,) = load_cassette(OWN / "structured_output.yaml")
    with ReplayServer([inter]) as server, _gemini(server.base_url) as model:
        response = model.invoke(_user_text(inter), response_format=City)
    server.check_requests()
    assert_bodies_equivalent(inter.request.json, server.requests[0].json)
    assert response.parsed == City(name="Paris", population=2102650)
    _check(response, _expected(json.loads(inter.response.body)), "gemini")


ERRORS = [
    ("authentication", 400, "API key not valid", chatmodels.AuthenticationError),
    ("context_length_exceeded", 400, "exceeds the maximum number of tokens", None),
    ("rate_limited", 429, "exceeded your current quota", chatmodels.RateLimitError),
    ("provider_unavailable", 503, "The model is overloaded", None),
]


@pytest.mark.parametrize(("index", "case"), list(enumerate(ERRORS)))
def test_error_recordings_map_to_codes(index: int, case: tuple[Any, ...]) -> None:
    code, status, words, cls = case
    inter = load_cassette(OWN / "errors.yaml")[index]
    assert inter.response.status == status
    with (
        ReplayServer([inter]) as server,
        _gemini(server.base_url) as model,
        pytest.raises(chatmodels.ChatModelError) as caught,
    ):
        model.invoke("Hi")
    error = caught.value
    assert error.code.value == code
    assert error.status_code == status
    assert words in str(error)
    assert error.provider == "gemini"
    assert_secret_hidden(KEY, error)
    if cls is not None:
        assert isinstance(error, cls)
    assert_bodies_equivalent(inter.request.json, server.requests[0].json)


def test_error_event_in_a_stream() -> None:
    body = (
        b'data: {"candidates": [{"content": {"parts": [{"text": "Hel"}], '
        b'"role": "model"}}]}\r\n\r\n'
        b'data: {"error": {"code": 500, "message": "Internal error encountered.", '
        b'"status": "INTERNAL"}}\r\n\r\n'
    )
    inter = _reply(
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", body, "text/event-stream"
    )
    with ReplayServer([inter]) as server, _gemini(server.base_url) as model:
        stream = model.stream("Hi")
        assert next(stream).text == "Hel"
        with pytest.raises(chatmodels.ChatModelError) as caught:
            next(stream)
    assert caught.value.code.value == "provider_unavailable"
    assert "Internal error encountered" in str(caught.value)


def test_blocked_prompt_is_content_filtered() -> None:
    body = json.dumps(
        {
            "promptFeedback": {"blockReason": "SAFETY"},
            "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
            "modelVersion": "gemini-2.5-flash",
            "responseId": "r1",
        }
    ).encode()
    inter = _reply("/v1beta/models/gemini-2.5-flash:generateContent", body, "application/json")
    with ReplayServer([inter]) as server, _gemini(server.base_url) as model:
        response = model.invoke("something unsafe")
    assert response.finish_reason is FinishReason.CONTENT_FILTER
    assert response.raw_finish_reason == "SAFETY"
    assert response.text == ""
    assert response.usage == Usage(7, 0, 7)


def _reply(path: str, body: bytes, content_type: str, method: str = "POST") -> RecordedInteraction:
    request = RecordedRequest(method, "http://x" + path, path, {}, b"", None)
    return RecordedInteraction(
        request, RecordedResponse(200, "OK", (("Content-Type", content_type),), body)
    )


# -- health, metadata, credentials ---------------------------------------------------------


def test_health_probes_list_models_and_get_the_vertex_model() -> None:
    listing = _reply(
        "/v1beta/models?pageSize=1",
        b'{"models": [{"name": "models/gemini-2.5-flash"}]}',
        "application/json",
        "GET",
    )
    with ReplayServer([listing]) as server, _gemini(server.base_url) as model:
        status = model.health_check()
    assert status.status == "healthy"
    assert server.requests[0].headers["x-goog-api-key"] == KEY
    server.check_requests()

    model_get = _reply(
        f"{VERTEX_PATH}/gemini-2.5-flash",
        b'{"name": "publishers/google/models/gemini-2.5-flash"}',
        "application/json",
        "GET",
    )

    async def probe(url: str) -> chatmodels.HealthStatus:
        async with _vertex(url) as model:
            return await model.ahealth_check()

    with ReplayServer([model_get]) as server:
        status = asyncio.run(probe(server.base_url))
    assert server.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert status.status == "healthy"
    server.check_requests()


def test_metadata_is_truthful() -> None:
    gemini = chatmodels.get_provider_metadata("gemini")
    vertex = chatmodels.get_provider_metadata("vertex_ai")
    assert gemini.gen_ai_provider_name == "gcp.gemini"
    assert vertex.gen_ai_provider_name == "gcp.vertex_ai"
    assert gemini.api_key_env == "GEMINI_API_KEY"
    assert gemini.default_base_url == "https://generativelanguage.googleapis.com"
    assert gemini.default_model == vertex.default_model == "gemini-2.5-flash"
    assert {"project", "location"} <= set(vertex.optional_options)


def _wire(chat: chatmodels.ChatModel, stream: bool = False, **params: Any) -> Any:
    """The request the adapter builds for "Hi" with `params` (nothing is sent)."""
    http: Any = chat
    op = "stream" if stream else "invoke"
    return http.adapter.build_request(http._prepare("Hi", params, stream, op))


def _body(model: chatmodels.ChatModel, **params: Any) -> dict[str, Any]:
    return dict(json.loads(_wire(model, **params).body))


def test_google_api_key_is_read_when_gemini_api_key_is_not_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    model = chatmodels.new_registry_provider("gemini")
    wire = _wire(model)
    assert wire.headers["x-goog-api-key"] == KEY
    assert KEY not in repr(model)
    assert KEY not in repr(wire)
    assert model._secret == KEY  # type: ignore[attr-defined]  # scrubbed from error messages
    monkeypatch.delenv("GOOGLE_API_KEY")
    with pytest.raises(chatmodels.InvalidConfigError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        chatmodels.new_registry_provider("gemini")


def test_vertex_endpoints_follow_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_LOCATION", raising=False)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-project")
    model: Any = chatmodels.new_registry_provider("vertex_ai", {"api_key": TOKEN})
    assert model.base_url == "https://aiplatform.googleapis.com"
    wire = _wire(model, True, model="gemini-2.0-flash")
    assert wire.path == (
        "/v1beta1/projects/env-project/locations/global/publishers/google/models/"
        "gemini-2.0-flash:streamGenerateContent?alt=sse"
    )
    assert wire.headers["Authorization"] == f"Bearer {TOKEN}"
    regional: Any = chatmodels.new_registry_provider(
        "vertex_ai", {"api_key": TOKEN, "location": "europe-west4", "api_version": "v1"}
    )
    assert regional.base_url == "https://europe-west4-aiplatform.googleapis.com"
    assert _wire(regional).path.startswith("/v1/projects/env-project/locations/europe-west4/")
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    with pytest.raises(chatmodels.InvalidConfigError, match="project"):
        chatmodels.new_registry_provider("vertex_ai", {"api_key": TOKEN})


def test_tool_choice_and_unsupported_switches() -> None:
    model = _gemini("http://127.0.0.1:9")
    body = _body(model, tools=[WEATHER_TOOL], tool_choice="get_weather")
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    body = _body(model, tools=[WEATHER_TOOL], tool_choice="required", stop="END", top_k=3, n=2)
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert body["generationConfig"] == {"stopSequences": ["END"], "topK": 3, "candidateCount": 2}
    with pytest.raises(chatmodels.CapabilityNotSupportedError):
        model.invoke("Hi", tools=[WEATHER_TOOL], parallel_tool_calls=False)
    model.close()


def test_tool_result_needs_its_call() -> None:
    model = _gemini("http://127.0.0.1:9")
    with pytest.raises(chatmodels.InvalidConfigError, match="name"):
        model.invoke([Message.user("Hi"), Message.tool("call_unknown", "42")])
    named = _body(model, tools=[WEATHER_TOOL])  # sanity: a plain request builds
    assert named["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]
    model.close()


def test_vertex_without_a_token_uses_application_default_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys
    import types

    refreshed: list[object] = []

    class Credentials:
        valid = False
        token: str | None = None

        def refresh(self, request: object) -> None:
            refreshed.append(request)
            self.token, self.valid = TOKEN, True

    auth = types.ModuleType("google.auth")
    auth.default = lambda scopes: (Credentials(), "adc-project")  # type: ignore[attr-defined]
    transport = types.ModuleType("google.auth.transport.requests")
    transport.Request = object  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "google.auth", auth)
    monkeypatch.setitem(sys.modules, "google.auth.transport.requests", transport)
    model = chatmodels.new_registry_provider("vertex_ai", {"project": "p", "location": "us"})
    assert model.base_url == "https://aiplatform.us.rep.googleapis.com"  # type: ignore[attr-defined]
    assert _wire(model).headers["Authorization"] == f"Bearer {TOKEN}"
    assert _wire(model).headers["Authorization"] == f"Bearer {TOKEN}"
    assert len(refreshed) == 1  # refreshed once, then reused while valid


def test_thought_parts_are_not_reply_text() -> None:
    body = json.dumps(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "Let me think about the question.", "thought": True},
                            {"text": "42", "thoughtSignature": "c2ln"},
                        ],
                    },
                    "finishReason": "MAX_TOKENS",
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 5,
                "candidatesTokenCount": 1,
                "thoughtsTokenCount": 9,
                "toolUsePromptTokenCount": 3,
                "totalTokenCount": 18,
            },
            "modelVersion": "gemini-2.5-pro",
            "responseId": "r2",
        }
    ).encode()
    inter = _reply("/v1beta/models/gemini-2.5-pro:generateContent", body, "application/json")
    with ReplayServer([inter]) as server, _gemini(server.base_url) as model:
        response = model.invoke("What is the answer?", model="gemini-2.5-pro")
    assert response.text == "42"
    assert response.reasoning == "Let me think about the question."
    assert response.finish_reason is FinishReason.LENGTH
    assert response.raw_finish_reason == "MAX_TOKENS"
    assert response.usage == Usage(5 + 3, 1 + 9, 18, reasoning_tokens=9)


# Written from the Gemini API thinking guide and GenerateContentResponse reference
# (https://ai.google.dev/gemini-api/docs/thinking), not recorded: with
# generationConfig.thinkingConfig.includeThoughts, thought summaries come as parts with
# "thought": true before the answer's parts, a thoughtSignature on a part; streamed
# (alt=sse), each event a whole GenerateContentResponse with the thought parts first.
THINKING_PATH = "/v1beta/models/gemini-2.5-flash"
THOUGHT_ONE = "**Counting the letters**\nSpelling strawberry: s-t-r-a-w-b-e-r-r-y."
THOUGHT_TWO = "\nThe r's are the 3rd, 8th and 9th letters: three."
THOUGHT_SIGNATURE = "CvcBAdHtim9vT1sYw3hGq1VvY2x1Z2dlZC1zaWduYXR1cmU="
THINKING_USAGE = {
    "promptTokenCount": 9,
    "candidatesTokenCount": 12,
    "thoughtsTokenCount": 181,
    "totalTokenCount": 202,
}
THINKING_ANSWER = "There are three r's in strawberry."


def _thinking_event(parts: list[dict[str, Any]], **extra: Any) -> bytes:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    data = {
        "candidates": [{**candidate, **extra.pop("candidate", {})}],
        "modelVersion": "gemini-2.5-flash",
        "responseId": "Gx9Sac3bFqXz1MkP2pWa0Qo",
        **extra,
    }
    return b"data: " + json.dumps(data).encode() + b"\r\n\r\n"


THINKING_WHOLE = {
    "candidates": [
        {
            "content": {
                "parts": [
                    {"text": THOUGHT_ONE, "thought": True},
                    {"text": THOUGHT_TWO, "thought": True, "thoughtSignature": THOUGHT_SIGNATURE},
                    {"text": THINKING_ANSWER},
                ],
                "role": "model",
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": THINKING_USAGE,
    "modelVersion": "gemini-2.5-flash",
    "responseId": "Gx9Sac3bFqXz1MkP2pWa0Qo",
}
THINKING_STREAM = b"".join(
    [
        _thinking_event([{"text": THOUGHT_ONE, "thought": True}]),
        _thinking_event(
            [{"text": THOUGHT_TWO, "thought": True, "thoughtSignature": THOUGHT_SIGNATURE}]
        ),
        _thinking_event([{"text": "There are three r's"}]),
        _thinking_event(
            [{"text": " in strawberry."}],
            candidate={"finishReason": "STOP"},
            usageMetadata=THINKING_USAGE,
        ),
    ]
)


def test_thought_parts_whole_and_streamed() -> None:
    whole = _reply(
        THINKING_PATH + ":generateContent", json.dumps(THINKING_WHOLE).encode(), "application/json"
    )
    streamed = _reply(
        THINKING_PATH + ":streamGenerateContent?alt=sse", THINKING_STREAM, "text/event-stream"
    )
    config = {"generationConfig": {"thinkingConfig": {"includeThoughts": True}}}
    prompt = "How many r's are in strawberry?"
    with ReplayServer([whole, streamed]) as server, _gemini(server.base_url) as model:
        invoked = model.invoke(prompt, model="gemini-2.5-flash", provider_specific=config)
        chunks = list(model.stream(prompt, model="gemini-2.5-flash", provider_specific=config))
    server.check_requests()
    for sent in server.requests:
        assert sent.json["generationConfig"] == config["generationConfig"]
    assert invoked.message.content == (
        ReasoningPart(THOUGHT_ONE + THOUGHT_TWO, THOUGHT_SIGNATURE),
        TextPart(THINKING_ANSWER),
    )
    assert (invoked.text, invoked.reasoning) == (THINKING_ANSWER, THOUGHT_ONE + THOUGHT_TWO)
    assert invoked.usage == Usage(9, 12 + 181, 202, reasoning_tokens=181)
    assert [(c.reasoning, c.reasoning_signature, c.text) for c in chunks] == [
        (THOUGHT_ONE, None, ""),
        (THOUGHT_TWO, THOUGHT_SIGNATURE, ""),
        ("", None, "There are three r's"),
        ("", None, " in strawberry."),
    ]
    accumulated = chatmodels.accumulate(chunks)
    fields = [f for f in ChatResponse.__dataclass_fields__ if f != "latency"]
    assert accumulated == ChatResponse(**{f: getattr(invoked, f) for f in fields})


def test_thought_parts_in_one_event_keep_their_signatures_apart() -> None:
    """An event with a signed thought part, another thought and text: a chunk per signed
    part, then the rest; accumulated, the same parts as the whole reply."""
    body = _thinking_event(
        [
            {"text": "a", "thought": True, "thoughtSignature": "s1"},
            {"text": "b", "thought": True},
            {"text": "answer"},
        ],
        candidate={"finishReason": "STOP"},
    )
    streamed = _reply(THINKING_PATH + ":streamGenerateContent?alt=sse", body, "text/event-stream")
    with ReplayServer([streamed]) as server, _gemini(server.base_url) as model:
        chunks = list(model.stream("q", model="gemini-2.5-flash"))
    assert [(c.reasoning, c.reasoning_signature, c.text) for c in chunks] == [
        ("a", "s1", ""),
        ("b", None, "answer"),
    ]
    assert chatmodels.accumulate(chunks).message.content == (
        ReasoningPart("a", "s1"),
        ReasoningPart("b"),
        TextPart("answer"),
    )
