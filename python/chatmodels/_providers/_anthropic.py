"""The Anthropic Messages API wire format (`anthropic`).

Reference: https://docs.claude.com/en/api/messages (request and ``Message`` response),
https://docs.claude.com/en/docs/build-with-claude/streaming (the SSE events),
https://docs.claude.com/en/api/errors (error bodies and types) and
https://docs.claude.com/en/docs/build-with-claude/structured-outputs (``output_config``).

Mapping notes:
- System messages become the top-level ``system`` string (joined by a blank line).
- Tool results become ``tool_result`` blocks of a user turn; consecutive results share one.
- ``Usage.input_tokens`` is the whole prompt: Anthropic's ``input_tokens`` counts only the
  uncached part, so cache reads and cache writes are added to it (the OTel GenAI convention).
- Thinking blocks are not part of the reply's text: they become `ReasoningPart`s (with their
  signatures; ``redacted_thinking`` keeps its data), placed before the text, and an assistant
  message sent back sends them first, as the API requires when a thinking turn used tools.
  Streamed, ``thinking_delta`` is a chunk's ``reasoning`` and ``signature_delta`` its
  ``reasoning_signature``.
- A streamed tool call's ``input_json_delta`` fragments are buffered and sent as one
  arguments fragment when its block stops, as compact JSON, so that a streamed reply
  accumulates to exactly the response the same call returns whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from .._errors import ChatModelError
from .._metadata import ProviderMetadata, ProviderOptions
from .._request import ChatRequest
from .._tools import ToolCall
from .._transport._framing import SSEDecoder
from .._transport._wire import Headers, WireRequest
from .._types import (
    ChatChunk,
    ChatResponse,
    ImagePart,
    Message,
    ReasoningPart,
    ToolCallDelta,
    Usage,
)
from ._common import (
    NO_HEADERS,
    JSONRequests,
    arr,
    bad,
    count,
    finish_reason,
    index,
    obj,
    opt_obj,
    opt_str,
    reply,
    request_id_in_body,
    stop_list,
    text,
    tool_call,
)
from ._http import HTTPChatModel, ReplyShapeError, StreamEnd, error_from_response, loads

__all__ = ["ANTHROPIC_VERSION", "DEFAULT_MAX_TOKENS", "AnthropicAdapter", "create"]

ANTHROPIC_VERSION = "2023-06-01"
# The API requires max_tokens; this is sent when neither the call nor the options set it.
DEFAULT_MAX_TOKENS = 4096

# The HTTP status each error ``type`` comes with, for errors that arrive inside a stream.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _image_block(part: ImagePart) -> dict[str, Any]:
    if part.url is not None:
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": part.media_type, "data": part.data},
    }


def _thinking_block(part: ReasoningPart) -> dict[str, Any]:
    if part.redacted is not None:
        return {"type": "redacted_thinking", "data": part.redacted}
    return {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}


def _blocks(content: str | tuple[Any, ...]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    thinking = [_thinking_block(p) for p in content if isinstance(p, ReasoningPart)]
    return thinking + [
        _image_block(p) if isinstance(p, ImagePart) else {"type": "text", "text": p.text}
        for p in content
        if not isinstance(p, ReasoningPart)
    ]


def _wire_messages(messages: Iterable[Message]) -> tuple[list[str], list[dict[str, Any]]]:
    """The ``system`` texts and the ``messages`` list of a request."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for msg in messages:
        if msg.role == "system":
            system.append(msg.text)
        elif msg.role == "tool":
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": msg.tool_call_id}
            result["content"] = (
                msg.content if isinstance(msg.content, str) else _blocks(msg.content)
            )
            last = out[-1] if out else None
            if (
                last is not None
                and last["role"] == "user"
                and isinstance(last["content"], list)
                and last["content"]
                and last["content"][-1].get("type") == "tool_result"
            ):
                last["content"].append(result)
            else:
                out.append({"role": "user", "content": [result]})
        elif msg.role == "assistant" and msg.tool_calls:
            blocks = _blocks(msg.content)
            blocks.extend(
                {"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.arguments)}
                for c in msg.tool_calls
            )
            out.append({"role": "assistant", "content": blocks})
        else:
            content = msg.content if isinstance(msg.content, str) else _blocks(msg.content)
            out.append({"role": msg.role, "content": content})
    return system, out


def _tool_choice(choice: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if choice is None:
        return None
    if not isinstance(choice, str):
        return dict(choice)
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    return {"type": "tool", "name": choice}


def _usage(raw: Any, path: str) -> Usage | None:
    if raw is None:
        return None
    raw = obj(raw, path)
    if not raw:
        return None
    cache_read = count(raw, "cache_read_input_tokens", path)
    cache_write = count(raw, "cache_creation_input_tokens", path)
    prompt = (count(raw, "input_tokens", path) or 0) + (cache_read or 0) + (cache_write or 0)
    output = count(raw, "output_tokens", path) or 0
    return Usage(
        input_tokens=prompt,
        output_tokens=output,
        total_tokens=prompt + output,
        cache_read_input_tokens=cache_read,
        cache_creation_input_tokens=cache_write,
    )


def _compact(raw_json: str) -> str:
    """A streamed tool input as the compact JSON a whole response's ``input`` gives."""
    if not raw_json.strip():
        return "{}"
    try:
        parsed = json.loads(raw_json)
    except ValueError:
        return raw_json
    return json.dumps(parsed, separators=(",", ":"))


class AnthropicAdapter:
    """Messages over ``POST {base_url}/v1/messages`` with the ``x-api-key`` header."""

    supported_params: ClassVar[frozenset[str]] = frozenset(
        {"temperature", "max_tokens", "top_p", "top_k", "stop"}
    )

    def __init__(
        self,
        provider: str,
        api_key: str | None,
        *,
        version: str = ANTHROPIC_VERSION,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self.provider = provider
        self.max_tokens = max_tokens
        auth = {"x-api-key": api_key} if api_key else {}
        self._http = JSONRequests({**auth, "anthropic-version": version})

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body of a Messages request."""
        system, messages = _wire_messages(request.messages)
        params = request.params
        body: dict[str, Any] = {
            "max_tokens": params.get("max_tokens", self.max_tokens),
            "messages": messages,
            "model": request.model,
        }
        if system:
            body["system"] = "\n\n".join(system)
        for key in ("temperature", "top_p", "top_k"):
            if key in params:
                body[key] = params[key]
        stop = params.get("stop")
        if stop is not None:
            body["stop_sequences"] = stop_list(stop)
        if request.stream:
            body["stream"] = True
        if request.tools:
            tools = []
            for tool in request.tools:
                spec: dict[str, Any] = {"name": tool.name}
                if tool.description:
                    spec["description"] = tool.description
                spec["input_schema"] = dict(tool.parameters)
                if tool.strict is not None:
                    spec["strict"] = tool.strict
                tools.append(spec)
            body["tools"] = tools
            choice = _tool_choice(request.tool_choice)
            if request.parallel_tool_calls is False:
                choice = choice or {"type": "auto"}
                if choice.get("type") != "none":
                    choice["disable_parallel_tool_use"] = True
            if choice is not None:
                body["tool_choice"] = choice
        fmt = request.response_format
        if fmt is not None and fmt.type == "json_schema":
            body["output_config"] = {"format": {"type": "json_schema", "schema": fmt.schema}}
        if request.provider_specific:
            body.update(request.provider_specific)
        return body

    def build_request(self, request: ChatRequest) -> WireRequest:
        """``POST /v1/messages``."""
        return self._http.post("/v1/messages", self.build_body(request), stream=request.stream)

    def parse_response(self, body: bytes, request: ChatRequest) -> ChatResponse:
        """A ``message`` object: its text blocks joined, its ``tool_use`` blocks as calls, its
        ``thinking`` and ``redacted_thinking`` blocks as reasoning parts."""
        data = obj(loads(body), "the body")
        if data.get("type") == "error":
            raise self._error_of(data, op="invoke")
        texts: list[str] = []
        calls: list[ToolCall] = []
        reasoning: list[ReasoningPart] = []
        for i, item in enumerate(arr(data.get("content"), "content")):
            block = obj(item, f"content[{i}]")
            kind = block.get("type")
            if kind == "text":
                texts.append(text(block.get("text"), f"content[{i}].text"))
            elif kind == "tool_use":
                call_id = text(block.get("id"), f"content[{i}].id")
                calls.append(
                    tool_call(
                        call_id,
                        block.get("name"),
                        block.get("input"),
                        f"content[{i}]",
                        arguments_key="input",
                    )
                )
                if calls[-1].arguments == {} and block.get("input") not in (None, {}):
                    raise bad(f"content[{i}].input", "an object", block.get("input"))
            elif kind == "thinking":
                thought = text(block.get("thinking"), f"content[{i}].thinking")
                signature = opt_str(block.get("signature"), f"content[{i}].signature")
                reasoning.append(ReasoningPart(thought, signature))
            elif kind == "redacted_thinking":
                reasoning.append(
                    ReasoningPart(redacted=text(block.get("data"), f"content[{i}].data"))
                )
        return reply(
            self.provider,
            "".join(texts),
            calls,
            raw_finish=opt_str(data.get("stop_reason"), "stop_reason"),
            usage=_usage(data.get("usage"), "usage"),
            id=opt_str(data.get("id"), "id"),
            model=opt_str(data.get("model"), "model"),
            reasoning=tuple(reasoning),
        )

    def new_decoder(self) -> SSEDecoder:
        """Messages streams are server-sent events."""
        return SSEDecoder()

    def parse_event(
        self, event: tuple[str | None, bytes], state: dict[str, Any]
    ) -> Iterable[ChatChunk]:
        """One stream event; ``message_stop`` ends the stream, ``error`` raises."""
        data = obj(loads(event[1]), "the event")
        kind = data.get("type")
        if kind == "content_block_delta":
            delta = obj(data.get("delta"), "delta")
            dtype = delta.get("type")
            if dtype == "text_delta":
                return (self._chunk(state, text=text(delta.get("text"), "delta.text")),)
            if dtype == "input_json_delta":
                at = index(data.get("index"), "index")
                parts = state.setdefault("tools", {}).get(at)
                if parts is None:
                    raise ReplyShapeError(f"index {at} of an input_json_delta is no tool_use block")
                parts.append(text(delta.get("partial_json"), "delta.partial_json"))
            elif dtype == "thinking_delta":
                thought = text(delta.get("thinking"), "delta.thinking")
                if thought:
                    return (self._chunk(state, reasoning=thought),)
            elif dtype == "signature_delta":
                signature = text(delta.get("signature"), "delta.signature")
                return (self._chunk(state, reasoning_signature=signature),)
            return ()  # citation deltas carry no reply text
        if kind == "content_block_start":
            block = obj(data.get("content_block"), "content_block")
            btype = block.get("type")
            if btype == "tool_use":
                at = index(data.get("index"), "index")
                call_id = text(block.get("id"), "content_block.id")
                name = block.get("name")
                if type(name) is not str or not name:
                    raise bad("content_block.name", "a function name", name)
                state.setdefault("tools", {})[at] = []
                start = ToolCallDelta(at, call_id, name)
                return (self._chunk(state, tool_call_deltas=(start,)),)
            if btype == "text":
                first = text(block.get("text"), "content_block.text")
                return (self._chunk(state, text=first),) if first else ()
            if btype == "thinking":
                thought = text(block.get("thinking"), "content_block.thinking")
                return (self._chunk(state, reasoning=thought),) if thought else ()
            return ()  # redacted_thinking has no stream form in ChatChunk
        if kind == "content_block_stop":
            at = index(data.get("index"), "index")
            parts = state.setdefault("tools", {}).pop(at, None)
            if parts is None:
                return ()
            args = ToolCallDelta(at, arguments=_compact("".join(parts)))
            return (self._chunk(state, tool_call_deltas=(args,)),)
        if kind == "message_start":
            message = obj(data.get("message"), "message")
            state["id"] = opt_str(message.get("id"), "message.id")
            state["model"] = opt_str(message.get("model"), "message.model")
            usage = opt_obj(message.get("usage"), "message.usage")
            _usage(usage, "message.usage")  # checked now; message_delta adds to it
            state["usage"] = dict(usage)
            state["tools"] = {}
            return ()
        if kind == "message_delta":
            more = opt_obj(data.get("usage"), "usage")
            _usage(more, "usage")
            usage = state.get("usage") or {}
            usage.update({k: v for k, v in more.items() if v is not None})
            raw_finish = opt_str(
                opt_obj(data.get("delta"), "delta").get("stop_reason"), "delta.stop_reason"
            )
            return (
                self._chunk(
                    state,
                    finish_reason=finish_reason(raw_finish),
                    raw_finish_reason=raw_finish,
                    usage=_usage(usage, "usage"),
                ),
            )
        if kind == "message_stop":
            raise StreamEnd
        if kind == "error":
            raise self._error_of(data, op="stream")
        return ()  # ping, and event types added later

    def _chunk(self, state: dict[str, Any], **fields: Any) -> ChatChunk:
        return ChatChunk(
            id=state.get("id"), model=state.get("model"), provider=self.provider, **fields
        )

    def _error_of(self, data: Mapping[str, Any], *, op: str) -> ChatModelError:
        """An error object received with a 200 status (inside a stream)."""
        err = data.get("error") or {}
        if not isinstance(err, Mapping):
            err = {"message": err}
        status = _ERROR_STATUS.get(str(err.get("type")), 500)
        error = error_from_response(
            status,
            NO_HEADERS,
            b"",
            provider=self.provider,
            op=op,
            message=str(err.get("message") or ""),
            provider_code=str(err.get("type") or "error"),
        )
        request_id = data.get("request_id")
        error.request_id = request_id if type(request_id) is str else None
        return error

    def parse_error(self, status: int, headers: Headers, body: bytes) -> ChatModelError:
        """``{"type": "error", "error": {"type", "message"}, "request_id"}``."""
        error = error_from_response(status, headers, body, provider=self.provider)
        if error.request_id is None:
            error.request_id = request_id_in_body(body)
        return error

    def health_request(self) -> WireRequest:
        """``GET /v1/models``: lists models, spends no tokens."""
        return self._http.get("/v1/models")


def create(metadata: ProviderMetadata, options: ProviderOptions) -> HTTPChatModel:
    """An `anthropic` instance. The provider option ``anthropic_version`` overrides the
    API version header; a call without max_tokens (and no ``max_tokens`` option) sends 4096."""
    version = options.provider_specific.get("anthropic_version") or ANTHROPIC_VERSION
    adapter = AnthropicAdapter(metadata.name, options.api_key_value(), version=str(version))
    return HTTPChatModel(metadata, options, adapter)
