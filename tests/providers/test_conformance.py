"""The cases every wire format shares, run over each one: a valid reply and a valid stream
through invoke, stream, ainvoke and astream (tests/providers/wire_shapes.py), HTTP errors
mapped to the same codes, the planted API key never shown; then every provider's recordings
(../shared/cassettes and tests/cassettes) replayed sync and async, with equal outcomes.

What is specific to a wire format (its fields, its events, what goes on the wire) stays in
its own tests/providers/test_chat_<provider>.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import chatmodels
import pytest
from chatmodels import ChatModelError, ErrorCode
from chatmodels.testing import RecordedInteraction, ReplayServer, load_cassette
from replay_helpers import OWN_CASSETTES, SHARED_CASSETTES, assert_secret_hidden, new_model
from wire_shapes import FORMATS, WireFormat, check_chunks, check_response

SECRET = "sk-planted-CONFORMANCE-0123456789"
MODES = ("invoke", "stream", "ainvoke", "astream")
# The code of an HTTP error status, the same for every wire format.
STATUS_CODES = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.AUTHENTICATION,
    403: ErrorCode.PERMISSION_DENIED,
    404: ErrorCode.BAD_REQUEST,
    429: ErrorCode.RATE_LIMITED,
    500: ErrorCode.PROVIDER_UNAVAILABLE,
    503: ErrorCode.PROVIDER_UNAVAILABLE,
}


def _call(model: chatmodels.ChatModel, mode: str, model_name: str) -> chatmodels.ChatResponse:
    """One call in `mode`; a stream comes back accumulated (its chunks checked on the way)."""
    if mode == "invoke":
        return model.invoke("hi", model=model_name)
    if mode == "stream":
        chunks = list(model.stream("hi", model=model_name))
        check_chunks(chunks)
        return chatmodels.accumulate(chunks)

    async def run() -> chatmodels.ChatResponse:
        async with model:
            if mode == "ainvoke":
                return await model.ainvoke("hi", model=model_name)
            chunks = [c async for c in model.astream("hi", model=model_name)]
            check_chunks(chunks)
            return chatmodels.accumulate(chunks)

    return asyncio.run(run())


def _fields(response: chatmodels.ChatResponse) -> tuple[Any, ...]:
    """What a response says, for comparing the modes' results."""
    calls = [(c.id, c.name, dict(c.arguments)) for c in response.tool_calls]
    return (
        response.text,
        response.reasoning,
        calls,
        response.finish_reason,
        response.raw_finish_reason,
        response.usage,
        response.id,
        response.model,
    )


def _texts(exc: BaseException) -> Iterator[object]:
    """The error, its args and every chained cause or context."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        yield from current.args
        current = current.__cause__ or current.__context__


def _format_model(wire: WireFormat, base_url: str) -> chatmodels.ChatModel:
    """The format's model, with the planted key as its API key."""
    return new_model(wire.provider, base_url, **{**wire.options, "api_key": SECRET})


@pytest.fixture(autouse=True)
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake static AWS credentials, nothing read from the machine (for bedrock)."""
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN",
                 "AWS_BEARER_TOKEN_BEDROCK", "AWS_WEB_IDENTITY_TOKEN_FILE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


# -- each wire format's valid reply and stream, errors and the secret ------------------------


@pytest.mark.parametrize("wire", FORMATS, ids=str)
def test_valid_reply_and_stream_in_every_mode(wire: WireFormat) -> None:
    """invoke and ainvoke of the valid reply agree, stream and astream of the valid stream
    agree; each is well-typed, has text, and was asked for at the format's path."""
    results: dict[str, tuple[Any, ...]] = {}
    for mode in MODES:
        streamed = "stream" in mode
        with ReplayServer([wire.good(stream=streamed)]) as server:
            with _format_model(wire, server.base_url) as model:
                response = _call(model, mode, wire.model)
            server.check_requests()
        (request,) = server.requests
        assert request.method == "POST"
        assert request.path == (wire.stream_path if streamed else wire.invoke_path)
        check_response(response)
        assert response.text
        assert_secret_hidden(SECRET, response, *response.tool_calls)
        results[mode] = _fields(response)
    assert results["ainvoke"] == results["invoke"]
    assert results["astream"] == results["stream"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("status", sorted(STATUS_CODES))
@pytest.mark.parametrize("wire", FORMATS, ids=str)
def test_http_errors_map_to_codes_and_hide_the_key(
    wire: WireFormat, status: int, mode: str
) -> None:
    """An HTTP error status gives its code in every mode and format; the reply echoes the key
    the call sent, and the error shows it nowhere (message, args, causes, repr). The error
    names the call it came from."""
    echo = f"Incorrect API key provided: {SECRET}"
    body = json.dumps({"error": {"message": echo, "type": "x", "code": SECRET}, "message": echo})
    inter = wire.interaction(body.encode(), stream="stream" in mode, status=status)
    with ReplayServer([inter]) as server, _format_model(wire, server.base_url) as model:
        with pytest.raises(ChatModelError) as caught:
            _call(model, mode, wire.model)
        server.check_requests()
    error = caught.value
    assert error.code is STATUS_CODES[status], (error.code, error)
    assert error.op == mode
    assert str(error).startswith(f"chatmodels.{mode}: ")
    assert_secret_hidden(SECRET, *_texts(error))


# -- every provider's recordings --------------------------------------------------------------

_STREAM_TYPES = ("text/event-stream", "application/x-ndjson", "application/vnd.amazon.eventstream")


def _chat_calls(interactions: list[RecordedInteraction]) -> list[RecordedInteraction]:
    """The chat calls of a recording (a POST each)."""
    return [inter for inter in interactions if inter.request.method == "POST"]


def _recordings() -> list[Any]:
    cases = []
    registered = set(chatmodels.list_providers())
    for root in (SHARED_CASSETTES, OWN_CASSETTES):
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if folder.name not in registered:
                continue
            for path in sorted(folder.glob("*.yaml")):
                if not _chat_calls(load_cassette(path)):
                    continue  # a health probe's recording (GET /v1/models): no chat call
                own = "" if root == SHARED_CASSETTES else "own:"
                cases.append(pytest.param(folder.name, path, id=f"{own}{folder.name}/{path.stem}"))
    return cases


def _is_stream(inter: RecordedInteraction) -> bool:
    body = inter.request.json if isinstance(inter.request.json, dict) else {}
    if body.get("stream") is True or "stream" in inter.request.path.lower():
        return True
    ctype = next((v for k, v in inter.response.headers if k.lower() == "content-type"), "")
    return ctype.split(";")[0].strip() in _STREAM_TYPES


def _request_model(inter: RecordedInteraction) -> str:
    body = inter.request.json if isinstance(inter.request.json, dict) else {}
    if isinstance(body.get("model"), str):
        return str(body["model"])
    path = unquote(urlsplit(inter.request.path).path)
    if "/models/" in path:  # gemini: /v1beta/models/{model}:generateContent
        return path.split("/models/")[1].split(":")[0]
    return path.split("/")[2]  # bedrock: /model/{modelId}/converse


def _provider_of(provider: str, inter: RecordedInteraction) -> tuple[str, dict[str, str]]:
    """The provider serving `inter` (a Vertex AI path is vertex_ai's) and its options."""
    parts = urlsplit(inter.request.path).path.split("/")
    if "projects" in parts and "locations" in parts:
        project = parts[parts.index("projects") + 1]
        location = parts[parts.index("locations") + 1]
        return "vertex_ai", {"project": project, "location": location}
    return provider, {}


def _outcome(
    provider: str, inter: RecordedInteraction, mode: str
) -> chatmodels.ChatResponse | ChatModelError:
    """Replay `inter` alone and make the call in `mode`: the response, or the error raised."""
    provider, extra = _provider_of(provider, inter)
    meta = chatmodels.get_provider_metadata(provider)
    prefix = urlsplit(meta.default_base_url or "").path.rstrip("/")
    with ReplayServer([inter]) as server:
        options = {"api_key": SECRET, "base_url": server.base_url + prefix, "max_retries": 0}
        model = chatmodels.new_registry_provider(provider, {**options, **extra})
        try:
            with model:
                return _call(model, mode, _request_model(inter))
        except ChatModelError as exc:
            return exc
        finally:
            server.check_requests()


def _summary(outcome: chatmodels.ChatResponse | ChatModelError) -> tuple[Any, ...]:
    if isinstance(outcome, ChatModelError):
        return (type(outcome), outcome.code)
    return _fields(outcome)


@pytest.mark.parametrize(("provider", "cassette"), _recordings())
def test_recording_replays_alike_sync_and_async(provider: str, cassette: Path) -> None:
    """Each recorded exchange: an error status raises a ChatModelError with a code (the same
    async), a success parses to a well-typed response (the same async); the key the call
    sent is in neither."""
    interactions = _chat_calls(load_cassette(cassette))
    assert interactions
    for inter in interactions:
        sync, async_ = ("stream", "astream") if _is_stream(inter) else ("invoke", "ainvoke")
        outcomes = [_outcome(provider, inter, mode) for mode in (sync, async_)]
        if inter.response.status >= 400:
            assert all(isinstance(o, ChatModelError) for o in outcomes), outcomes
        for outcome in outcomes:
            if isinstance(outcome, ChatModelError):
                assert isinstance(outcome.code, ErrorCode)
                assert isinstance(outcome.op, str)
                assert outcome.op
                assert_secret_hidden(SECRET, *_texts(outcome))
            else:
                check_response(outcome)
                assert_secret_hidden(SECRET, outcome)
        assert _summary(outcomes[1]) == _summary(outcomes[0]), (sync, async_)


def test_every_wire_format_and_recorded_provider_is_covered() -> None:
    """A new wire format or recorded provider joins the harness, not only its own file."""
    builtin_formats = {"openai", "anthropic", "gemini", "ollama", "bedrock", "cohere", "mistral"}
    assert {wire.provider for wire in FORMATS} == builtin_formats
    recorded = {p.name for p in SHARED_CASSETTES.iterdir() if p.is_dir()}
    covered = {param.values[0] for param in _recordings()}
    assert recorded <= covered
