"""Loopback HTTP servers for tests, demos and benchmarks.

Two servers, both HTTP/1.1 with keep-alive on 127.0.0.1 (port 0 picks a free port), each
running an asyncio loop in a background thread, both standard library only:

- `OpenAICompatibleServer` speaks the OpenAI Chat Completions API (JSON and SSE streaming,
  tool calls, ``GET /v1/models``) with scripted replies and injectable errors:

      with OpenAICompatibleServer([ScriptedReply(text="Hi!"), ScriptedError(429)]) as server:
          client = OpenAI(base_url=server.base_url, api_key="test")
          ...
          assert server.requests[0].json["model"] == "gpt-4o-mini"

- `ReplayServer` serves the exchanges recorded in a vcrpy cassette, in order, byte for byte:

      with ReplayServer.from_cassette("openai/chat_completion_streaming.yaml") as server:
          ...  # point the client at server.base_url
          server.check_requests()

  `ReplayServer.from_cassette` and `load_cassette` need PyYAML (``pip install pyyaml``).

From a shell: ``python -m chatmodels.testing serve --port 8000`` (or ``replay CASSETTE``); its
first line of output is ``serving on <base_url> ...``. A server in a background thread shares
the GIL with the code under test; benchmarks of CPU-bound clients should run it that way, in a
separate process.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import gzip
import importlib
import json
import os
import re
import threading
import zlib
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from http import HTTPStatus
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from ._errors import InvalidConfigError

__all__ = [
    "OpenAICompatibleServer",
    "ReceivedRequest",
    "RecordedInteraction",
    "RecordedRequest",
    "RecordedResponse",
    "ReplayServer",
    "ScriptedError",
    "ScriptedReply",
    "ScriptedToolCall",
    "assert_bodies_equivalent",
    "load_cassette",
    "main",
]

_MAX_HEAD_BYTES = 64 * 1024
_CREATED = 1_700_000_000  # a fixed "created" timestamp keeps replies deterministic


# --------------------------------------------------------------------------- public data


@dataclasses.dataclass(frozen=True)
class ReceivedRequest:
    """A request as a test server received it.

    Attributes:
        method: ``"GET"``, ``"POST"``, ...
        path: the request target as sent: path and query, such as ``"/v1/chat/completions"``.
        headers: header names lower-cased; repeated headers joined with ``", "``.
        body: the raw body bytes.
        json: the body parsed as JSON, or None when it is empty or not JSON.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    json: Any


@dataclasses.dataclass(frozen=True)
class ScriptedToolCall:
    """One tool call in a scripted reply; ``arguments`` is a dict or an already-encoded str."""

    name: str
    arguments: Mapping[str, Any] | str = dataclasses.field(default_factory=dict)
    id: str | None = None


@dataclasses.dataclass(frozen=True)
class ScriptedReply:
    """A successful reply of `OpenAICompatibleServer`; None fields get deterministic defaults.

    Attributes:
        text: the assistant's text (default: an echo of the last user message, or None when
            the reply has tool calls).
        tool_calls: tool calls to make; the request must carry ``tools``.
        finish_reason: default ``"tool_calls"`` when there are tool calls, else ``"stop"``.
        prompt_tokens, completion_tokens: usage (default: word counts).
        model: the model reported (default: the request's model).
        chunks: how many content deltas a stream splits the text into (default: one per word).
            Tool-call arguments always stream in two fragments.
        delay: seconds to wait before sending the response head.
        chunk_delay: seconds to wait between stream events.
        disconnect_after: drop the connection abruptly after this many SSE events; on a
            non-streamed request, drop it before sending anything.
    """

    text: str | None = None
    tool_calls: Sequence[ScriptedToolCall] = ()
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    model: str | None = None
    chunks: int | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    disconnect_after: int | None = None


@dataclasses.dataclass(frozen=True)
class ScriptedError:
    """An error reply with an OpenAI-style body: ``{"error": {message, type, param, code}}``.

    ``type`` defaults by status (``invalid_request_error``, ``authentication_error``,
    ``rate_limit_error``, ``server_error``, ...). ``retry_after`` sets the Retry-After header.
    """

    status: int = 500
    message: str = "The server had an error while processing your request."
    type: str | None = None
    code: str | None = None
    retry_after: float | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    delay: float = 0.0


Script = Callable[[ReceivedRequest], "ScriptedReply | ScriptedError | None"]


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """The request of a cassette interaction; ``path`` is the URI's path and query."""

    method: str
    uri: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    json: Any


@dataclasses.dataclass(frozen=True)
class RecordedResponse:
    """The response of a cassette interaction, as `ReplayServer` serves it.

    ``body`` is the recorded body, decompressed when it was recorded gzip- or
    deflate-encoded; ``headers`` are the recorded ones minus hop-by-hop, length and encoding
    headers (the server adds its own framing).
    """

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclasses.dataclass(frozen=True)
class RecordedInteraction:
    """One recorded request and its response."""

    request: RecordedRequest
    response: RecordedResponse


# --------------------------------------------------------------------------- HTTP/1.1 core


@dataclasses.dataclass
class _Response:
    """What to send. A body goes out with Content-Length; ``chunks`` go out chunked, one
    HTTP chunk each, so a stream's events can be delayed or cut between them."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    chunks: Sequence[bytes] | None = None
    reason: str = ""
    close: bool = False
    delay: float = 0.0  # before the head
    chunk_delay: float = 0.0  # between chunks
    abort_after_parts: int | None = None  # drop the connection after this many wire parts

    def wire_parts(self) -> list[bytes]:
        """The head, then the framed chunks (or the body) as separate byte strings."""
        reason = self.reason or _reason(self.status)
        lines = [f"HTTP/1.1 {self.status} {reason}", *(f"{k}: {v}" for k, v in self.headers)]
        if self.chunks is None:
            lines.append(f"Content-Length: {len(self.body)}")
        else:
            lines.append("Transfer-Encoding: chunked")
        if self.close:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.chunks is None:
            return [head, self.body]
        framed = [b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in self.chunks if chunk]
        return [head, *framed, b"0\r\n\r\n"]


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _text_response(status: int, message: str, *, close: bool = False) -> _Response:
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    return _Response(status, headers, message.encode(), close=close)


def _parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:  # includes UnicodeDecodeError
        return None


class _HttpProtocol(asyncio.Protocol):
    """One client connection: parses (pipelined) requests and writes the server's responses."""

    def __init__(self, server: _LoopbackServer) -> None:
        self._server = server
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._busy = False  # a delayed response is being written; hold further requests

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server._connections.add(transport)
        self._server._accepted += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._server._connections.discard(self._transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._busy:
            self._process()

    def _process(self) -> None:
        transport = self._transport
        assert transport is not None
        while self._buffer and not transport.is_closing():
            response = self._next_response()
            if response is None:
                return
            if response.delay or response.chunk_delay or response.abort_after_parts is not None:
                self._busy = True
                transport.pause_reading()
                self._server._spawn(self._write_slowly(transport, response))
                return
            transport.write(b"".join(response.wire_parts()))
            if response.close:
                transport.close()

    def _next_response(self) -> _Response | None:
        """Parse one complete request from the buffer and answer it (None: need more bytes)."""
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > _MAX_HEAD_BYTES:
                return _text_response(431, "request head too large", close=True)
            return None
        try:
            request_line, *header_lines = buffer[:end].decode("latin-1").split("\r\n")
            method, target, version = request_line.split(" ")
            headers: dict[str, str] = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                name, value = name.strip().lower(), value.strip()
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            length = int(headers.get("content-length", "0"))
        except ValueError:
            return _text_response(400, "malformed request", close=True)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return _text_response(501, "chunked request bodies are not supported", close=True)
        total = end + 4 + length
        if len(buffer) < total:
            return None
        body = bytes(buffer[end + 4 : total])
        del buffer[:total]
        request = ReceivedRequest(method, target, headers, body, _parse_json(body))
        self._server._record(request)
        response = self._server._respond(request)
        connection = headers.get("connection", "").lower()
        if "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection):
            response.close = True
        return response

    async def _write_slowly(self, transport: asyncio.Transport, response: _Response) -> None:
        if response.delay:
            await asyncio.sleep(response.delay)
        parts = response.wire_parts()
        limit = response.abort_after_parts
        for index, part in enumerate(parts if limit is None else parts[:limit]):
            if index >= 2 and response.chunk_delay:
                await asyncio.sleep(response.chunk_delay)
            if transport.is_closing():
                return
            transport.write(part)
        if limit is not None:
            transport.abort()
        elif response.close:
            transport.close()
        else:
            self._busy = False
            transport.resume_reading()
            self._process()


_T = TypeVar("_T", bound="_LoopbackServer")


class _LoopbackServer:
    """The shared machinery: an asyncio loop in a daemon thread, connections, recorded requests.

    Subclasses implement `_respond`, which runs on the loop thread and must not block.
    """

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, max_recorded: int = 10_000
    ) -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._requests: collections.deque[ReceivedRequest] = collections.deque(maxlen=max_recorded)
        self._connections: set[asyncio.Transport] = set()
        self._accepted = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None

    # -- lifecycle

    def start(self: _T) -> _T:
        """Bind and start serving in a background thread; returns self."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            except BaseException as exc:  # reported by start() when binding failed
                failure.append(exc)
            finally:
                ready.set()
                loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    async def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await loop.create_server(
            lambda: _HttpProtocol(self), self.host, self.port, backlog=4096, reuse_address=True
        )
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        await self._stopping.wait()
        server.close()
        for transport in list(self._connections):
            transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.sleep(0)  # let the aborted connections call connection_lost

    def stop(self) -> None:
        """Close the listener and every open connection, then join the thread. Idempotent."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None or loop is None or stopping is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already closed
            loop.call_soon_threadsafe(stopping.set)
        thread.join()
        self._thread = None

    def __enter__(self: _T) -> _T:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what the server saw

    @property
    def requests(self) -> list[ReceivedRequest]:
        """The requests received so far, oldest first (at most ``max_recorded`` of the latest)."""
        with self._lock:
            return list(self._requests)

    @property
    def connections_accepted(self) -> int:
        """How many TCP connections the server has accepted (to check keep-alive reuse)."""
        return self._accepted

    def clear_requests(self) -> None:
        """Forget the requests received so far."""
        with self._lock:
            self._requests.clear()

    def _record(self, request: ReceivedRequest) -> None:
        if self._requests.maxlen != 0:
            with self._lock:
                self._requests.append(request)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _respond(self, request: ReceivedRequest) -> _Response:
        raise NotImplementedError


# --------------------------------------------------------------------------- OpenAI-compatible


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


_ENCODER = json.JSONEncoder(separators=(",", ":"))  # built once: json.dumps(separators=) is slow


def _dumps(value: Any) -> bytes:
    return _ENCODER.encode(value).encode()


def _words(text: str) -> int:
    return len(text.split())


def _message_text(content: Any) -> str:
    """The text of a message's content: a str, or a list of parts with ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p["text"]) for p in content if isinstance(p, dict) and "text" in p)
    return ""


def _split(text: str, pieces: int | None) -> list[str]:
    """``text`` in ``pieces`` nearly equal parts, or one part per word (with its leading space)."""
    if pieces is None:
        return re.findall(r"\s*\S+\s*$|\s*\S+", text) or ([text] if text else [])
    size = len(text)
    return [text[i * size // pieces : (i + 1) * size // pieces] for i in range(pieces)]


class OpenAICompatibleServer(_LoopbackServer):
    """A loopback server speaking the OpenAI Chat Completions API, with scripted replies.

    Routes: ``POST /v1/chat/completions`` (JSON, or SSE when ``"stream": true``, with a final
    usage chunk when ``stream_options.include_usage``), ``GET /v1/models`` and
    ``GET /v1/models/{id}``. Anything else gets a 404 with an OpenAI-style error body.
    Every response carries an ``x-request-id`` header.

    Args:
        replies: the replies to give, in order: an iterable of `ScriptedReply` /
            `ScriptedError` (a queue; once empty, the default reply), or a function of the
            `ReceivedRequest` returning one (or None for the default reply). The default
            reply echoes the last user message: ``"Echo: <text>"``.
        api_key: when set, requests must carry ``Authorization: Bearer <api_key>``; others
            get a 401.
        models: the ids ``GET /v1/models`` lists; the first is the default model.
        host: the address to listen on.
        port: the port to listen on (0 picks a free port).
        max_recorded: how many of the latest requests `requests` keeps (0 keeps none).

    Example:
        >>> with OpenAICompatibleServer([ScriptedReply(text="Hi!")]) as server:
        ...     url = server.base_url  # "http://127.0.0.1:PORT/v1"
    """

    def __init__(
        self,
        replies: Iterable[ScriptedReply | ScriptedError] | Script | None = None,
        *,
        api_key: str | None = None,
        models: Sequence[str] = ("test-model",),
        host: str = "127.0.0.1",
        port: int = 0,
        max_recorded: int = 10_000,
    ) -> None:
        super().__init__(host=host, port=port, max_recorded=max_recorded)
        self._script: Script | None = None
        self._queue: collections.deque[ScriptedReply | ScriptedError] = collections.deque()
        if callable(replies):
            self._script = replies
        elif replies is not None:
            self._queue.extend(replies)
        self._authorization = None if api_key is None else f"Bearer {api_key}"
        self.models = tuple(models)
        self._counter = 0

    @property
    def base_url(self) -> str:
        """The API root as OpenAI clients take it: ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def enqueue(self, *replies: ScriptedReply | ScriptedError) -> None:
        """Add replies to the end of the queue."""
        with self._lock:
            self._queue.extend(replies)

    # -- everything below runs on the server's loop thread

    def _respond(self, request: ReceivedRequest) -> _Response:
        self._counter += 1
        auth = self._authorization
        if auth is not None and request.headers.get("authorization") != auth:
            return self._error(
                ScriptedError(401, "Incorrect API key provided.", code="invalid_api_key")
            )
        path = request.path.partition("?")[0].rstrip("/")
        if path == "/v1/chat/completions":
            if request.method != "POST":
                return self._error(ScriptedError(405, f"Method {request.method} not allowed."))
            return self._chat(request)
        if request.method == "GET" and path == "/v1/models":
            data = [self._model_object(model) for model in self.models]
            return self._json(200, {"object": "list", "data": data})
        if request.method == "GET" and path.startswith("/v1/models/"):
            model = unquote(path.removeprefix("/v1/models/"))
            if model in self.models:
                return self._json(200, self._model_object(model))
            message = f"The model '{model}' does not exist"
            return self._error(ScriptedError(404, message, code="model_not_found"))
        return self._error(ScriptedError(404, f"Unknown request URL: {request.method} {path}."))

    def _next_reply(self, request: ReceivedRequest) -> ScriptedReply | ScriptedError | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self._script is None:
            return None
        try:
            return self._script(request)
        except Exception as exc:
            return ScriptedError(500, f"the scripted reply function raised {exc!r}")

    def _chat(self, request: ReceivedRequest) -> _Response:
        body = request.json
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            message = "The body must be a JSON object with a 'messages' list."
            return self._error(ScriptedError(400, message))
        reply = self._next_reply(request) or ScriptedReply()
        if isinstance(reply, ScriptedError):
            return self._error(reply)
        if reply.tool_calls and not body.get("tools"):
            message = "Scripted a tool call, but the request has no 'tools'."
            return self._error(ScriptedError(400, message))

        messages = [m for m in body["messages"] if isinstance(m, dict)]
        text = reply.text
        if text is None and not reply.tool_calls:
            users = [m for m in messages if m.get("role") == "user"]
            text = "Echo: " + (_message_text(users[-1].get("content")) if users else "")
        calls: list[dict[str, Any]] = [
            {
                "id": call.id or f"call_{self._counter}_{index}",
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": call.arguments
                    if isinstance(call.arguments, str)
                    else json.dumps(call.arguments),
                },
            }
            for index, call in enumerate(reply.tool_calls)
        ]
        prompt = reply.prompt_tokens
        if prompt is None:
            prompt = sum(_words(_message_text(m.get("content"))) for m in messages)
        completion = reply.completion_tokens
        if completion is None:
            completion = _words(text or "") + sum(_words(c["function"]["arguments"]) for c in calls)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        finish = reply.finish_reason or ("tool_calls" if calls else "stop")
        common = {
            "id": f"chatcmpl-{self._counter:06d}",
            "object": "chat.completion",
            "created": _CREATED,
            "model": reply.model or body.get("model") or self.models[0],
        }

        if body.get("stream"):
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            common["object"] = "chat.completion.chunk"
            choices = self._stream_choices(text, calls, finish, reply.chunks)
            frames = self._sse_frames(common, choices, usage if include_usage else None)
            headers = [
                ("Content-Type", "text/event-stream; charset=utf-8"),
                ("x-request-id", f"req_{self._counter}"),
            ]
            response = _Response(200, headers, chunks=frames)
            response.chunk_delay = reply.chunk_delay
            if reply.disconnect_after is not None:
                response.abort_after_parts = 1 + reply.disconnect_after  # the head, then N events
        else:
            reply_message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
            if calls:
                reply_message["tool_calls"] = calls
            choice = {
                "index": 0,
                "message": reply_message,
                "logprobs": None,
                "finish_reason": finish,
            }
            completion_body = {
                **common,
                "choices": [choice],
                "usage": usage,
                "system_fingerprint": None,
            }
            response = self._json(200, completion_body)
            if reply.disconnect_after is not None:
                response.abort_after_parts = 0
        response.delay = reply.delay
        return response

    @staticmethod
    def _stream_choices(
        text: str | None,
        calls: list[dict[str, Any]],
        finish: str,
        pieces: int | None,
    ) -> list[bytes]:
        """The ``choices[0]`` of each chunk of a stream, encoded."""

        def choice(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            return _dumps(
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            )

        choices = [choice({"role": "assistant", "content": ""})]
        # Text deltas are most of a stream: fill a template rather than encode each dict.
        choices.extend(
            b'{"index":0,"delta":{"content":%s},"logprobs":null,"finish_reason":null}'
            % _dumps(piece)
            for piece in _split(text or "", pieces)
        )
        for index, call in enumerate(calls):
            name, arguments = call["function"]["name"], call["function"]["arguments"]
            head = {"index": index, "id": call["id"], "type": "function"}
            start = {**head, "function": {"name": name, "arguments": ""}}
            choices.append(choice({"tool_calls": [start]}))
            half = len(arguments) // 2
            for fragment in (arguments[:half], arguments[half:]):
                delta = {"index": index, "function": {"arguments": fragment}}
                choices.append(choice({"tool_calls": [delta]}))
        choices.append(choice({}, finish))
        return choices

    @staticmethod
    def _sse_frames(
        common: dict[str, Any], choices: list[bytes], usage: dict[str, int] | None
    ) -> list[bytes]:
        """``data:`` frames: one chunk per choice, the usage chunk when given, ``[DONE]``."""
        chunk = {**common, "system_fingerprint": None}
        # Chunks differ only in their choice: encode the rest once, without its closing brace.
        start = b"data: " + _dumps(chunk)[:-1] + b',"choices":['
        end = b'],"usage":null}\n\n' if usage is not None else b"]}\n\n"
        frames = [start + choice + end for choice in choices]
        if usage is not None:
            frames.append(b"data: " + _dumps({**chunk, "choices": [], "usage": usage}) + b"\n\n")
        frames.append(b"data: [DONE]\n\n")
        return frames

    @staticmethod
    def _model_object(model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": _CREATED, "owned_by": "chatmodels"}

    def _json(self, status: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> _Response:
        base = [("Content-Type", "application/json"), ("x-request-id", f"req_{self._counter}")]
        return _Response(status, [*base, *headers], _dumps(body))

    def _error(self, error: ScriptedError) -> _Response:
        default_type = "server_error" if error.status >= 500 else "invalid_request_error"
        body = {
            "error": {
                "message": error.message,
                "type": error.type or _ERROR_TYPES.get(error.status, default_type),
                "param": None,
                "code": error.code,
            }
        }
        headers = list(error.headers.items())
        if error.retry_after is not None:
            seconds = error.retry_after
            headers.append(("Retry-After", f"{seconds:g}"))
        response = self._json(error.status, body, headers)
        response.delay = error.delay
        return response


# --------------------------------------------------------------------------- replay

# Not replayed: hop-by-hop headers, and the framing and encoding the server decides itself.
_DROPPED_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "te",
        "trailer",
        "upgrade",
    }
)
# Sent chunked, like the live APIs do, so stream parsers see a realistic response.
_STREAM_TYPES = ("text/event-stream", "application/x-ndjson", "application/vnd.amazon.eventstream")


def _body_bytes(body: Any) -> bytes:
    """A vcrpy body (``{"string": str | bytes}``, a bare str or bytes, or None) as bytes."""
    if isinstance(body, dict):
        body = body.get("string")
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes):
        return body
    raise TypeError(f"unexpected body type {type(body).__name__}")


def _header_pairs(headers: Any) -> list[tuple[str, str]]:
    """vcrpy headers (name → value or list of values) as (name, value) pairs."""
    pairs: list[tuple[str, str]] = []
    for name, values in (headers or {}).items():
        for value in values if isinstance(values, list) else [values]:
            pairs.append((str(name), str(value)))
    return pairs


def _path_key(target: str) -> tuple[str, list[tuple[str, str]]]:
    """A request target for matching: the unquoted path and the sorted query."""
    parts = urlsplit(target)
    return unquote(parts.path) or "/", sorted(parse_qsl(parts.query, keep_blank_values=True))


def load_cassette(path: str | os.PathLike[str]) -> list[RecordedInteraction]:
    """Read a vcrpy cassette (YAML) into `RecordedInteraction` objects. Needs PyYAML.

    Response bodies are bytes exactly as recorded, except that a gzip- or deflate-encoded
    body is decompressed (and its Content-Encoding header dropped).
    """
    try:
        yaml: Any = importlib.import_module("yaml")
    except ImportError as exc:
        raise InvalidConfigError(
            "reading a cassette needs PyYAML: pip install pyyaml",
            op="testing.load_cassette",
            err=exc,
        ) from exc
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, "rb") as file:
            data = yaml.load(file, Loader=loader)
        return [_interaction(item) for item in data["interactions"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise InvalidConfigError(
            f"cannot read cassette {os.fspath(path)!r}: {exc}", op="testing.load_cassette", err=exc
        ) from exc


def _interaction(item: Mapping[str, Any]) -> RecordedInteraction:
    request, response = item["request"], item["response"]
    uri = str(request["uri"])
    parts = urlsplit(uri)
    request_headers: dict[str, str] = {}
    for name, value in _header_pairs(request.get("headers")):
        key = name.lower()
        request_headers[key] = (
            f"{request_headers[key]}, {value}" if key in request_headers else value
        )
    request_body = _body_bytes(request.get("body"))
    recorded_request = RecordedRequest(
        method=str(request["method"]).upper(),
        uri=uri,
        path=parts.path + (f"?{parts.query}" if parts.query else ""),
        headers=request_headers,
        body=request_body,
        json=_parse_json(request_body),
    )

    headers = _header_pairs(response.get("headers"))
    body = _body_bytes(response.get("body"))
    encoding = next((v.lower() for k, v in headers if k.lower() == "content-encoding"), "")
    if encoding == "gzip":
        body = gzip.decompress(body)
    elif encoding == "deflate":
        body = zlib.decompress(body)
    elif encoding not in ("", "identity"):
        raise TypeError(f"cannot replay a body with Content-Encoding {encoding!r}")
    status = response["status"]
    recorded_response = RecordedResponse(
        status=int(status["code"]),
        reason=str(status.get("message") or ""),
        headers=tuple((k, v) for k, v in headers if k.lower() not in _DROPPED_HEADERS),
        body=body,
    )
    return RecordedInteraction(recorded_request, recorded_response)


class ReplayServer(_LoopbackServer):
    """Serves recorded exchanges, in order, byte for byte.

    Each request must match the next recorded interaction by method and by path and query
    (scheme and host are ignored; percent-encoding and query order do not matter). A match
    gets the recorded status, headers and body; a streamed recording (SSE, NDJSON, AWS event
    stream) is sent chunked, anything else with Content-Length. A request that does not match
    gets a 404 whose text body says what was expected, and does not consume the interaction.

    Args:
        interactions: what to serve, such as `load_cassette` returns.
        repeat: start over after the last interaction (for benchmarks) instead of refusing.
        host: as for `OpenAICompatibleServer`.
        port: as for `OpenAICompatibleServer`.
        max_recorded: as for `OpenAICompatibleServer`.

    Example:
        >>> with ReplayServer.from_cassette("openai/chat_completion_with_content.yaml") as s:
        ...     ...  # point the client at s.base_url, then:
        ...     s.check_requests()
    """

    def __init__(
        self,
        interactions: Sequence[RecordedInteraction],
        *,
        repeat: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        max_recorded: int = 10_000,
    ) -> None:
        super().__init__(host=host, port=port, max_recorded=max_recorded)
        self._interactions = tuple(interactions)
        self._repeat = repeat
        self._served = 0
        self._unmatched: list[tuple[ReceivedRequest, str]] = []

    @classmethod
    def from_cassette(
        cls,
        path: str | os.PathLike[str],
        *,
        repeat: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        max_recorded: int = 10_000,
    ) -> ReplayServer:
        """A server for the interactions of a vcrpy cassette file. Needs PyYAML."""
        interactions = load_cassette(path)
        return cls(interactions, repeat=repeat, host=host, port=port, max_recorded=max_recorded)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the recorded URIs' paths are appended to it as they are."""
        return f"http://{self.host}:{self.port}"

    @property
    def interactions(self) -> tuple[RecordedInteraction, ...]:
        """The recorded interactions, in the order they are served."""
        return self._interactions

    @property
    def served(self) -> int:
        """How many requests got a recorded response."""
        with self._lock:
            return self._served

    def check_requests(self, *, require_all: bool = True) -> None:
        """Raise AssertionError if a request matched no interaction or, with ``require_all``,
        if some interactions were never requested."""
        with self._lock:
            problems = [message for _, message in self._unmatched]
            served = self._served
        if require_all and served < len(self._interactions):
            missing = self._interactions[served:]
            problems.append(
                f"{len(missing)} recorded interaction(s) never requested, starting with "
                f"{missing[0].request.method} {missing[0].request.path}"
            )
        if problems:
            raise AssertionError("ReplayServer:\n" + "\n".join(problems))

    def _respond(self, request: ReceivedRequest) -> _Response:
        with self._lock:
            count = len(self._interactions)
            index = self._served % count if self._repeat and count else self._served
            if index >= count:
                message = (
                    f"no recorded interaction left for {request.method} {request.path}: "
                    f"all {count} were served"
                )
            else:
                expected = self._interactions[index].request
                key = _path_key(request.path)
                if request.method == expected.method and key == _path_key(expected.path):
                    self._served += 1
                    return self._replay(self._interactions[index].response)
                message = (
                    f"request {request.method} {request.path} does not match the next recorded "
                    f"interaction ({index + 1} of {count}): {expected.method} {expected.path}"
                )
            self._unmatched.append((request, message))
        return _text_response(404, f"ReplayServer: {message}\n")

    @staticmethod
    def _replay(recorded: RecordedResponse) -> _Response:
        headers = list(recorded.headers)
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        if content_type.lower().startswith(_STREAM_TYPES):
            return _Response(
                recorded.status, headers, chunks=[recorded.body], reason=recorded.reason
            )
        return _Response(recorded.status, headers, recorded.body, reason=recorded.reason)


def assert_bodies_equivalent(recorded: Any, sent: Any, *, ignore: Iterable[str] = ()) -> None:
    """Assert that two JSON bodies (parsed, or as str/bytes) are equal, ignoring key order.

    ``ignore`` lists dotted paths to skip, such as ``"stream_options"`` or
    ``"messages.0.name"``. The AssertionError lists every differing path.
    """
    if isinstance(recorded, (str, bytes)):
        recorded = json.loads(recorded)
    if isinstance(sent, (str, bytes)):
        sent = json.loads(sent)
    skipped = set(ignore)
    differences: list[str] = []

    def compare(a: Any, b: Any, path: str) -> None:
        if path in skipped:
            return
        where = path or "<root>"
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(a.keys() | b.keys(), key=str):
                sub = f"{path}.{key}" if path else str(key)
                if sub in skipped:
                    continue
                if key not in b:
                    differences.append(f"{sub}: recorded {a[key]!r}, missing from sent")
                elif key not in a:
                    differences.append(f"{sub}: sent {b[key]!r}, missing from recorded")
                else:
                    compare(a[key], b[key], sub)
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                differences.append(f"{where}: recorded {len(a)} items, sent {len(b)}")
            for index, (x, y) in enumerate(zip(a, b, strict=False)):
                compare(x, y, f"{path}.{index}" if path else str(index))
        elif a != b or isinstance(a, bool) != isinstance(b, bool):
            differences.append(f"{where}: recorded {a!r}, sent {b!r}")

    compare(recorded, sent, "")
    if differences:
        raise AssertionError("JSON bodies differ:\n" + "\n".join(differences))


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m chatmodels.testing serve|replay ...``: run a server in the foreground."""
    parser = argparse.ArgumentParser(
        prog="python -m chatmodels.testing",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="an OpenAI-compatible server with the echo reply")
    replay = commands.add_parser("replay", help="serve a vcrpy cassette's recorded responses")
    replay.add_argument("cassette", help="path to the cassette YAML file")
    replay.add_argument("--repeat", action="store_true", help="start over after the last one")
    for command in (serve, replay):
        command.add_argument("--host", default="127.0.0.1")
        command.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--api-key", help="require this bearer token")
    args = parser.parse_args(argv)

    server: OpenAICompatibleServer | ReplayServer
    if args.command == "serve":
        server = OpenAICompatibleServer(api_key=args.api_key, host=args.host, port=args.port)
    else:
        server = ReplayServer.from_cassette(
            args.cassette, repeat=args.repeat, host=args.host, port=args.port
        )
    with server:
        print(f"serving on {server.base_url} (Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
