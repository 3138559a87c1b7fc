"""The bedrock provider against recorded Converse / ConverseStream exchanges
(../shared/cassettes/bedrock) and cassettes written from the API reference
(tests/cassettes/bedrock).

Each test serves a recording from a loopback server, makes the equivalent call through the
public API and checks the request (method, path, equivalent JSON body, a SigV4 signature
that verifies) and every parsed field against values read from the recording itself.
Credentials are fake and set through the environment; no test needs real ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import struct
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import chatmodels
import pytest
from botocore.auth import SigV4Auth  # type: ignore[import-untyped,unused-ignore]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped,unused-ignore]
from botocore.credentials import Credentials  # type: ignore[import-untyped,unused-ignore]
from botocore.eventstream import EventStreamBuffer  # type: ignore[import-untyped,unused-ignore]
from chatmodels import ChatResponse, FinishReason, Message, ReasoningPart, TextPart, ToolCall
from chatmodels.testing import (
    RecordedInteraction,
    RecordedRequest,
    RecordedResponse,
    ReplayServer,
    assert_bodies_equivalent,
    load_cassette,
)
from replay_helpers import assert_secret_hidden, cassette_dirs, new_model, replay_each

SHARED, OWN = cassette_dirs("bedrock")
ACCESS_KEY = "AKIDFAKEEXAMPLE00000"
SECRET_KEY = "fake/secret/key/for/tests/0000000000000"
BEARER = "ABSKfake-bedrock-api-key-1234567890"


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake static credentials and region; nothing read from the real machine's AWS setup."""
    for name in (
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_DEFAULT_REGION",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _model(server: ReplayServer, **options: Any) -> chatmodels.ChatModel:
    return new_model("bedrock", server.base_url, **options)


def _model_id(inter: RecordedInteraction) -> str:
    """The model id in a recorded ``/model/{modelId}/converse[-stream]`` path."""
    return unquote(inter.request.path.split("/")[2])


def _call_args(body: dict[str, Any]) -> tuple[list[Message], dict[str, Any]]:
    """The invoke arguments that should produce the recorded Converse `body`."""
    messages: list[Message] = []
    params: dict[str, Any] = {}
    system = body.get("system") or []
    if all(set(block) == {"text"} for block in system):
        messages.extend(Message.system(block["text"]) for block in system)
    else:  # cache points and guard content travel as provider_specific passthrough
        params["provider_specific"] = {"system": system}
    for msg in body["messages"]:
        blocks = msg["content"]
        text = "".join(b["text"] for b in blocks if "text" in b)
        calls = [
            ToolCall(b["toolUse"]["toolUseId"], b["toolUse"]["name"], b["toolUse"]["input"])
            for b in blocks
            if "toolUse" in b
        ]
        results = [b["toolResult"] for b in blocks if "toolResult" in b]
        if results:
            for result in results:
                (item,) = result["content"]
                content = item["json"] if "json" in item else item["text"]
                messages.append(Message.tool(result["toolUseId"], content))
        elif msg["role"] == "assistant":
            messages.append(Message.assistant(text, calls))
        else:
            messages.append(Message.user(text))
    names = {"maxTokens": "max_tokens", "temperature": "temperature", "topP": "top_p"}
    for key, value in (body.get("inferenceConfig") or {}).items():
        params["stop" if key == "stopSequences" else names[key]] = value
    tools = (body.get("toolConfig") or {}).get("tools")
    if tools:
        params["tools"] = [
            {
                "name": t["toolSpec"]["name"],
                "description": t["toolSpec"].get("description", ""),
                "parameters": t["toolSpec"]["inputSchema"]["json"],
            }
            for t in tools
        ]
    return messages, params


def _usage_of(raw: dict[str, Any]) -> chatmodels.Usage:
    return chatmodels.Usage(
        raw["inputTokens"],
        raw["outputTokens"],
        raw["totalTokens"],
        cache_read_input_tokens=raw.get("cacheReadInputTokens"),
        cache_creation_input_tokens=raw.get("cacheWriteInputTokens"),
    )


def _expected(data: dict[str, Any]) -> dict[str, Any]:
    """What a recorded ConverseResponse says, read independently of the adapter."""
    blocks = data["output"]["message"]["content"]
    return {
        "text": "".join(b["text"] for b in blocks if "text" in b),
        "calls": [
            (b["toolUse"]["toolUseId"], b["toolUse"]["name"], b["toolUse"]["input"])
            for b in blocks
            if "toolUse" in b
        ],
        "raw_finish": data["stopReason"],
        "usage": _usage_of(data["usage"]),
    }


def _stream_expected(body: bytes) -> dict[str, Any]:
    """What a recorded event stream says, decoded here with botocore directly."""
    buffer = EventStreamBuffer()
    buffer.add_data(body)
    text: list[str] = []
    calls: dict[int, list[Any]] = {}
    finish = usage = None
    for message in buffer:
        kind = message.headers[":event-type"]
        data = json.loads(message.payload)
        if kind == "contentBlockStart":
            use = data["start"]["toolUse"]
            calls[data["contentBlockIndex"]] = [use["toolUseId"], use["name"], ""]
        elif kind == "contentBlockDelta":
            delta = data["delta"]
            if "text" in delta:
                text.append(delta["text"])
            else:
                calls[data["contentBlockIndex"]][2] += delta["toolUse"]["input"]
        elif kind == "messageStop":
            finish = data["stopReason"]
        elif kind == "metadata":
            usage = _usage_of(data["usage"])
    return {
        "text": "".join(text),
        "calls": [(i, n, json.loads(a)) for i, n, a in (calls[k] for k in sorted(calls))],
        "raw_finish": finish,
        "usage": usage,
    }


# Converse stop reasons and what they mean, per the API reference.
_NORMALIZED = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
}


def _check(response: ChatResponse, expected: dict[str, Any]) -> None:
    assert response.provider == "bedrock"
    assert response.id is None  # Converse replies carry no id
    assert response.model is None  # nor the model's name
    assert response.text == expected["text"]
    assert [(c.id, c.name, dict(c.arguments)) for c in response.tool_calls] == expected["calls"]
    assert response.raw_finish_reason == expected["raw_finish"]
    assert response.finish_reason is _NORMALIZED[expected["raw_finish"]]
    assert response.usage == expected["usage"]


def _verify_signature(received: Any, host: str) -> None:
    """Recompute the SigV4 signature over what the server received (the headers the
    Authorization header says were signed) and compare it with the one sent."""
    auth = received.headers["authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
    assert "/us-east-1/bedrock/aws4_request" in auth
    fields = dict(
        part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 ") :].split(",")
    )
    signed = fields["SignedHeaders"].split(";")
    assert {"host", "x-amz-date", "content-type"} <= set(signed)
    request = AWSRequest(
        method=received.method,
        url=f"http://{host}{received.path}",
        data=received.body,
        headers={name: received.headers[name] for name in signed},
    )
    request.context["timestamp"] = received.headers["x-amz-date"]
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "bedrock", "us-east-1")
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    assert fields["Signature"] == signature


NON_STREAMED = [
    SHARED / "converse_with_content.yaml",
    SHARED / "converse_tool_call_with_content.yaml",
    OWN / "converse_cache_tokens.yaml",
]


@pytest.mark.parametrize("cassette", NON_STREAMED, ids=lambda p: p.name)
def test_invoke_replays_the_recording(cassette: Path) -> None:
    # The tool-call recording is a conversation: the second turn sends the results back.
    interactions = load_cassette(cassette)

    def invoke(model: chatmodels.ChatModel, inter: RecordedInteraction) -> ChatResponse:
        messages, params = _call_args(inter.request.json)
        return model.invoke(messages, model=_model_id(inter), **params)

    server, responses = replay_each(interactions, _model, invoke)
    for inter, received, response in zip(interactions, server.requests, responses, strict=True):
        assert received.method == inter.request.method == "POST"
        assert unquote(received.path) == unquote(inter.request.path)
        assert received.path == inter.request.path  # the model id percent-encoded as AWS does
        assert received.headers["content-type"] == "application/json"
        assert_bodies_equivalent(inter.request.json, received.json)
        _verify_signature(received, f"127.0.0.1:{server.port}")
        _check(response, _expected(json.loads(inter.response.body)))
        assert response.latency is not None
        assert response.latency > 0


def test_recorded_values_spelled_out() -> None:
    with (
        ReplayServer.from_cassette(SHARED / "converse_tool_call_with_content.yaml") as server,
        _model(server) as model,
    ):
        messages, params = _call_args(server.interactions[0].request.json)
        first = model.invoke(messages, model="amazon.nova-micro-v1:0", **params)
    assert first.finish_reason is FinishReason.TOOL_CALLS
    assert first.raw_finish_reason == "tool_use"
    assert [(c.id, c.arguments) for c in first.tool_calls] == [
        ("tooluse_tggNKJbGSrm48inRqf3Rvw", {"location": "Seattle"}),
        ("tooluse_bRV9WIcFSxyrLY6-MVkZRA", {"location": "San Francisco"}),
    ]
    assert first.text.startswith("<thinking> To provide the weather information")
    assert first.usage == chatmodels.Usage(415, 190, 605)


STREAMED = [
    SHARED / "converse_stream_with_content.yaml",
    SHARED / "converse_stream_with_content_tool_call.yaml",
    OWN / "converse_stream_cache_tokens.yaml",
]


@pytest.mark.parametrize("cassette", STREAMED, ids=lambda p: p.name)
def test_stream_replays_the_recording(cassette: Path) -> None:
    interactions = load_cassette(cassette)

    def stream(
        model: chatmodels.ChatModel, inter: RecordedInteraction
    ) -> tuple[list[chatmodels.ChatChunk], ChatResponse]:
        messages, params = _call_args(inter.request.json)
        chunks = list(model.stream(messages, model=_model_id(inter), **params))
        return chunks, chatmodels.accumulate(chunks)

    server, results = replay_each(interactions, _model, stream)
    for inter, received, (chunks, response) in zip(
        interactions, server.requests, results, strict=True
    ):
        assert received.path == inter.request.path
        assert received.path.endswith("/converse-stream")
        assert received.headers["accept"] == "application/vnd.amazon.eventstream"
        assert_bodies_equivalent(inter.request.json, received.json)
        _verify_signature(received, f"127.0.0.1:{server.port}")
        expected = _stream_expected(inter.response.body)
        _check(response, expected)
        assert chunks[-1].usage == expected["usage"]
        assert chunks[-1].raw_finish_reason == expected["raw_finish"]


def test_streamed_reply_accumulates_to_the_invoked_one() -> None:
    (inter,) = load_cassette(SHARED / "converse_stream_with_content_tool_call.yaml")[:1]
    expected = _stream_expected(inter.response.body)
    content: list[dict[str, Any]] = [{"text": expected["text"]}]
    content += [
        {"toolUse": {"toolUseId": i, "name": n, "input": a}} for i, n, a in expected["calls"]
    ]
    usage = expected["usage"]
    whole = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": expected["raw_finish"],
        "usage": {
            "inputTokens": usage.input_tokens,
            "outputTokens": usage.output_tokens,
            "totalTokens": usage.total_tokens,
        },
        "metrics": {"latencyMs": 1},
    }
    request = dataclasses.replace(
        inter.request, path=inter.request.path.replace("/converse-stream", "/converse")
    )
    plain = RecordedInteraction(request, _json_response(whole))
    messages, params = _call_args(inter.request.json)
    with ReplayServer([plain]) as server, _model(server) as model:
        invoked = model.invoke(messages, model=_model_id(inter), **params)
    with ReplayServer([inter]) as server, _model(server) as model:
        streamed = chatmodels.accumulate(model.stream(messages, model=_model_id(inter), **params))
    fields = {name: getattr(invoked, name) for name in ChatResponse.__dataclass_fields__}
    assert streamed == ChatResponse(**{**fields, "latency": None})


def test_stream_split_at_every_byte_decodes_the_same() -> None:
    (inter,) = load_cassette(SHARED / "converse_stream_with_content.yaml")
    from chatmodels._providers._bedrock import BedrockAdapter

    adapter = BedrockAdapter("bedrock", "https://example.invalid", "us-east-1")
    whole, split = adapter.new_decoder(), adapter.new_decoder()
    events = whole.feed(inter.response.body) + whole.flush()
    pieces = []
    for i in range(len(inter.response.body)):
        pieces += split.feed(inter.response.body[i : i + 1])
    assert pieces + split.flush() == events
    assert [name for _, name, _ in events] == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]


def test_async_invoke_and_astream() -> None:
    (plain,) = load_cassette(SHARED / "converse_with_content.yaml")
    streamed = load_cassette(SHARED / "converse_stream_with_content_tool_call.yaml")[0]

    async def run(one: ReplayServer, two: ReplayServer) -> tuple[ChatResponse, ChatResponse]:
        async with _model(one) as m1, _model(two) as m2:
            messages, params = _call_args(plain.request.json)
            invoked = await m1.ainvoke(messages, model=_model_id(plain), **params)
            messages, params = _call_args(streamed.request.json)
            chunks = [c async for c in m2.astream(messages, model=_model_id(streamed), **params)]
            return invoked, chatmodels.accumulate(chunks)

    with ReplayServer([plain]) as one, ReplayServer([streamed]) as two:
        invoked, accumulated = asyncio.run(run(one, two))
        one.check_requests()
        two.check_requests()
    _check(invoked, _expected(json.loads(plain.response.body)))
    _check(accumulated, _stream_expected(streamed.response.body))
    _verify_signature(one.requests[0], f"127.0.0.1:{one.port}")
    assert_bodies_equivalent(streamed.request.json, two.requests[0].json)


# -- errors ------------------------------------------------------------------------------------


def _recorded_error(inter: RecordedInteraction) -> tuple[str, str]:
    headers = {k.lower(): v for k, v in inter.response.headers}
    return headers["x-amzn-requestid"], json.loads(inter.response.body)["message"]


@pytest.mark.parametrize(
    ("cassette", "error_class", "code"),
    [
        (SHARED / "converse_with_invalid_model.yaml", chatmodels.BadRequestError, "bad_request"),
        (OWN / "converse_throttling.yaml", chatmodels.RateLimitError, "rate_limited"),
        (
            OWN / "converse_access_denied.yaml",
            chatmodels.PermissionDeniedError,
            "permission_denied",
        ),
        (
            OWN / "converse_input_too_long.yaml",
            chatmodels.ContextLengthExceededError,
            "context_length_exceeded",
        ),
        (OWN / "converse_invalid_token.yaml", chatmodels.AuthenticationError, "authentication"),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else None,
)
def test_error_recordings_map_to_codes(
    cassette: Path, error_class: type[chatmodels.ChatModelError], code: str
) -> None:
    (inter,) = load_cassette(cassette)
    messages, params = _call_args(inter.request.json)
    with (
        ReplayServer([inter]) as server,
        _model(server) as model,
        pytest.raises(error_class) as caught,
    ):
        model.invoke(messages, model=_model_id(inter), **params)
    error = caught.value
    request_id, message = _recorded_error(inter)
    assert error.code.value == code
    assert error.status_code == inter.response.status
    assert error.request_id == request_id
    assert message in str(error)
    exception_name = dict(inter.response.headers)["x-amzn-ErrorType"].partition(":")[0]
    assert exception_name in str(error)
    assert error.provider == "bedrock"
    assert_secret_hidden(SECRET_KEY, error)
    assert_bodies_equivalent(inter.request.json, server.requests[0].json)


def test_in_stream_exception_raises_with_its_code_after_the_text_so_far() -> None:
    (inter,) = load_cassette(OWN / "converse_stream_exception.yaml")
    chunks: list[chatmodels.ChatChunk] = []
    messages, params = _call_args(inter.request.json)
    with (
        ReplayServer([inter]) as server,
        _model(server) as model,
        pytest.raises(chatmodels.RateLimitError) as caught,
    ):
        chunks.extend(model.stream(messages, model=_model_id(inter), **params))
    assert "".join(c.text for c in chunks) == "Hello"
    assert caught.value.code is chatmodels.ErrorCode.RATE_LIMITED
    assert "throttlingException" in str(caught.value)
    assert "Too many tokens, please wait before trying again." in str(caught.value)


def test_event_stream_cut_inside_a_frame_is_a_network_error() -> None:
    # Cut short (the connection closed early): retryable, the chunks before it delivered.
    (inter,) = load_cassette(SHARED / "converse_stream_with_content.yaml")
    cut = RecordedInteraction(
        inter.request,
        RecordedResponse(
            200, "OK", inter.response.headers, inter.response.body[: len(inter.response.body) - 7]
        ),
    )
    chunks: list[chatmodels.ChatChunk] = []
    with (
        ReplayServer([cut]) as server,
        _model(server) as model,
        pytest.raises(chatmodels.NetworkError, match="before its end marker") as caught,
    ):
        chunks.extend(model.stream("Say this is a test", model=_model_id(inter)))
    assert "inside a frame" in str(caught.value.__cause__)
    assert chunks  # delivered before the cut


def test_corrupted_frame_is_an_invalid_response() -> None:
    (inter,) = load_cassette(SHARED / "converse_stream_with_content.yaml")
    body = bytearray(inter.response.body)
    body[40] ^= 0xFF  # inside the first frame's headers: its CRC no longer matches
    bad = RecordedInteraction(
        inter.request, RecordedResponse(200, "OK", inter.response.headers, bytes(body))
    )
    with (
        ReplayServer([bad]) as server,
        _model(server) as model,
        pytest.raises(chatmodels.InvalidResponseError, match="cannot decode the event stream"),
    ):
        list(model.stream("Say this is a test", model=_model_id(inter)))


# -- authentication, region, metadata ----------------------------------------------------------


def test_bedrock_api_key_is_sent_as_bearer_instead_of_sigv4(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", BEARER)
    (inter,) = load_cassette(SHARED / "converse_with_content.yaml")
    with ReplayServer([inter]) as server, _model(server) as model:
        messages, params = _call_args(inter.request.json)
        model.invoke(messages, model=_model_id(inter), **params)
        assert BEARER not in repr(model)
        assert BEARER not in repr(model.options)
    (received,) = server.requests
    assert received.headers["authorization"] == f"Bearer {BEARER}"
    assert "x-amz-date" not in received.headers
    assert_bodies_equivalent(inter.request.json, received.json)


def test_bearer_key_never_appears_in_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    (inter,) = load_cassette(OWN / "converse_access_denied.yaml")
    with (
        ReplayServer([inter]) as server,
        _model(server, api_key=BEARER) as model,
        pytest.raises(chatmodels.PermissionDeniedError) as caught,
    ):
        model.invoke("Say this is a test", model="amazon.nova-micro-v1:0")
    assert_secret_hidden(BEARER, caught.value)
    assert server.requests[0].headers["authorization"] == f"Bearer {BEARER}"


def test_session_token_is_signed_and_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "fake-session-token")
    (inter,) = load_cassette(SHARED / "converse_with_content.yaml")
    with ReplayServer([inter]) as server, _model(server) as model:
        model.invoke("Say this is a test", model=_model_id(inter))
    headers = server.requests[0].headers
    assert headers["x-amz-security-token"] == "fake-session-token"
    assert "x-amz-security-token" in headers["authorization"]


def test_region_option_and_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    model = chatmodels.new_registry_provider("bedrock", {"region": "eu-west-3"})
    assert model.base_url == "https://bedrock-runtime.eu-west-3.amazonaws.com"  # type: ignore[attr-defined]
    model.close()
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    with chatmodels.new_registry_provider("bedrock") as model:
        assert model.base_url == "https://bedrock-runtime.ap-south-1.amazonaws.com"  # type: ignore[attr-defined]


def test_missing_region_is_invalid_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    with pytest.raises(chatmodels.InvalidConfigError, match="region"):
        chatmodels.new_registry_provider("bedrock")


def test_missing_credentials_is_an_authentication_error_before_sending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    (inter,) = load_cassette(SHARED / "converse_with_content.yaml")
    with (
        ReplayServer([inter]) as server,
        _model(server) as model,
        pytest.raises(chatmodels.AuthenticationError, match="no AWS credentials"),
    ):
        model.invoke("Say this is a test", model=_model_id(inter))
    assert server.requests == []


def test_metadata_is_truthful() -> None:
    meta = chatmodels.get_provider_metadata("bedrock")
    assert meta.gen_ai_provider_name == "aws.bedrock"
    assert meta.api_key_env == "AWS_BEARER_TOKEN_BEDROCK"
    assert meta.required_options == ()
    assert meta.default_base_url == "https://bedrock-runtime.{region}.amazonaws.com"
    assert not meta.supports(chatmodels.Capability.JSON_MODE)  # Converse has json_schema only
    assert meta.supports(chatmodels.Capability.STRUCTURED_OUTPUT)
    assert not meta.supports_health_check


def test_health_is_unknown_without_a_probe() -> None:
    with chatmodels.new_registry_provider("bedrock", {"base_url": "http://127.0.0.1:9"}) as model:
        status = model.health_check(timeout=1)
    assert status.status == "unknown"


def test_unsupported_params_are_refused_before_sending() -> None:
    with (
        chatmodels.new_registry_provider("bedrock", {"base_url": "http://127.0.0.1:9"}) as model,
        pytest.raises(chatmodels.CapabilityNotSupportedError, match="seed"),
    ):
        model.invoke("hi", seed=1)


# -- request building --------------------------------------------------------------------------


def _json_response(data: dict[str, Any]) -> RecordedResponse:
    return RecordedResponse(
        200, "OK", (("Content-Type", "application/json"),), json.dumps(data).encode()
    )


def _sent_body(reply: str = "ok", **params: Any) -> dict[str, Any]:
    """The body the model sends for `params` (captured by a loopback server)."""
    (inter,) = load_cassette(SHARED / "converse_with_content.yaml")
    whole = {
        "output": {"message": {"role": "assistant", "content": [{"text": reply}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
        "metrics": {"latencyMs": 1},
    }
    messages = params.pop("messages", "Say this is a test")
    with (
        ReplayServer([RecordedInteraction(inter.request, _json_response(whole))]) as server,
        _model(server) as model,
    ):
        response = model.invoke(messages, model=_model_id(inter), **params)
    if "response_format" in params:
        assert response.parsed == json.loads(reply)
    body: dict[str, Any] = server.requests[0].json
    return body


def test_system_prompt_and_merged_tool_results() -> None:
    call = ToolCall("t1", "lookup", {"q": "x"})
    call2 = ToolCall("t2", "lookup", {"q": "y"})
    body = _sent_body(
        messages=[
            Message.system("Be brief."),
            Message.user("Look up x and y"),
            Message.assistant("", [call, call2]),
            Message.tool("t1", {"found": 1}),
            Message.tool("t2", "plain text result"),
            Message.user("Thanks, and?"),
        ]
    )
    assert body["system"] == [{"text": "Be brief."}]
    assert body["messages"] == [
        {"role": "user", "content": [{"text": "Look up x and y"}]},
        {
            "role": "assistant",
            "content": [
                {"toolUse": {"toolUseId": "t1", "name": "lookup", "input": {"q": "x"}}},
                {"toolUse": {"toolUseId": "t2", "name": "lookup", "input": {"q": "y"}}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "t1", "content": [{"json": {"found": 1}}]}},
                {"toolResult": {"toolUseId": "t2", "content": [{"text": "plain text result"}]}},
                {"text": "Thanks, and?"},
            ],
        },
    ]


def test_tool_choice_and_structured_output_shapes() -> None:
    tool = {"name": "f", "parameters": {"type": "object", "properties": {}}}
    assert _sent_body(tools=[tool], tool_choice="required")["toolConfig"]["toolChoice"] == {
        "any": {}
    }
    assert _sent_body(tools=[tool], tool_choice="auto")["toolConfig"]["toolChoice"] == {"auto": {}}
    assert _sent_body(tools=[tool], tool_choice="f")["toolConfig"]["toolChoice"] == {
        "tool": {"name": "f"}
    }
    with pytest.raises(chatmodels.CapabilityNotSupportedError, match="none"):
        _sent_body(tools=[tool], tool_choice="none")
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    body = _sent_body(
        '{"a": 1}',
        response_format={"type": "json_schema", "json_schema": {"name": "A", "schema": schema}},
    )
    fmt = body["outputConfig"]["textFormat"]
    assert fmt["type"] == "json_schema"
    assert fmt["structure"]["jsonSchema"]["name"] == "A"
    assert json.loads(fmt["structure"]["jsonSchema"]["schema"]) == schema
    with pytest.raises(chatmodels.CapabilityNotSupportedError):
        _sent_body(response_format={"type": "json_object"})


def test_images_as_bytes_or_s3_and_provider_specific_passthrough() -> None:
    png = chatmodels.ImagePart.from_bytes(b"\x89PNG fake", "image/png")
    s3 = chatmodels.ImagePart(url="s3://bucket/cat.JPG")
    body = _sent_body(
        messages=[Message.user([chatmodels.TextPart("What is it?"), png, s3])],
        provider_specific={"additionalModelRequestFields": {"top_k": 5}},
    )
    assert body["messages"][0]["content"] == [
        {"text": "What is it?"},
        {"image": {"format": "png", "source": {"bytes": png.data}}},
        {"image": {"format": "jpeg", "source": {"s3Location": {"uri": "s3://bucket/cat.JPG"}}}},
    ]
    assert body["additionalModelRequestFields"] == {"top_k": 5}
    with pytest.raises(chatmodels.InvalidConfigError, match="s3://"):
        _sent_body(messages=[Message.user([chatmodels.ImagePart(url="https://x/cat.png")])])


# -- reasoning ------------------------------------------------------------------------------
# Written from the Bedrock Runtime API reference (Converse: ContentBlock.reasoningContent, a
# ReasoningContentBlock of reasoningText {text, signature} or redactedContent (a blob,
# base64 in JSON); ConverseStream: contentBlockDelta.delta.reasoningContent, a
# ReasoningContentBlockDelta of text, signature or redactedContent), not recorded: Claude
# 3.7 Sonnet with thinking enabled through additionalModelRequestFields.

REASONING_MODEL = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
REASONING_THOUGHT = "17*19: 17*20 = 340, minus 17 is 323."
REASONING_SIGNATURE = "EqoBCkgIARABGAIiQBqlm2Lx4bcRiZ5nUHl0bnRoZXRpYy1zaWduYXR1cmU="
REASONING_USAGE = {"inputTokens": 52, "outputTokens": 97, "totalTokens": 149}
REASONING_PARAMS = {
    "provider_specific": {
        "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    },
    "max_tokens": 2048,
}


def _frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """One AWS event stream message (prelude, string headers, JSON payload, CRC32s)."""
    headers = b""
    for name, value in (
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ):
        raw = value.encode()
        headers += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(raw)) + raw
    body = json.dumps(payload).encode()
    prelude = struct.pack(">II", 12 + len(headers) + len(body) + 4, len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + body
    return message + struct.pack(">I", zlib.crc32(message))


def _reasoning_delta(**delta: str) -> bytes:
    return _frame(
        "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": delta}}
    )


REASONING_STREAM = b"".join(
    [
        _frame("messageStart", {"role": "assistant"}),
        _reasoning_delta(text="17*19: 17*20 = 340,"),
        _reasoning_delta(text=" minus 17 is 323."),
        _reasoning_delta(signature=REASONING_SIGNATURE),
        _frame("contentBlockStop", {"contentBlockIndex": 0}),
        _frame("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "17 \u00d7 19"}}),
        _frame("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": " = 323."}}),
        _frame("contentBlockStop", {"contentBlockIndex": 1}),
        _frame("messageStop", {"stopReason": "end_turn"}),
        _frame("metadata", {"usage": REASONING_USAGE, "metrics": {"latencyMs": 2150}}),
    ]
)


def _converse_reply(path: str, response: RecordedResponse) -> RecordedInteraction:
    return RecordedInteraction(
        RecordedRequest("POST", "http://x" + path, path, {}, b"", None), response
    )


def _whole_reasoning(content: list[dict[str, Any]]) -> RecordedResponse:
    return _json_response(
        {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": "end_turn",
            "usage": REASONING_USAGE,
            "metrics": {"latencyMs": 2150},
        }
    )


def test_reasoning_whole_and_streamed() -> None:
    path = "/model/" + REASONING_MODEL.replace(":", "%3A")
    whole = _whole_reasoning(
        [
            {
                "reasoningContent": {
                    "reasoningText": {"text": REASONING_THOUGHT, "signature": REASONING_SIGNATURE}
                }
            },
            {"text": "17 \u00d7 19 = 323."},
        ]
    )
    streamed = RecordedResponse(
        200, "OK", (("Content-Type", "application/vnd.amazon.eventstream"),), REASONING_STREAM
    )
    interactions = [
        _converse_reply(path + "/converse", whole),
        _converse_reply(path + "/converse-stream", streamed),
    ]
    with ReplayServer(interactions) as server, _model(server) as model:
        invoked = model.invoke("What is 17*19?", model=REASONING_MODEL, **REASONING_PARAMS)
        chunks = list(model.stream("What is 17*19?", model=REASONING_MODEL, **REASONING_PARAMS))
    server.check_requests()
    for sent in server.requests:
        assert sent.json["additionalModelRequestFields"] == {
            "thinking": {"type": "enabled", "budget_tokens": 1024}
        }
    assert invoked.message.content == (
        ReasoningPart(REASONING_THOUGHT, REASONING_SIGNATURE),
        TextPart("17 \u00d7 19 = 323."),
    )
    assert (invoked.text, invoked.reasoning) == ("17 \u00d7 19 = 323.", REASONING_THOUGHT)
    assert invoked.usage == chatmodels.Usage(52, 97, 149)
    assert [
        (c.reasoning, c.reasoning_signature, c.text) for c in chunks if not c.finish_reason
    ] == [
        ("17*19: 17*20 = 340,", None, ""),
        (" minus 17 is 323.", None, ""),
        ("", REASONING_SIGNATURE, ""),
        ("", None, "17 \u00d7 19"),
        ("", None, " = 323."),
    ]
    accumulated = chatmodels.accumulate(chunks)
    assert accumulated == dataclasses.replace(invoked, latency=None)


def test_redacted_reasoning_is_kept_whole() -> None:
    path = "/model/" + REASONING_MODEL.replace(":", "%3A") + "/converse"
    whole = _whole_reasoning(
        [
            {"reasoningContent": {"redactedContent": "RXhhbXBsZSByZWRhY3RlZCBkYXRh"}},
            {"text": "Done."},
        ]
    )
    with ReplayServer([_converse_reply(path, whole)]) as server, _model(server) as model:
        response = model.invoke("Hi", model=REASONING_MODEL)
    assert response.message.content == (
        ReasoningPart(redacted="RXhhbXBsZSByZWRhY3RlZCBkYXRh"),
        TextPart("Done."),
    )
    assert (response.text, response.reasoning) == ("Done.", "")


def test_a_reply_with_reasoning_goes_back_as_reasoning_content() -> None:
    """The invoked reply's message sent back as is: its signed reasoningContent first."""
    path = "/model/" + REASONING_MODEL.replace(":", "%3A") + "/converse"
    first = _whole_reasoning(
        [
            {
                "reasoningContent": {
                    "reasoningText": {"text": REASONING_THOUGHT, "signature": REASONING_SIGNATURE}
                }
            },
            {"text": "323"},
        ]
    )
    second = _whole_reasoning([{"text": "Yes."}])
    interactions = [_converse_reply(path, first), _converse_reply(path, second)]
    with ReplayServer(interactions) as server, _model(server) as model:
        answer = model.invoke("What is 17*19?", model=REASONING_MODEL)
        history = [Message.user("What is 17*19?"), answer.message, Message.user("Sure?")]
        model.invoke(history, model=REASONING_MODEL)
    assert server.requests[1].json["messages"][1] == {
        "role": "assistant",
        "content": [
            {
                "reasoningContent": {
                    "reasoningText": {"text": REASONING_THOUGHT, "signature": REASONING_SIGNATURE}
                }
            },
            {"text": "323"},
        ],
    }
