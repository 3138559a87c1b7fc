"""The loopback servers of `chatmodels.testing`, driven by plain http.client and aiohttp."""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from chatmodels.testing import (
    OpenAICompatibleServer,
    ReceivedRequest,
    ReplayServer,
    ScriptedError,
    ScriptedReply,
    ScriptedToolCall,
    assert_bodies_equivalent,
    load_cassette,
)

CASSETTES = Path(__file__).parents[3] / "shared" / "cassettes"
CHAT = "/v1/chat/completions"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-test", "messages": [{"role": "user", "content": "hello there"}], **extra}


def post(
    conn: http.client.HTTPConnection, body: Any, path: str = CHAT
) -> tuple[int, dict[str, str], bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", path, data, {"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def sse_events(raw: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body, checking the blank-line framing."""
    assert raw.endswith(b"\n\n")
    events = raw.decode().split("\n\n")[:-1]
    assert all(event.startswith("data: ") for event in events)
    return [event.removeprefix("data: ") for event in events]


@pytest.fixture
def server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer() as srv:
        yield srv


@pytest.fixture
def conn(server: OpenAICompatibleServer) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    yield connection
    connection.close()


# --------------------------------------------------------------------------- OpenAI-compatible


def test_base_url_and_lifecycle() -> None:
    server = OpenAICompatibleServer().start()
    try:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        assert server.port != 0
    finally:
        server.stop()
    server.stop()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection("127.0.0.1", server.port, timeout=5).connect()


def test_http_client_keep_alive_reuses_one_connection(
    server: OpenAICompatibleServer, conn: http.client.HTTPConnection
) -> None:
    for _ in range(5):
        status, _, _ = post(conn, chat_body())
        assert status == 200
    conn.request("GET", "/v1/models")
    assert conn.getresponse().read()
    assert server.connections_accepted == 1
    assert len(server.requests) == 6


def test_default_reply_is_an_openai_chat_completion(
    server: OpenAICompatibleServer, conn: http.client.HTTPConnection
) -> None:
    status, headers, raw = post(conn, chat_body())
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["x-request-id"].startswith("req_")
    body = json.loads(raw)
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "gpt-test"
    (choice,) = body["choices"]
    assert choice["message"] == {
        "role": "assistant",
        "content": "Echo: hello there",
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


def test_requests_are_recorded_with_parsed_json(
    server: OpenAICompatibleServer, conn: http.client.HTTPConnection
) -> None:
    conn.request("POST", CHAT, json.dumps(chat_body()), {"Authorization": "Bearer sk-x"})
    conn.getresponse().read()
    (request,) = server.requests
    assert request.method == "POST"
    assert request.path == CHAT
    assert request.headers["authorization"] == "Bearer sk-x"
    assert request.json == chat_body()
    server.clear_requests()
    assert server.requests == []


def test_recorded_requests_are_capped() -> None:
    with OpenAICompatibleServer(max_recorded=3) as server:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        for n in range(5):
            post(conn, chat_body(seed=n))
        conn.close()
        assert [r.json["seed"] for r in server.requests] == [2, 3, 4]


def test_scripted_queue_then_default() -> None:
    replies = [
        ScriptedReply(text="first", finish_reason="length", prompt_tokens=7, completion_tokens=1),
        ScriptedReply(text="second", model="other-model"),
    ]
    with OpenAICompatibleServer(replies) as server:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        first = json.loads(post(conn, chat_body())[2])
        second = json.loads(post(conn, chat_body())[2])
        server.enqueue(ScriptedReply(text="third"))
        third = json.loads(post(conn, chat_body())[2])
        fourth = json.loads(post(conn, chat_body())[2])
        conn.close()
    assert first["choices"][0]["message"]["content"] == "first"
    assert first["choices"][0]["finish_reason"] == "length"
    assert first["usage"] == {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}
    assert second["model"] == "other-model"
    assert third["choices"][0]["message"]["content"] == "third"
    assert fourth["choices"][0]["message"]["content"] == "Echo: hello there"


def test_reply_function_sees_the_request() -> None:
    def script(request: ReceivedRequest) -> ScriptedReply | None:
        if request.json["messages"][-1]["content"] == "ping":
            return ScriptedReply(text="pong")
        return None

    with OpenAICompatibleServer(script) as server:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        ping = chat_body(messages=[{"role": "user", "content": "ping"}])
        assert json.loads(post(conn, ping)[2])["choices"][0]["message"]["content"] == "pong"
        other = json.loads(post(conn, chat_body())[2])
        conn.close()
    assert other["choices"][0]["message"]["content"] == "Echo: hello there"


def test_sse_stream_framing_chunks_and_usage() -> None:
    text = "The quick brown fox jumps over the lazy dog, twice over."
    with OpenAICompatibleServer([ScriptedReply(text=text, chunks=20)]) as server:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        body = chat_body(stream=True, stream_options={"include_usage": True})
        status, headers, raw = post(conn, body)
        conn.close()
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["Transfer-Encoding"] == "chunked"
    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    first, *middle, finish, usage = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert len(middle) == 20
    assert "".join(c["choices"][0]["delta"]["content"] for c in middle) == text
    assert finish["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert all(c["usage"] is None for c in chunks[:-1])
    assert usage["choices"] == []
    assert usage["usage"]["total_tokens"] == usage["usage"]["prompt_tokens"] + 11


def test_stream_without_include_usage_has_no_usage(conn: http.client.HTTPConnection) -> None:
    _, _, raw = post(conn, chat_body(stream=True))
    chunks = [json.loads(event) for event in sse_events(raw)[:-1]]
    assert all("usage" not in c for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "Echo: hello there"
    assert len(chunks) == 5  # role, one delta per word, finish


def test_tool_call_reply_json_and_stream() -> None:
    call = ScriptedToolCall("get_weather", {"city": "Paris", "unit": "C"}, id="call_1")
    with OpenAICompatibleServer([ScriptedReply(tool_calls=[call])] * 2) as server:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        whole = json.loads(post(conn, chat_body(tools=TOOLS))[2])
        _, _, raw = post(conn, chat_body(tools=TOOLS, stream=True))
        conn.close()
    (choice,) = whole["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (tool_call,) = choice["message"]["tool_calls"]
    assert tool_call["id"] == "call_1"
    assert tool_call["type"] == "function"
    assert tool_call["function"]["name"] == "get_weather"
    assert json.loads(tool_call["function"]["arguments"]) == {"city": "Paris", "unit": "C"}

    deltas = [json.loads(e)["choices"][0] for e in sse_events(raw)[:-1]]
    fragments = [d["delta"]["tool_calls"][0] for d in deltas if "tool_calls" in d["delta"]]
    assert fragments[0]["id"] == "call_1"
    assert fragments[0]["function"]["name"] == "get_weather"
    assert len(fragments) == 3
    arguments = "".join(f["function"]["arguments"] for f in fragments)
    assert arguments == tool_call["function"]["arguments"]
    assert deltas[-1]["finish_reason"] == "tool_calls"


def test_tool_call_without_tools_in_the_request_is_refused() -> None:
    with OpenAICompatibleServer([ScriptedReply(tool_calls=[ScriptedToolCall("f")])]) as server:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        status, _, raw = post(conn, chat_body())
        conn.close()
    assert status == 400
    assert "tools" in json.loads(raw)["error"]["message"]


def test_error_with_retry_after_then_success() -> None:
    replies = [ScriptedError(429, "Rate limit reached", code="rate_limit_exceeded", retry_after=2)]
    with OpenAICompatibleServer(replies) as server:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        status, headers, raw = post(conn, chat_body())
        again, _, _ = post(conn, chat_body())
        conn.close()
        assert server.connections_accepted == 1  # an error response keeps the connection
    assert status == 429
    assert headers["Retry-After"] == "2"
    assert json.loads(raw) == {
        "error": {
            "message": "Rate limit reached",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert again == 200


def test_server_error_type_and_fractional_retry_after(
    server: OpenAICompatibleServer, conn: http.client.HTTPConnection
) -> None:
    server.enqueue(ScriptedError(503, "overloaded", retry_after=0.5, headers={"x-extra": "1"}))
    status, headers, raw = post(conn, chat_body())
    assert status == 503
    assert headers["Retry-After"] == "0.5"
    assert headers["x-extra"] == "1"
    assert json.loads(raw)["error"]["type"] == "server_error"


def test_api_key_is_checked() -> None:
    with OpenAICompatibleServer(api_key="sk-right") as server:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        conn.request("POST", CHAT, json.dumps(chat_body()), {"Authorization": "Bearer sk-wrong"})
        response = conn.getresponse()
        error = json.loads(response.read())["error"]
        conn.request("POST", CHAT, json.dumps(chat_body()), {"Authorization": "Bearer sk-right"})
        ok = conn.getresponse()
        ok.read()
        conn.close()
    assert response.status == 401
    assert error["code"] == "invalid_api_key"
    assert "sk-" not in error["message"]
    assert ok.status == 200


def test_models_and_unknown_routes(conn: http.client.HTTPConnection) -> None:
    conn.request("GET", "/v1/models")
    models = json.loads(conn.getresponse().read())
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["test-model"]
    conn.request("GET", "/v1/models/test-model")
    assert json.loads(conn.getresponse().read())["id"] == "test-model"
    conn.request("GET", "/v1/models/nope")
    missing = conn.getresponse()
    assert missing.status == 404
    assert json.loads(missing.read())["error"]["code"] == "model_not_found"
    assert post(conn, chat_body(), path="/v1/embeddings")[0] == 404
    conn.request("GET", CHAT)
    wrong_method = conn.getresponse()
    wrong_method.read()
    assert wrong_method.status == 405
    assert post(conn, b"not json")[0] == 400


def test_connection_close_is_honoured(server: OpenAICompatibleServer) -> None:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request("POST", CHAT, json.dumps(chat_body()), {"Connection": "close"})
    response = conn.getresponse()
    assert response.getheader("Connection") == "close"
    assert json.loads(response.read())["object"] == "chat.completion"
    conn.close()


def test_disconnect_mid_stream_and_before_a_reply() -> None:
    replies = [
        ScriptedReply(text="a b c d e f", disconnect_after=3),
        ScriptedReply(disconnect_after=0),
    ]
    with OpenAICompatibleServer(replies) as server:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        conn.request("POST", CHAT, json.dumps(chat_body(stream=True)))
        response = conn.getresponse()
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()
        assert cut.value.partial.count(b"data: ") == 3
        conn.close()
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        conn.request("POST", CHAT, json.dumps(chat_body()))
        with pytest.raises(http.client.RemoteDisconnected):
            conn.getresponse()
        conn.close()


def test_delays_keep_the_connection_usable() -> None:
    replies = [ScriptedReply(text="one two three", delay=0.05, chunk_delay=0.01)]
    with OpenAICompatibleServer(replies) as server:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        _, _, raw = post(conn, chat_body(stream=True))
        status, _, _ = post(conn, chat_body())
        conn.close()
        assert server.connections_accepted == 1
    text = "".join(
        json.loads(e)["choices"][0]["delta"].get("content", "") for e in sse_events(raw)[:-1]
    )
    assert text == "one two three"
    assert status == 200


# --------------------------------------------------------------------------- with aiohttp


def test_aiohttp_json_stream_and_keep_alive(server: OpenAICompatibleServer) -> None:
    async def run() -> tuple[dict[str, Any], list[bytes]]:
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(server.base_url + "/", connector=connector) as session:
            async with session.post("chat/completions", json=chat_body()) as response:
                whole = await response.json()
            body = chat_body(stream=True, stream_options={"include_usage": True})
            async with session.post("chat/completions", json=body) as response:
                lines = [line async for line in response.content if line.strip()]
        return whole, lines

    whole, lines = asyncio.run(run())
    assert whole["choices"][0]["message"]["content"] == "Echo: hello there"
    assert lines[-1] == b"data: [DONE]\n"
    assert json.loads(lines[-2].removeprefix(b"data: "))["usage"]["total_tokens"] == 5
    assert server.connections_accepted == 1


def test_aiohttp_sees_a_dropped_stream() -> None:
    async def run(url: str) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, json=chat_body(stream=True)) as response,
        ):
            await response.read()

    with (
        OpenAICompatibleServer([ScriptedReply(disconnect_after=1)]) as server,
        pytest.raises(aiohttp.ClientPayloadError),
    ):
        asyncio.run(run(server.base_url + "/chat/completions"))


@pytest.mark.timeout(60)
def test_thousand_concurrent_aiohttp_streams() -> None:
    count = 1000

    async def one(session: aiohttp.ClientSession, url: str, n: int) -> str:
        body = chat_body(messages=[{"role": "user", "content": f"n{n}"}], stream=True)
        async with session.post(url, json=body) as response:
            assert response.status == 200
            text = ""
            async for line in response.content:
                if line.startswith(b"data: {"):
                    text += json.loads(line[6:])["choices"][0]["delta"].get("content", "")
            return text

    async def run(url: str) -> list[str]:
        connector = aiohttp.TCPConnector(limit=count)
        async with aiohttp.ClientSession(connector=connector) as session:
            return await asyncio.gather(*(one(session, url, n) for n in range(count)))

    with OpenAICompatibleServer(max_recorded=0) as server:
        texts = asyncio.run(run(server.base_url + "/chat/completions"))
        assert server.requests == []
    assert texts == [f"Echo: n{n}" for n in range(count)]


# --------------------------------------------------------------------------- replay


def cassette_ids() -> list[Path]:
    """One cassette per provider folder, preferring a streamed one."""
    chosen = []
    for folder in sorted(p for p in CASSETTES.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.yaml"))
        streamed = [f for f in files if "stream" in f.name]
        chosen.append((streamed or files)[0])
    return chosen


def test_every_provider_folder_is_covered() -> None:
    assert {p.parent.name for p in cassette_ids()} == {
        "anthropic",
        "bedrock",
        "cohere",
        "gemini",
        "groq",
        "mistral",
        "ollama",
        "openai",
    }


@pytest.mark.parametrize("path", cassette_ids(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_replay_serves_the_recorded_bytes(path: Path) -> None:
    with ReplayServer.from_cassette(path) as server:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        for interaction in server.interactions:
            recorded = interaction.request
            # not the recorded headers: their Content-Length is the original body's
            headers = {"Content-Type": recorded.headers.get("content-type", "application/json")}
            conn.request(recorded.method, recorded.path, recorded.body, headers)
            response = conn.getresponse()
            body = response.read()
            assert response.status == interaction.response.status
            assert body == interaction.response.body
            served = dict(interaction.response.headers)
            if "Content-Type" in served:
                assert response.getheader("Content-Type") == served["Content-Type"]
            assert response.getheader("Content-Encoding") is None
        conn.close()
        server.check_requests()
        assert len(server.requests) == len(server.interactions)
        assert server.requests[0].json == server.interactions[0].request.json


def test_replayed_bodies_match_the_cassette_text() -> None:
    (interaction,) = load_cassette(CASSETTES / "openai" / "chat_completion_streaming.yaml")
    assert interaction.request.method == "POST"
    assert interaction.request.path == CHAT
    assert interaction.request.json["stream"] is True
    body = interaction.response.body
    assert body.startswith(b'data: {"id":"chatcmpl-ASYMZ4oSykiIFK4lXLReDiKyAjsQl"')
    assert body.endswith(b"data: [DONE]\n\n")
    assert interaction.response.status == 200
    names = {name.lower() for name, _ in interaction.response.headers}
    assert "x-request-id" in names
    assert not names & {"transfer-encoding", "content-length", "connection"}


def test_replay_decompresses_gzip_recordings() -> None:
    interactions = load_cassette(CASSETTES / "groq" / "chat_with_events_with_content.yaml")
    body = json.loads(interactions[0].response.body)
    assert body["object"] == "chat.completion"
    assert all(k.lower() != "content-encoding" for k, _ in interactions[0].response.headers)


def test_replay_binary_event_stream_with_aiohttp() -> None:
    path = CASSETTES / "bedrock" / "converse_stream_with_content.yaml"

    async def run(url: str, body: bytes) -> tuple[int, str, bytes]:
        async with aiohttp.ClientSession() as session, session.post(url, data=body) as response:
            return response.status, response.content_type, await response.read()

    with ReplayServer.from_cassette(path) as server:
        (interaction,) = server.interactions
        status, content_type, body = asyncio.run(
            run(server.base_url + interaction.request.path, interaction.request.body)
        )
        server.check_requests()
    assert status == 200
    assert content_type == "application/vnd.amazon.eventstream"
    assert body == interaction.response.body
    assert body[:4] == b"\x00\x00\x00\x90"  # the first event's total length, big-endian


def test_replay_matches_percent_encoded_paths() -> None:
    path = CASSETTES / "bedrock" / "converse_tool_call_with_content.yaml"
    with ReplayServer.from_cassette(path) as server:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        for interaction in server.interactions:
            unquoted = interaction.request.path.replace("%3A", ":")
            assert unquoted != interaction.request.path
            conn.request("POST", unquoted, interaction.request.body)
            response = conn.getresponse()
            assert response.read() == interaction.response.body
        conn.close()
        server.check_requests()


def test_replay_refuses_an_unexpected_request_without_consuming() -> None:
    path = CASSETTES / "openai" / "chat_completion_with_content.yaml"
    with ReplayServer.from_cassette(path) as server:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        conn.request("GET", "/v1/models")
        response = conn.getresponse()
        text = response.read().decode()
        assert response.status == 404
        assert "GET /v1/models" in text
        assert "POST /v1/chat/completions" in text
        with pytest.raises(AssertionError, match="does not match"):
            server.check_requests()
        assert server.served == 0
        status, _, body = post(conn, server.interactions[0].request.body)
        assert status == 200
        assert body == server.interactions[0].response.body
        conn.request("POST", CHAT, b"{}")
        exhausted = conn.getresponse()
        assert exhausted.status == 404
        assert "all 1 were served" in exhausted.read().decode()
        conn.close()


def test_replay_reports_interactions_never_requested() -> None:
    with ReplayServer.from_cassette(CASSETTES / "openai" / "chat_completion_404.yaml") as server:
        with pytest.raises(AssertionError, match="never requested"):
            server.check_requests()
        server.check_requests(require_all=False)


def test_replay_repeat_cycles() -> None:
    path = CASSETTES / "ollama" / "chat_with_events_with_content.yaml"
    with ReplayServer.from_cassette(path, repeat=True) as server:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        (interaction,) = server.interactions
        for _ in range(3):
            assert post(conn, interaction.request.body, "/api/chat")[2] == interaction.response.body
        conn.close()
        assert server.served == 3


def test_load_cassette_errors_are_chatmodel_errors(tmp_path: Path) -> None:
    from chatmodels import InvalidConfigError

    with pytest.raises(InvalidConfigError, match="cannot read cassette"):
        load_cassette(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("interactions:\n- nothing: here\n")
    with pytest.raises(InvalidConfigError):
        load_cassette(broken)


# --------------------------------------------------------------------------- helpers and CLI


def test_assert_bodies_equivalent() -> None:
    recorded = '{"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true}'
    assert_bodies_equivalent(
        recorded, {"stream": True, "messages": [{"content": "hi", "role": "user"}], "model": "m"}
    )
    with pytest.raises(AssertionError) as info:
        assert_bodies_equivalent(recorded, {"model": "n", "messages": [], "stream": 1, "seed": 1})
    message = str(info.value)
    assert "model: recorded 'm', sent 'n'" in message
    assert "messages: recorded 1 items, sent 0" in message
    assert "stream: recorded True, sent 1" in message
    assert "seed: sent 1, missing from recorded" in message
    assert_bodies_equivalent(
        recorded,
        {"model": "m", "messages": [{"role": "user", "content": "x"}]},
        ignore=["stream", "messages.0.content"],
    )


def test_import_chatmodels_does_not_import_testing() -> None:
    code = "import sys, chatmodels; assert 'chatmodels.testing' not in sys.modules"
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True, timeout=60)


def test_cli_serve() -> None:
    command = [sys.executable, "-W", "ignore", "-m", "chatmodels.testing", "serve", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            base_url = line.split()[2]
            port = int(base_url.rsplit(":", 1)[1].removesuffix("/v1"))
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/v1/models")
            assert conn.getresponse().status == 200
            conn.close()
        finally:
            process.terminate()
            process.wait(timeout=10)
