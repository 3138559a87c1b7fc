"""The Cohere v2 Chat API wire format (`cohere`).

Reference: https://docs.cohere.com/reference/chat (request and response),
https://docs.cohere.com/reference/chat-stream and https://docs.cohere.com/docs/streaming
(the SSE events), https://docs.cohere.com/docs/tool-use-streaming (tool-call events) and
https://docs.cohere.com/reference/errors.

Mapping notes:
- ``top_p``/``top_k``/``stop`` are sent as ``p``/``k``/``stop_sequences``; ``stream`` is
  always sent, as the official SDK does.
- ``tool_choice`` takes ``auto`` (the default, not sent), ``required`` and ``none``; the API
  cannot force one named tool, nor turn parallel calls off (capability_not_supported).
- ``Usage`` counts come from ``usage.tokens`` (what the model processed), falling back to
  ``usage.billed_units``; the API reports no cache or reasoning counts (they stay None).
- The response has no model field, so `ChatResponse.model` is None.
- The assistant's ``tool_plan`` and ``thinking`` content are not part of the reply's text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from .._errors import CapabilityNotSupportedError, ChatModelError
from .._metadata import ProviderMetadata, ProviderOptions
from .._request import ChatRequest
from .._transport._framing import SSEDecoder
from .._transport._wire import Headers, WireRequest
from .._types import ChatChunk, ChatResponse, ImagePart, Message, ToolCallDelta, Usage
from ._common import (
    JSONRequests,
    bearer,
    count,
    finish_reason,
    function_tool,
    image_url,
    index,
    obj,
    openai_tool_calls,
    opt_arr,
    opt_obj,
    opt_str,
    reply,
    stop_list,
    text,
    tool_calls_of_openai,
    without_reasoning,
)
from ._http import ENDED, HTTPChatModel, StreamEnd, error_from_response, loads

__all__ = ["CohereAdapter", "create"]

_RENAMED = {"top_p": "p", "top_k": "k"}
_TOOL_CHOICE = {"required": "REQUIRED", "none": "NONE"}


def _wire_message(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": msg.role}
    content = without_reasoning(msg.content)
    if isinstance(content, str):
        if content or not msg.tool_calls:
            out["content"] = content
    else:
        out["content"] = [
            {"type": "image_url", "image_url": image_url(p)}
            if isinstance(p, ImagePart)
            else {"type": "text", "text": p.text}
            for p in content
        ]
    if msg.tool_calls:
        out["tool_calls"] = openai_tool_calls(msg.tool_calls)
    if msg.tool_call_id is not None:
        out["tool_call_id"] = msg.tool_call_id
    return out


def _usage(raw: Any, path: str) -> Usage | None:
    raw = opt_obj(raw, path)
    key = "tokens" if raw.get("tokens") else "billed_units"
    counts = opt_obj(raw.get(key), f"{path}.{key}")
    if not counts:
        return None
    prompt = count(counts, "input_tokens", f"{path}.{key}") or 0
    output = count(counts, "output_tokens", f"{path}.{key}") or 0
    return Usage(input_tokens=prompt, output_tokens=output, total_tokens=prompt + output)


class CohereAdapter:
    """Chat over ``POST {base_url}/v2/chat`` with a Bearer key."""

    supported_params: ClassVar[frozenset[str]] = frozenset(
        {
            "temperature",
            "max_tokens",
            "top_p",
            "top_k",
            "stop",
            "seed",
            "frequency_penalty",
            "presence_penalty",
        }
    )

    def __init__(self, provider: str, api_key: str | None) -> None:
        self.provider = provider
        self._http = JSONRequests(bearer(api_key))

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body of a v2 chat request."""
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [_wire_message(m) for m in request.messages],
        }
        for key, value in request.params.items():
            if key == "stop":
                body["stop_sequences"] = stop_list(value)
            else:
                body[_RENAMED.get(key, key)] = value
        if request.tools:
            body["tools"] = [function_tool(tool) for tool in request.tools]
            if any(tool.strict for tool in request.tools):
                body["strict_tools"] = True
            choice = request.tool_choice
            if choice is not None and choice != "auto":
                if not isinstance(choice, str) or choice not in _TOOL_CHOICE:
                    raise self._unsupported(f"tool_choice {choice!r} (only auto, required, none)")
                body["tool_choice"] = _TOOL_CHOICE[choice]
            if request.parallel_tool_calls is False:
                raise self._unsupported("parallel_tool_calls=False")
        fmt = request.response_format
        if fmt is not None and fmt.type != "text":
            spec: dict[str, Any] = {"type": "json_object"}
            if fmt.type == "json_schema":
                spec["json_schema"] = fmt.schema
            body["response_format"] = spec
        body["stream"] = request.stream
        if request.provider_specific:
            body.update(request.provider_specific)
        return body

    def _unsupported(self, what: str) -> ChatModelError:
        return CapabilityNotSupportedError(
            f"provider {self.provider!r} does not support {what}",
            op="invoke",
            provider=self.provider,
        )

    def build_request(self, request: ChatRequest) -> WireRequest:
        """``POST /v2/chat``."""
        return self._http.post("/v2/chat", self.build_body(request), stream=request.stream)

    def parse_response(self, body: bytes, request: ChatRequest) -> ChatResponse:
        """A v2 chat response: its text content joined, its tool calls."""
        data = obj(loads(body), "the body")
        msg = obj(data.get("message"), "message")
        texts = []
        for i, item in enumerate(opt_arr(msg.get("content"), "message.content")):
            part = obj(item, f"message.content[{i}]")
            if part.get("type") == "text":
                texts.append(text(part.get("text"), f"message.content[{i}].text"))
        return reply(
            self.provider,
            "".join(texts),
            tool_calls_of_openai(msg.get("tool_calls"), "message.tool_calls"),
            raw_finish=opt_str(data.get("finish_reason"), "finish_reason"),
            usage=_usage(data.get("usage"), "usage"),
            id=opt_str(data.get("id"), "id"),
        )

    def new_decoder(self) -> SSEDecoder:
        """v2 chat streams are server-sent events."""
        return SSEDecoder()

    def parse_event(
        self, event: tuple[str | None, bytes], state: dict[str, Any]
    ) -> Iterable[ChatChunk]:
        """One stream event; ``[DONE]`` ends the stream."""
        data = event[1]
        if data == b"[DONE]":
            raise StreamEnd
        item = obj(loads(data), "the event")
        kind = item.get("type") or event[0]
        delta = opt_obj(item.get("delta"), "delta")
        message = opt_obj(delta.get("message"), "delta.message")
        if kind == "content-delta":
            content = opt_obj(message.get("content"), "delta.message.content")
            fragment = text(content.get("text"), "delta.message.content.text")
            return (self._chunk(state, text=fragment),) if fragment else ()
        if kind == "tool-call-start":
            call = opt_obj(message.get("tool_calls"), "delta.message.tool_calls")
            fn = opt_obj(call.get("function"), "delta.message.tool_calls.function")
            start = ToolCallDelta(
                index(item.get("index"), "index"),
                opt_str(call.get("id"), "delta.message.tool_calls.id"),
                opt_str(fn.get("name"), "delta.message.tool_calls.function.name"),
                text(fn.get("arguments"), "delta.message.tool_calls.function.arguments"),
            )
            return (self._chunk(state, tool_call_deltas=(start,)),)
        if kind == "tool-call-delta":
            call = opt_obj(message.get("tool_calls"), "delta.message.tool_calls")
            fn = opt_obj(call.get("function"), "delta.message.tool_calls.function")
            fragment = text(fn.get("arguments"), "delta.message.tool_calls.function.arguments")
            if not fragment:
                return ()
            part = ToolCallDelta(index(item.get("index"), "index"), arguments=fragment)
            return (self._chunk(state, tool_call_deltas=(part,)),)
        if kind == "message-start":
            state["id"] = opt_str(item.get("id"), "id")
            return ()
        if kind == "message-end":
            raw_finish = opt_str(delta.get("finish_reason"), "delta.finish_reason")
            state[ENDED] = True  # [DONE] follows
            return (
                self._chunk(
                    state,
                    finish_reason=finish_reason(raw_finish),
                    raw_finish_reason=raw_finish,
                    usage=_usage(delta.get("usage"), "delta.usage"),
                ),
            )
        return ()  # content-start/end, tool-plan-delta, tool-call-end, citations, debug

    def _chunk(self, state: dict[str, Any], **fields: Any) -> ChatChunk:
        return ChatChunk(id=state.get("id"), provider=self.provider, **fields)

    def parse_error(self, status: int, headers: Headers, body: bytes) -> ChatModelError:
        """``{"id", "message"}``, mapped by status and message; the request id is the
        ``x-debug-trace-id`` header when no usual request-id header came."""
        error = error_from_response(status, headers, body, provider=self.provider)
        if error.request_id is None:
            error.request_id = headers.get("x-debug-trace-id")
        return error

    def health_request(self) -> WireRequest:
        """``GET /v1/models`` (Cohere lists models under v1 only): spends no tokens."""
        return self._http.get("/v1/models")


def create(metadata: ProviderMetadata, options: ProviderOptions) -> HTTPChatModel:
    """A `cohere` instance."""
    return HTTPChatModel(metadata, options, CohereAdapter(metadata.name, options.api_key_value()))
