"""The Ollama native chat API: ``POST /api/chat`` with NDJSON streaming.

Reference: https://github.com/ollama/ollama/blob/main/docs/api.md (``/api/chat``: messages
with ``images`` and ``tool_calls`` whose arguments are objects, ``tools``, ``format`` as
``"json"`` or a JSON schema, ``options`` for sampling, ``stream`` that defaults to true, the
final object's ``done_reason``, ``prompt_eval_count`` and ``eval_count``; errors as
``{"error": "..."}``, also as a line of a stream) and ``GET /api/tags`` (the local models).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from .._errors import ChatModelError, InvalidConfigError
from .._http_model import HTTPChatModel, error_from_response, json_body, loads
from .._metadata import ProviderMetadata, ProviderOptions
from .._model import ChatRequest
from .._transport import Headers, NDJSONDecoder, WireRequest
from .._types import (
    ChatChunk,
    ChatResponse,
    FinishReason,
    ImagePart,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
    normalize_finish_reason,
)

__all__ = ["OllamaAdapter", "create"]

# Our sampling parameter → its name in Ollama's `options` (Modelfile parameters).
_OPTIONS = {
    "temperature": "temperature",
    "max_tokens": "num_predict",
    "top_p": "top_p",
    "top_k": "top_k",
    "stop": "stop",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}


def _usage(data: Mapping[str, Any]) -> Usage | None:
    if "eval_count" not in data and "prompt_eval_count" not in data:
        return None
    prompt = data.get("prompt_eval_count") or 0
    output = data.get("eval_count") or 0
    return Usage(input_tokens=prompt, output_tokens=output, total_tokens=prompt + output)


def _calls(raw: Iterable[Mapping[str, Any]] | None, first: int) -> list[ToolCall]:
    calls = []
    for i, call in enumerate(raw or ()):
        fn = call.get("function") or {}
        # Ollama's tool calls have no id in most versions; a position-based one lets a tool
        # result name the call it answers.
        call_id = call.get("id") or f"call_{first + i}"
        calls.append(ToolCall.from_wire(str(call_id), fn["name"], fn.get("arguments") or {}))
    return calls


def _finish(raw: str | None, has_calls: bool) -> FinishReason | None:
    # Ollama ends a turn that calls tools with done_reason "stop".
    reason = normalize_finish_reason(raw)
    if has_calls and reason is FinishReason.STOP:
        return FinishReason.TOOL_CALLS
    return reason


class OllamaAdapter:
    """``POST /api/chat`` (``stream`` always sent: Ollama streams unless told not to)."""

    supported_params: ClassVar[frozenset[str]] = frozenset(_OPTIONS)

    def __init__(self, provider: str, api_key: str | None = None) -> None:
        self.provider = provider
        auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._json_headers = {
            **auth,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._stream_headers = {
            **auth,
            "Content-Type": "application/json",
            "Accept": "application/x-ndjson",
        }

    def _message(self, msg: Message) -> dict[str, Any]:
        out: dict[str, Any] = {"role": msg.role}
        content = msg.content
        if isinstance(content, str):
            out["content"] = content
        else:
            texts: list[str] = []
            images: list[str] = []
            for part in content:
                if isinstance(part, ImagePart):
                    if part.data is None:
                        raise InvalidConfigError(
                            "Ollama takes images as base64 data, not URLs: use "
                            "ImagePart.from_bytes(...) or a data: URL",
                            op="invoke",
                            provider=self.provider,
                        )
                    images.append(part.data)
                else:
                    texts.append(part.text)
            out["content"] = "".join(texts)
            if images:
                out["images"] = images
        if msg.tool_calls:
            out["tool_calls"] = [
                {"function": {"name": call.name, "arguments": dict(call.arguments)}}
                for call in msg.tool_calls
            ]
        if msg.role == "tool" and msg.name:
            out["tool_name"] = msg.name
        return out

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body of an ``/api/chat`` request."""
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [self._message(m) for m in request.messages],
        }
        if request.tools:
            tools = []
            for tool in request.tools:
                fn: dict[str, Any] = {"name": tool.name, "parameters": dict(tool.parameters)}
                if tool.description:
                    fn["description"] = tool.description
                tools.append({"type": "function", "function": fn})
            body["tools"] = tools
        body["stream"] = request.stream
        fmt = request.response_format
        if fmt is not None and fmt.type != "text":
            body["format"] = (
                dict(fmt.schema) if fmt.type == "json_schema" and fmt.schema else "json"
            )
        if request.params:
            body["options"] = {_OPTIONS[k]: v for k, v in request.params.items()}
        if request.provider_specific:
            for key, value in request.provider_specific.items():
                current = body.get(key)
                if isinstance(current, dict) and isinstance(value, Mapping):
                    current.update(value)
                else:
                    body[key] = value
        return body

    def build_request(self, request: ChatRequest) -> WireRequest:
        """``POST /api/chat``."""
        headers = self._stream_headers if request.stream else self._json_headers
        return WireRequest("POST", "/api/chat", headers, json_body(self.build_body(request)))

    def parse_response(self, body: bytes, request: ChatRequest) -> ChatResponse:
        """The single object of a ``"stream": false`` chat."""
        data = loads(body)
        if "error" in data and "message" not in data:
            raise self.parse_error(500, _NoHeaders(), body)
        msg = data.get("message") or {}
        calls = _calls(msg.get("tool_calls"), 0)
        raw_finish = data.get("done_reason")
        return ChatResponse(
            message=Message("assistant", msg.get("content") or "", tuple(calls)),
            id=None,  # Ollama gives a reply no id
            model=data.get("model"),
            provider=self.provider,
            finish_reason=_finish(raw_finish, bool(calls)),
            raw_finish_reason=raw_finish,
            usage=_usage(data),
        )

    def new_decoder(self) -> NDJSONDecoder:
        """One JSON object per line."""
        return NDJSONDecoder()

    def parse_event(self, event: bytes, state: dict[str, Any]) -> Iterable[ChatChunk]:
        """One streamed object; the one with ``"done": true`` ends the stream."""
        data = loads(event)
        if "error" in data and "message" not in data:
            raise self.parse_error(500, _NoHeaders(), event)
        msg = data.get("message") or {}
        first = state.get("calls", 0)
        calls = _calls(msg.get("tool_calls"), first)
        if calls:
            state["calls"] = first + len(calls)
        done = bool(data.get("done"))
        raw_finish = data.get("done_reason") if done else None
        chunk = ChatChunk(
            text=msg.get("content") or "",
            tool_call_deltas=tuple(
                ToolCallDelta(first + i, call.id, call.name, call.arguments_json())
                for i, call in enumerate(calls)
            ),
            finish_reason=_finish(raw_finish, state.get("calls", 0) > 0) if done else None,
            raw_finish_reason=raw_finish,
            usage=_usage(data) if done else None,
            id=None,
            model=data.get("model"),
            provider=self.provider,
        )
        if done:
            state["done"] = True
        return (chunk,)

    def parse_error(self, status: int, headers: Headers, body: bytes) -> ChatModelError:
        """``{"error": "message"}``, mapped by status and message."""
        return error_from_response(status, headers, body, provider=self.provider)

    def health_request(self) -> WireRequest | None:
        """``GET /api/tags``: lists the local models."""
        return WireRequest("GET", "/api/tags", self._json_headers)


class _NoHeaders:
    def get(self, name: str, /) -> str | None:
        return None


def create(metadata: ProviderMetadata, options: ProviderOptions) -> HTTPChatModel:
    """An Ollama instance (a key is only sent when given: for a server behind a proxy or
    ollama.com)."""
    return HTTPChatModel(metadata, options, OllamaAdapter(metadata.name, options.api_key_value()))
