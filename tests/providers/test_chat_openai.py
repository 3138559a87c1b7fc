"""The OpenAI family against recorded exchanges (../shared/cassettes/openai and groq).

Each test serves a recording from `chatmodels.testing.ReplayServer`, makes the same call
through the public API, and checks the request we sent (method, path, equivalent body) and
every parsed field.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import chatmodels
import pytest
from chatmodels import ChatResponse, FinishReason
from chatmodels.testing import RecordedInteraction, ReplayServer
from chatmodels.testing import load_cassette as _load
from replay_helpers import SHARED_CASSETTES, assert_secret_hidden, json_interaction, new_model

KEY = "sk-test-secret-key-123456"


def load_cassette(relative: str) -> list[RecordedInteraction]:
    """The interactions of a cassette under ../shared/cassettes."""
    return _load(SHARED_CASSETTES / relative)


def _response_json(inter: RecordedInteraction) -> Any:
    return json.loads(inter.response.body)


def _content_length_framed(inter: RecordedInteraction) -> RecordedInteraction:
    """The same recorded stream served with Content-Length instead of chunked: ReplayServer
    chunks a body by its stream content type, so that header is left out."""
    headers = tuple((k, v) for k, v in inter.response.headers if k.lower() != "content-type")
    return dataclasses.replace(inter, response=dataclasses.replace(inter.response, headers=headers))


def _model(provider: str, url: str, **options: Any) -> chatmodels.ChatModel:
    return new_model(provider, url, api_key=KEY, **options)


def _call_args(body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The invoke arguments that should produce `body`."""
    params = {k: v for k, v in body.items() if k not in ("messages", "stream", "stream_options")}
    specific = {k: params.pop(k) for k in ("service_tier",) if k in params}
    if specific:
        params["provider_specific"] = specific
    return body["messages"], params


def _equivalent(sent: dict[str, Any], recorded: dict[str, Any]) -> None:
    """Equal JSON, where a recorded ``"stream": false`` equals its absence."""
    if recorded.get("stream") is False:
        recorded = {k: v for k, v in recorded.items() if k != "stream"}
    assert sent == recorded


def _expected(inter: RecordedInteraction) -> dict[str, Any]:
    data = _response_json(inter)
    choice = data["choices"][0]
    usage = data["usage"]
    return {
        "id": data["id"],
        "model": data["model"],
        "text": choice["message"]["content"] or "",
        "raw_finish": choice["finish_reason"],
        "calls": [
            (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in choice["message"].get("tool_calls") or ()
        ],
        "usage": (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]),
    }


def _check(response: ChatResponse, expected: dict[str, Any], provider: str) -> None:
    assert response.id == expected["id"]
    assert response.model == expected["model"]
    assert response.provider == provider
    assert response.text == expected["text"]
    assert response.raw_finish_reason == expected["raw_finish"]
    assert response.finish_reason == FinishReason(expected["raw_finish"])
    assert [(c.id, c.name, dict(c.arguments)) for c in response.tool_calls] == expected["calls"]
    assert response.usage is not None
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == expected["usage"]
    assert response.latency is not None
    assert response.latency > 0


NON_STREAMED = [
    "openai/chat_completion_with_content.yaml",
    "openai/chat_completion_extra_params.yaml",
    "openai/chat_completion_handle_stop_sequences_as_string.yaml",
    "openai/chat_completion_metrics.yaml",
    "openai/chat_completion_multiple_choices.yaml",
    "openai/chat_completion_tool_calls_with_content.yaml",
]


@pytest.mark.parametrize("cassette", NON_STREAMED)
def test_invoke_replays_the_recording(cassette: str) -> None:
    # Some recordings hold a conversation: the tool-call one sends the tool results back.
    for inter in load_cassette(cassette):
        with ReplayServer([inter]) as server:
            model = _model("openai", server.base_url + "/v1")
            messages, params = _call_args(inter.request.json)
            response = model.invoke(messages, **params)
            model.close()
        (received,) = server.requests
        assert received.method == inter.request.method == "POST"
        assert received.path == "/v1/chat/completions"
        assert inter.request.uri == "https://api.openai.com/v1/chat/completions"
        assert received.headers["authorization"] == f"Bearer {KEY}"
        _equivalent(received.json, inter.request.json)
        _check(response, _expected(inter), "openai")


def test_recorded_values_spelled_out() -> None:
    (inter,) = load_cassette("openai/chat_completion_with_content.yaml")
    with ReplayServer([inter]) as server, _model("openai", server.base_url + "/v1") as model:
        response = model.invoke("Say this is a test", model="gpt-4o-mini")
    assert response.id == "chatcmpl-ASYMQRl3A3DXL9FWCK9tnGRcKIO7q"
    assert response.text == "This is a test."
    assert response.message.role == "assistant"
    assert response.finish_reason is FinishReason.STOP
    assert response.usage == chatmodels.Usage(
        12, 5, 17, cache_read_input_tokens=0, reasoning_tokens=0
    )


def test_tool_call_recording_parses_arguments() -> None:
    inter = load_cassette("openai/chat_completion_tool_calls_with_content.yaml")[0]
    with ReplayServer([inter]) as server, _model("openai", server.base_url + "/v1") as model:
        messages, params = _call_args(inter.request.json)
        response = model.invoke(messages, **params)
    assert response.finish_reason is FinishReason.TOOL_CALLS
    assert [c.arguments for c in response.tool_calls] == [
        {"location": "Seattle, WA"},
        {"location": "San Francisco, CA"},
    ]


def _stream_expectation(inter: RecordedInteraction) -> dict[str, Any]:
    """What the recorded SSE body says, read independently of the adapter."""
    text, finish, usage, ident, model = [], None, None, None, None
    calls: dict[int, list[str]] = {}
    for line in inter.response.body.decode().splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        obj = json.loads(line[6:])
        ident, model = ident or obj["id"], model or obj["model"]
        raw_usage = obj.get("usage") or (obj.get("x_groq") or {}).get("usage")
        if raw_usage:
            usage = (
                raw_usage["prompt_tokens"],
                raw_usage["completion_tokens"],
                raw_usage["total_tokens"],
            )
        for choice in obj["choices"]:
            if choice["index"] != 0:
                continue
            delta = choice["delta"]
            text.append(delta.get("content") or "")
            for call in delta.get("tool_calls") or ():
                slot = calls.setdefault(call["index"], ["", "", ""])
                slot[0] = call.get("id") or slot[0]
                slot[1] = call["function"].get("name") or slot[1]
                slot[2] += call["function"].get("arguments") or ""
            finish = choice["finish_reason"] or finish
    return {
        "id": ident,
        "model": model,
        "text": "".join(text),
        "raw_finish": finish,
        "calls": [(i, n, json.loads(a)) for i, n, a in (calls[k] for k in sorted(calls))],
        "usage": usage,
    }


STREAMED = [
    "openai/chat_completion_streaming.yaml",
    "openai/chat_completion_streaming_not_complete.yaml",
    "openai/chat_completion_multiple_tools_streaming_with_content.yaml",
    "openai/chat_completion_multiple_choices_streaming.yaml",
]


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("cassette", STREAMED)
def test_stream_replays_the_recording(cassette: str, chunked: bool) -> None:
    (inter,) = load_cassette(cassette)
    served = inter if chunked else _content_length_framed(inter)
    with ReplayServer([served]) as server, _model("openai", server.base_url + "/v1") as model:
        messages, params = _call_args(inter.request.json)
        chunks = list(model.stream(messages, **params))
    (received,) = server.requests
    assert received.headers["accept"] == "text/event-stream"
    body = received.json
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    if "stream_options" not in inter.request.json:  # recorded without it; we always ask
        body.pop("stream_options")
    _equivalent(body, inter.request.json)
    expected = _stream_expectation(inter)
    response = chatmodels.accumulate(chunks)
    assert response.provider == "openai"
    assert response.id == expected["id"]
    assert response.model == expected["model"]
    assert response.text == expected["text"]
    assert response.raw_finish_reason == expected["raw_finish"]
    assert [(c.id, c.name, dict(c.arguments)) for c in response.tool_calls] == expected["calls"]
    if expected["usage"] is None:
        assert response.usage is None
    else:
        assert response.usage is not None
        usage = response.usage
        assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == expected["usage"]
    assert chunks[-1].usage == response.usage or expected["usage"] is None


def test_streamed_tool_calls_accumulate_exactly() -> None:
    (inter,) = load_cassette("openai/chat_completion_multiple_tools_streaming_with_content.yaml")
    with ReplayServer([inter]) as server, _model("openai", server.base_url + "/v1") as model:
        messages, params = _call_args(inter.request.json)
        response = chatmodels.accumulate(model.stream(messages, **params))
    assert [(c.id, c.arguments) for c in response.tool_calls] == [
        ("call_fHCjJqt9Pysde6vcJcvbXGBx", {"location": "Seattle, WA"}),
        ("call_3J9foSw3CUb48lrqIXoTky6U", {"location": "San Francisco, CA"}),
    ]
    assert response.finish_reason is FinishReason.TOOL_CALLS
    assert response.usage is not None
    assert response.usage.total_tokens == 126


def test_streamed_reply_accumulates_to_the_invoked_one() -> None:
    (inter,) = load_cassette("openai/chat_completion_streaming.yaml")
    expected = _stream_expectation(inter)
    usage = dict(
        zip(("prompt_tokens", "completion_tokens", "total_tokens"), expected["usage"], strict=False)
    )
    whole = {
        "id": expected["id"],
        "model": expected["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": expected["text"]},
                "finish_reason": expected["raw_finish"],
            }
        ],
        "usage": {
            **usage,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }
    reply = json_interaction("/v1/chat/completions", whole)
    with ReplayServer([reply]) as server, _model("openai", server.base_url + "/v1") as m:
        invoked = m.invoke("Say this is a test", model="gpt-4")
    with ReplayServer([inter]) as server, _model("openai", server.base_url + "/v1") as m:
        streamed = chatmodels.accumulate(m.stream("Say this is a test", model="gpt-4"))
    assert streamed == ChatResponse(**{**_fields(invoked), "latency": None})


def _fields(response: ChatResponse) -> dict[str, Any]:
    return {name: getattr(response, name) for name in ChatResponse.__dataclass_fields__}


def test_404_recording_maps_to_bad_request() -> None:
    (inter,) = load_cassette("openai/chat_completion_404.yaml")
    with (
        ReplayServer([inter]) as server,
        _model("openai", server.base_url + "/v1") as model,
        pytest.raises(chatmodels.BadRequestError) as caught,
    ):
        model.invoke("Say this is a test", model="this-model-does-not-exist")
    error = caught.value
    assert error.code is chatmodels.ErrorCode.BAD_REQUEST
    assert error.status_code == 404
    assert error.request_id == "req_c3e0f92d7b5426d1a4a17bb3d39953ea"
    assert "model_not_found" in str(error)
    assert "does not exist or you do not have access to it" in str(error)
    assert error.provider == "openai"
    assert_secret_hidden(KEY, error)
    _equivalent(server.requests[0].json, inter.request.json)


def test_groq_recordings_gzip_and_x_groq_usage() -> None:
    inter = load_cassette("groq/chat_with_events_with_content.yaml")[0]
    with ReplayServer([inter]) as server:
        model = _model("groq", server.base_url + "/openai/v1")
        response = model.invoke(inter.request.json["messages"], model="llama3-8b-8192")
        model.close()
    assert server.requests[0].path == "/openai/v1/chat/completions"
    _equivalent(server.requests[0].json, inter.request.json)
    _check(response, _expected(inter), "groq")

    (streamed,) = load_cassette("groq/chat_streaming_with_events_with_content.yaml")
    with (
        ReplayServer([streamed]) as server,
        _model("groq", server.base_url + "/openai/v1") as m,
    ):
        result = chatmodels.accumulate(
            m.stream(streamed.request.json["messages"], model="llama3-8b-8192")
        )
    expected = _stream_expectation(streamed)
    assert result.text == expected["text"]
    assert result.id == expected["id"]
    assert result.usage is not None
    assert (result.usage.input_tokens, result.usage.output_tokens) == (18, 73)


def test_async_invoke_and_stream_replay() -> None:
    (plain,) = load_cassette("openai/chat_completion_with_content.yaml")
    (streamed,) = load_cassette("openai/chat_completion_multiple_tools_streaming_with_content.yaml")

    async def run(url_plain: str, url_stream: str) -> tuple[ChatResponse, ChatResponse]:
        async with (
            _model("openai", url_plain + "/v1") as m1,
            _model("openai", url_stream + "/v1") as m2,
        ):
            one = await m1.ainvoke(*_split(plain))
            messages, params = _call_args(streamed.request.json)
            chunks = [c async for c in m2.astream(messages, **params)]
            return one, chatmodels.accumulate(chunks)

    with ReplayServer([plain]) as s1, ReplayServer([streamed]) as s2:
        one, two = asyncio.run(run(s1.base_url, s2.base_url))
    _check(one, _expected(plain), "openai")
    _equivalent(s1.requests[0].json, plain.request.json)
    assert [c.name for c in two.tool_calls] == ["get_current_weather"] * 2
    assert two.usage is not None
    assert two.usage.total_tokens == 126


def _split(inter: RecordedInteraction) -> tuple[Any, ...]:
    messages, _params = _call_args(inter.request.json)
    return (messages,)


def test_azure_deployment_path_and_api_key_header() -> None:
    (recorded,) = load_cassette("openai/chat_completion_with_content.yaml")
    path = "/openai/deployments/my-gpt/chat/completions?api-version=2024-06-01"
    inter = dataclasses.replace(recorded, request=dataclasses.replace(recorded.request, path=path))
    with ReplayServer([inter]) as server:
        model = chatmodels.new_registry_provider(
            "azure_openai",
            {
                "api_key": KEY,
                "base_url": server.base_url,
                "model": "my-gpt",
                "api_version": "2024-06-01",
            },
        )
        response = model.invoke("Say this is a test")
        model.close()
    (received,) = server.requests
    assert received.path == "/openai/deployments/my-gpt/chat/completions?api-version=2024-06-01"
    assert received.headers["api-key"] == KEY
    assert "authorization" not in received.headers
    assert "model" not in received.json
    assert response.text == "This is a test."
