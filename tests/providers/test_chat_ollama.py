"""Ollama's /api/chat against recorded and reference-written exchanges.

../shared/cassettes/ollama holds real recordings (a chat, a tool result sent back, an NDJSON
stream); tests/cassettes/ollama holds exchanges written from the Ollama API reference for
what no recording covers (tools in the request, a streamed tool call with thinking, a JSON
schema `format`, errors). Expected values are read from the recorded bodies.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import chatmodels
import pytest
from chatmodels import (
    ChatResponse,
    FinishReason,
    Message,
    ReasoningPart,
    TextPart,
    ToolCall,
    Usage,
)
from chatmodels.testing import (
    RecordedInteraction,
    RecordedRequest,
    RecordedResponse,
    ReplayServer,
    assert_bodies_equivalent,
    load_cassette,
)
from pydantic import BaseModel
from replay_helpers import cassette_dirs, new_model

SHARED, OWN = cassette_dirs("ollama")


def _model(url: str, **options: Any) -> chatmodels.ChatModel:
    return new_model("ollama", url, **options)


def _equivalent(recorded: dict[str, Any], sent: Any) -> None:
    """ollama-python sends its unset options as ``"format": ""``, ``"options": {}``,
    ``"keep_alive": null`` and ``"tools": []``; the server reads those as absent, so a
    recorded empty value equals its absence. Everything else must be equal."""
    trimmed = {k: v for k, v in recorded.items() if v not in ("", {}, [], None)}
    assert_bodies_equivalent(trimmed, sent)


def _expected(data: dict[str, Any]) -> dict[str, Any]:
    msg = data["message"]
    calls = [
        (c["function"]["name"], c["function"]["arguments"]) for c in msg.get("tool_calls") or ()
    ]
    prompt, output = data["prompt_eval_count"], data["eval_count"]
    return {
        "model": data["model"],
        "text": msg["content"],
        "calls": calls,
        "raw_finish": data["done_reason"],
        "usage": Usage(prompt, output, prompt + output),
    }


def _stream_expected(inter: RecordedInteraction) -> dict[str, Any]:
    lines = [json.loads(line) for line in inter.response.body.decode().splitlines() if line.strip()]
    last = lines[-1]
    assert last["done"] is True
    calls = [
        (c["function"]["name"], c["function"]["arguments"])
        for line in lines
        for c in line["message"].get("tool_calls") or ()
    ]
    prompt, output = last["prompt_eval_count"], last["eval_count"]
    return {
        "model": lines[0]["model"],
        "text": "".join(line["message"]["content"] for line in lines),
        "calls": calls,
        "raw_finish": last["done_reason"],
        "usage": Usage(prompt, output, prompt + output),
        "lines": len(lines),
    }


def _check(response: ChatResponse, expected: dict[str, Any]) -> None:
    assert response.id is None  # Ollama gives replies no id
    assert response.model == expected["model"]
    assert response.provider == "ollama"
    assert response.text == expected["text"]
    assert [(c.name, dict(c.arguments)) for c in response.tool_calls] == expected["calls"]
    assert response.raw_finish_reason == expected["raw_finish"] == "stop"
    wanted = FinishReason.TOOL_CALLS if expected["calls"] else FinishReason.STOP
    assert response.finish_reason is wanted
    assert response.usage == expected["usage"]


def _sent_messages(inter: RecordedInteraction) -> list[dict[str, Any]]:
    return list(inter.request.json["messages"])


# -- the real recordings -------------------------------------------------------------------


def test_invoke_replays_the_recording() -> None:
    (inter,) = load_cassette(SHARED / "chat_with_events_with_content.yaml")
    with ReplayServer([inter]) as server, _model(server.base_url) as model:
        response = model.invoke(_sent_messages(inter), model=inter.request.json["model"])
    server.check_requests()
    (sent,) = server.requests
    assert sent.method == inter.request.method == "POST"
    assert sent.path == inter.request.path == "/api/chat"
    assert "authorization" not in sent.headers
    assert sent.json["stream"] is False  # Ollama streams unless told not to
    _equivalent(inter.request.json, sent.json)
    _check(response, _expected(json.loads(inter.response.body)))
    assert response.usage == Usage(17, 66, 83)


def test_tool_result_recording_sends_the_call_and_result_back() -> None:
    (inter,) = load_cassette(SHARED / "chat_tool_calls_with_events_with_content.yaml")
    recorded = _sent_messages(inter)
    call = recorded[0]["tool_calls"][0]["function"]
    messages = [
        Message.assistant("", [ToolCall("call_0", call["name"], call["arguments"])]),
        Message.tool("call_0", recorded[1]["content"]),
    ]
    with ReplayServer([inter]) as server, _model(server.base_url) as model:
        response = model.invoke(messages, model=inter.request.json["model"])
    server.check_requests()
    _equivalent(inter.request.json, server.requests[0].json)
    _check(response, _expected(json.loads(inter.response.body)))


def test_stream_replays_the_recording() -> None:
    (inter,) = load_cassette(SHARED / "streaming_chat_with_events_with_content.yaml")
    with ReplayServer([inter]) as server, _model(server.base_url) as model:
        chunks = list(model.stream(_sent_messages(inter), model=inter.request.json["model"]))
    server.check_requests()
    (sent,) = server.requests
    assert sent.path == "/api/chat"
    assert sent.headers["accept"] == "application/x-ndjson"
    _equivalent(inter.request.json, sent.json)
    expected = _stream_expected(inter)
    assert len(chunks) == expected["lines"]
    assert all(c.finish_reason is None and c.usage is None for c in chunks[:-1])
    assert chunks[-1].usage == expected["usage"]
    _check(chatmodels.accumulate(chunks), expected)


def test_streamed_reply_accumulates_to_the_invoked_one() -> None:
    (streamed,) = load_cassette(SHARED / "streaming_chat_with_events_with_content.yaml")
    expected = _stream_expected(streamed)
    lines = streamed.response.body.decode().splitlines()
    final = json.loads([line for line in lines if line.strip()][-1])
    final["message"]["content"] = expected["text"]
    json_request = {**streamed.request.json, "stream": False}
    whole = RecordedInteraction(
        RecordedRequest(
            "POST",
            streamed.request.uri,
            "/api/chat",
            {},
            json.dumps(json_request).encode(),
            json_request,
        ),
        RecordedResponse(
            200, "OK", (("Content-Type", "application/json"),), json.dumps(final).encode()
        ),
    )
    prompt = _sent_messages(streamed)
    with ReplayServer([whole, streamed]) as server, _model(server.base_url, model="llama3") as m:
        invoked = m.invoke(prompt)
        accumulated = chatmodels.accumulate(m.stream(prompt))
    server.check_requests()
    fields = [f for f in ChatResponse.__dataclass_fields__ if f != "latency"]
    assert accumulated == ChatResponse(**{f: getattr(invoked, f) for f in fields})


def test_async_invoke_and_stream_replay() -> None:
    (plain,) = load_cassette(SHARED / "chat_with_events_with_content.yaml")
    (streamed,) = load_cassette(SHARED / "streaming_chat_with_events_with_content.yaml")

    async def run(url: str) -> tuple[ChatResponse, ChatResponse]:
        async with _model(url, model="llama3") as model:
            one = await model.ainvoke(_sent_messages(plain))
            chunks = [c async for c in model.astream(_sent_messages(streamed))]
            return one, chatmodels.accumulate(chunks)

    with ReplayServer([plain, streamed]) as server:
        one, two = asyncio.run(run(server.base_url))
    server.check_requests()
    _equivalent(plain.request.json, server.requests[0].json)
    _equivalent(streamed.request.json, server.requests[1].json)
    _check(one, _expected(json.loads(plain.response.body)))
    _check(two, _stream_expected(streamed))


# -- written from the reference ------------------------------------------------------------


def _tools(inter: RecordedInteraction) -> list[dict[str, Any]]:
    return [t["function"] for t in inter.request.json["tools"]]


def test_tools_in_and_tool_calls_out() -> None:
    (inter,) = load_cassette(OWN / "chat_tools.yaml")
    body = inter.request.json
    options = body["options"]
    with ReplayServer([inter]) as server, _model(server.base_url) as model:
        response = model.invoke(
            _sent_messages(inter),
            model=body["model"],
            tools=_tools(inter),
            temperature=options["temperature"],
            seed=options["seed"],
            max_tokens=options["num_predict"],
        )
    server.check_requests()
    assert_bodies_equivalent(body, server.requests[0].json)
    _check(response, _expected(json.loads(inter.response.body)))
    (call,) = response.tool_calls
    assert call.arguments == {"format": "celsius", "location": "Paris, FR"}
    assert call.id == "call_0"


def test_streamed_tool_call_and_thinking() -> None:
    (inter,) = load_cassette(OWN / "chat_tools_streaming.yaml")
    body = inter.request.json
    with ReplayServer([inter]) as server, _model(server.base_url) as model:
        chunks = list(
            model.stream(
                _sent_messages(inter),
                model=body["model"],
                tools=_tools(inter),
                provider_specific={"think": True},
            )
        )
    server.check_requests()
    assert_bodies_equivalent(body, server.requests[0].json)
    response = chatmodels.accumulate(chunks)
    _check(response, _stream_expected(inter))
    assert response.text == ""  # thinking is not the reply
    assert response.reasoning == "The user wants the weather in Toronto; I will call the tool."
    assert response.tool_calls[0].arguments == {"city": "Toronto"}


def test_thinking_whole_and_streamed() -> None:
    whole, streamed = load_cassette(OWN / "chat_thinking.yaml")
    prompt = _sent_messages(whole)
    with ReplayServer([whole, streamed]) as server, _model(server.base_url) as model:
        invoked = model.invoke(prompt, model="deepseek-r1", provider_specific={"think": True})
        chunks = list(model.stream(prompt, model="deepseek-r1", provider_specific={"think": True}))
    server.check_requests()
    assert_bodies_equivalent(whole.request.json, server.requests[0].json)
    assert_bodies_equivalent(streamed.request.json, server.requests[1].json)
    thought = "Spell it out: s-t-r-a-w-b-e-r-r-y. The r's are at positions 3, 8 and 9, so three."
    answer = 'There are **3** r\'s in "strawberry".'
    assert invoked.message.content == (ReasoningPart(thought), TextPart(answer))
    assert (invoked.text, invoked.reasoning) == (answer, thought)
    assert invoked.usage == Usage(12, 58, 70)
    assert [(c.reasoning, c.text) for c in chunks if c.reasoning or c.text] == [
        ("Spell it out: s-t-r-a-w-b-e-r-r-y.", ""),
        (" The r's are at positions 3, 8 and 9, so three.", ""),
        ("", "There are **3** r's"),
        ("", ' in "strawberry".'),
    ]
    accumulated = chatmodels.accumulate(chunks)
    fields = [f for f in ChatResponse.__dataclass_fields__ if f != "latency"]
    assert accumulated == ChatResponse(**{f: getattr(invoked, f) for f in fields})


class Availability(BaseModel):
    age: int
    available: bool


def test_format_json_schema_from_a_pydantic_class() -> None:
    (inter,) = load_cassette(OWN / "chat_format_schema.yaml")
    body = inter.request.json
    with ReplayServer([inter]) as server, _model(server.base_url) as model:
        response = model.invoke(
            _sent_messages(inter), model=body["model"], response_format=Availability, temperature=0
        )
    server.check_requests()
    assert_bodies_equivalent(body, server.requests[0].json)
    assert response.parsed == Availability(age=22, available=False)
    _check(response, _expected(json.loads(inter.response.body)))


def test_json_mode_sends_format_json() -> None:
    http: Any = _model("http://127.0.0.1:9", model="llama3")
    request = http._prepare("Hi", {"response_format": {"type": "json_object"}}, False, "invoke")
    assert json.loads(http.adapter.build_request(request).body)["format"] == "json"
    http.close()


def test_missing_model_is_not_found_error() -> None:
    inter = load_cassette(OWN / "chat_errors.yaml")[0]
    with (
        ReplayServer([inter]) as server,
        _model(server.base_url) as model,
        pytest.raises(chatmodels.ChatModelError) as caught,
    ):
        model.invoke("Hi", model="llama9")
    error = caught.value
    assert error.code is chatmodels.ErrorCode.BAD_REQUEST
    assert error.status_code == 404
    assert 'model "llama9" not found, try pulling it first' in str(error)
    assert error.provider == "ollama"
    assert_bodies_equivalent(inter.request.json, server.requests[0].json)


def test_error_line_in_a_stream() -> None:
    inter = load_cassette(OWN / "chat_errors.yaml")[1]
    with ReplayServer([inter]) as server, _model(server.base_url, model="llama3") as model:
        stream = model.stream("Hi")
        assert next(stream).text == "Hel"
        with pytest.raises(chatmodels.ChatModelError) as caught:
            next(stream)
    assert caught.value.code is chatmodels.ErrorCode.PROVIDER_UNAVAILABLE
    assert "unexpected EOF" in str(caught.value)


def test_images_go_as_base64_and_urls_are_refused_before_any_request() -> None:
    question = chatmodels.TextPart("What is this?")
    with ReplayServer([]) as server, _model(server.base_url, model="llava") as model:
        url_image = chatmodels.ImagePart(url="https://example.com/cat.png")
        with pytest.raises(chatmodels.InvalidConfigError, match="base64"):
            model.invoke([Message.user([question, url_image])])
        png = chatmodels.ImagePart.from_bytes(b"\x89PNG", "image/png")
        http: Any = model
        request = http._prepare([Message.user([question, png])], {}, False, "invoke")
        body = json.loads(http.adapter.build_request(request).body)
    assert server.requests == []
    assert body["messages"] == [
        {"role": "user", "content": "What is this?", "images": ["iVBORw=="]}
    ]


# -- health and metadata -------------------------------------------------------------------


def test_health_probe_lists_local_models() -> None:
    tags = RecordedInteraction(
        RecordedRequest("GET", "http://localhost:11434/api/tags", "/api/tags", {}, b"", None),
        RecordedResponse(
            200,
            "OK",
            (("Content-Type", "application/json; charset=utf-8"),),
            b'{"models":[{"name":"llama3:latest","model":"llama3:latest"}]}',
        ),
    )
    with ReplayServer([tags]) as server, _model(server.base_url) as model:
        status = model.health_check()
    server.check_requests()
    assert status.status == "healthy"
    assert server.requests[0].method == "GET"


def test_metadata_is_truthful() -> None:
    meta = chatmodels.get_provider_metadata("ollama")
    assert meta.default_base_url == "http://localhost:11434"
    assert meta.api_key_env is None
    assert meta.required_options == ()
    assert meta.gen_ai_provider_name == "ollama"
    assert meta.supports_health_check
    model = chatmodels.new_registry_provider("ollama")
    assert model.base_url == "http://localhost:11434"  # type: ignore[attr-defined]
    with pytest.raises(chatmodels.InvalidConfigError, match="no model"):
        model.invoke("Hi")
    with pytest.raises(chatmodels.CapabilityNotSupportedError):
        model.invoke("Hi", model="llama3", n=2)
    model.close()
