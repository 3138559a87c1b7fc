"""The Ollama native chat API: ``POST /api/chat`` with NDJSON streaming.

Reference: https://github.com/ollama/ollama/blob/main/docs/api.md (``/api/chat``: messages
with ``images`` and ``tool_calls`` whose arguments are objects, ``tools``, ``format`` as
``"json"`` or a JSON schema, ``options`` for sampling, ``stream`` that defaults to true, the
final object's ``done_reason``, ``prompt_eval_count`` and ``eval_count``; errors as
``{"error": "..."}``, also as a line of a stream) and ``GET /api/tags`` (the local models).
A thinking model's ``message.thinking`` (whole, or in each streamed line) is the reply's
reasoning, never its text; Ollama takes no reasoning back, so requests leave it out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from .._errors import ChatModelError, InvalidConfigError
from .._metadata import ProviderMetadata, ProviderOptions
from .._request import ChatRequest
from .._tools import ToolCall
from .._transport._framing import NDJSONDecoder
from .._transport._wire import Headers, WireRequest
from .._types import ChatChunk, ChatResponse, ImagePart, Message, ReasoningPart, Usage
from ._common import (
    NO_HEADERS,
    JSONRequests,
    bad,
    bearer,
    count,
    finish_reason,
    function_tool,
    merge_specific,
    obj,
    opt_arr,
    opt_obj,
    opt_str,
    reply,
    text,
    tool_call,
    whole_call_deltas,
    without_reasoning,
)
from ._http import ENDED, HTTPChatModel, error_from_response, loads

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
    prompt = count(data, "prompt_eval_count", "") or 0
    output = count(data, "eval_count", "") or 0
    return Usage(input_tokens=prompt, output_tokens=output, total_tokens=prompt + output)


def _calls(raw: Any, first: int) -> list[ToolCall]:
    calls = []
    for i, item in enumerate(opt_arr(raw, "message.tool_calls")):
        path = f"message.tool_calls[{i}]"
        call = obj(item, path)
        fn = opt_obj(call.get("function"), f"{path}.function")
        # Ollama's tool calls have no id in most versions; a position-based one lets a tool
        # result name the call it answers.
        call_id = opt_str(call.get("id"), f"{path}.id") or f"call_{first + i}"
        args = fn.get("arguments")
        calls.append(
            tool_call(call_id, fn.get("name"), {} if args is None else args, f"{path}.function")
        )
    return calls


class OllamaAdapter:
    """``POST /api/chat`` (``stream`` always sent: Ollama streams unless told not to)."""

    supported_params: ClassVar[frozenset[str]] = frozenset(_OPTIONS)

    def __init__(self, provider: str, api_key: str | None = None) -> None:
        self.provider = provider
        self._http = JSONRequests(bearer(api_key), stream_accept="application/x-ndjson")

    def _message(self, msg: Message) -> dict[str, Any]:
        out: dict[str, Any] = {"role": msg.role}
        content = without_reasoning(msg.content)
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
            body["tools"] = [function_tool(tool) for tool in request.tools]
        body["stream"] = request.stream
        fmt = request.response_format
        if fmt is not None and fmt.type != "text":
            body["format"] = (
                dict(fmt.schema) if fmt.type == "json_schema" and fmt.schema else "json"
            )
        if request.params:
            body["options"] = {_OPTIONS[k]: v for k, v in request.params.items()}
        if request.provider_specific:
            merge_specific(body, request.provider_specific)
        return body

    def build_request(self, request: ChatRequest) -> WireRequest:
        """``POST /api/chat``."""
        return self._http.post("/api/chat", self.build_body(request), stream=request.stream)

    def parse_response(self, body: bytes, request: ChatRequest) -> ChatResponse:
        """The single object of a ``"stream": false`` chat (``message.thinking`` is its
        reasoning)."""
        data = obj(loads(body), "the body")
        if "error" in data and "message" not in data:
            raise self.parse_error(500, NO_HEADERS, body)
        msg = opt_obj(data.get("message"), "message")
        thought = text(msg.get("thinking"), "message.thinking")
        return reply(  # Ollama gives a reply no id
            self.provider,
            text(msg.get("content"), "message.content"),
            _calls(msg.get("tool_calls"), 0),
            raw_finish=opt_str(data.get("done_reason"), "done_reason"),
            usage=_usage(data),
            model=opt_str(data.get("model"), "model"),
            calls_end_with_stop=True,
            reasoning=(ReasoningPart(thought),) if thought else (),
        )

    def new_decoder(self) -> NDJSONDecoder:
        """One JSON object per line."""
        return NDJSONDecoder()

    def parse_event(self, event: bytes, state: dict[str, Any]) -> Iterable[ChatChunk]:
        """One streamed object (its ``message.thinking`` is the chunk's reasoning); the one
        with ``"done": true`` ends the stream."""
        data = obj(loads(event), "the event")
        if "error" in data and "message" not in data:
            raise self.parse_error(500, NO_HEADERS, event)
        msg = opt_obj(data.get("message"), "message")
        first = state.get("calls", 0)
        calls = _calls(msg.get("tool_calls"), first)
        if calls:
            state["calls"] = first + len(calls)
        done = data.get("done")
        if done is not None and type(done) is not bool:
            raise bad("done", "a boolean", done)
        raw_finish = opt_str(data.get("done_reason"), "done_reason") if done else None
        chunk = ChatChunk(
            text=text(msg.get("content"), "message.content"),
            tool_call_deltas=whole_call_deltas(calls, first),
            finish_reason=(
                finish_reason(raw_finish, tool_calls=state.get("calls", 0) > 0) if done else None
            ),
            raw_finish_reason=raw_finish,
            usage=_usage(data) if done else None,
            id=None,
            model=opt_str(data.get("model"), "model"),
            provider=self.provider,
            reasoning=text(msg.get("thinking"), "message.thinking"),
        )
        if done:
            state[ENDED] = True
        return (chunk,)

    def parse_error(self, status: int, headers: Headers, body: bytes) -> ChatModelError:
        """``{"error": "message"}``, mapped by status and message."""
        return error_from_response(status, headers, body, provider=self.provider)

    def health_request(self) -> WireRequest | None:
        """``GET /api/tags``: lists the local models."""
        return self._http.get("/api/tags")


def create(metadata: ProviderMetadata, options: ProviderOptions) -> HTTPChatModel:
    """An Ollama instance (a key is only sent when given: for a server behind a proxy or
    ollama.com)."""
    return HTTPChatModel(metadata, options, OllamaAdapter(metadata.name, options.api_key_value()))
