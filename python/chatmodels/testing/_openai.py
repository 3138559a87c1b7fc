"""`OpenAICompatibleServer`: the OpenAI Chat Completions API on loopback, with scripted
replies and injectable errors."""

from __future__ import annotations

import collections
import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from ._server import ReceivedRequest, _LoopbackServer, _Response

_CREATED = 1_700_000_000  # a fixed "created" timestamp keeps replies deterministic


# --------------------------------------------------------------------------- public data


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
