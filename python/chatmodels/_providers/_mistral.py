"""`mistral`: Mistral's native chat completions, ``POST /v1/chat/completions`` at
https://api.mistral.ai.

Reference: https://docs.mistral.ai/api/ (chat completion request, response and the
``chat.completion.chunk`` SSE stream ending in ``[DONE]``). The wire format is OpenAI's with
a few differences, which this subclass of the OpenAI adapter handles: ``random_seed`` instead
of ``seed``; ``stream`` always sent and no ``stream_options`` (usage arrives on the last
chunk anyway); ``safe_prompt``; ``tool_choice: "any"``; message content that may be a list of
chunks (``text``, and ``thinking`` from reasoning models: the reply's reasoning, whole and
streamed, never its text); streamed tool calls that arrive whole, each possibly with index
0; request ids in ``mistral-correlation-id`` / ``x-kong-request-id``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from .._errors import ChatModelError
from .._metadata import ProviderMetadata, ProviderOptions
from .._request import ChatRequest
from .._transport._wire import Headers
from .._types import ChatChunk, ChatResponse, ToolCallDelta
from ._common import opt_arr, request_id_in_body, text
from ._http import HTTPChatModel, error_from_response, loads
from ._openai import OpenAIAdapter

__all__ = ["MistralAdapter", "create"]

# A chunk list where a str is usual: reasoning models answer with typed content chunks.
_LIST_CONTENT = (b'"content":[', b'"content": [')


def _chunks_text(content: list[Any], path: str) -> tuple[str, str | None]:
    """A chunk list's reply text (its ``text`` chunks joined) and its reasoning (its
    ``thinking`` chunks' text joined; None when it has none); `path` names the list."""
    out: list[str] = []
    thought: list[str] | None = None
    for i, part in enumerate(content):
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            out.append(text(part.get("text"), f"{path}[{i}].text"))
        elif kind == "thinking":
            if thought is None:
                thought = []
            inner = part.get("thinking")
            if isinstance(inner, str):
                thought.append(inner)
            else:
                for j, p in enumerate(opt_arr(inner, f"{path}[{i}].thinking")):
                    if isinstance(p, dict) and p.get("type") == "text":
                        thought.append(text(p.get("text"), f"{path}[{i}].thinking[{j}].text"))
    return "".join(out), None if thought is None else "".join(thought)


def _flatten_content(data: Any) -> Any:
    """A decoded response or chunk, its list contents flattened to text (in place); the
    ``thinking`` chunks become a DeepSeek-style ``reasoning_content``, which the OpenAI
    parser reads as reasoning. What is not of the expected shape is left for the OpenAI
    parser to refuse."""
    choices = data.get("choices") if type(data) is dict else None
    if type(choices) is not list:
        return data
    for i, choice in enumerate(choices):
        if type(choice) is not dict:
            continue
        for key in ("message", "delta"):
            msg = choice.get(key)
            if isinstance(msg, dict) and isinstance(msg.get("content"), list):
                path = f"choices[{i}].{key}.content"
                msg["content"], thought = _chunks_text(msg["content"], path)
                if thought is not None:
                    msg["reasoning_content"] = thought
    return data


class _RequestIdHeaders:
    """Headers where ``x-request-id`` falls back to Mistral's own request-id headers."""

    __slots__ = ("_body_id", "_headers")

    def __init__(self, headers: Headers, body_id: str | None) -> None:
        self._headers = headers
        self._body_id = body_id

    def get(self, name: str, /) -> str | None:
        value = self._headers.get(name)
        if value is None and name == "x-request-id":
            value = (
                self._headers.get("mistral-correlation-id")
                or self._headers.get("x-kong-request-id")
                or self._body_id
            )
        return value


class MistralAdapter(OpenAIAdapter):
    """Mistral chat completions: the OpenAI adapter with Mistral's differences."""

    path = "/v1/chat/completions"
    models_path = "/v1/models"  # lists models, spends no tokens

    def __init__(self, provider: str, api_key: str | None, *, safe_prompt: bool | None = None):
        super().__init__(provider, api_key)
        self.safe_prompt = safe_prompt

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        """The OpenAI body, renamed and trimmed to Mistral's fields."""
        body = super().build_body(request)
        given = request.provider_specific
        if "seed" in request.params and "seed" not in given:
            seed = body.pop("seed")
            body.setdefault("random_seed", seed)
        if "max_completion_tokens" in body and "max_completion_tokens" not in given:
            body["max_tokens"] = body.pop("max_completion_tokens")
        if request.stream:
            if "stream_options" not in given:
                body.pop("stream_options", None)
        else:
            body.setdefault("stream", False)
        if request.tool_choice == "any":
            body["tool_choice"] = "any"
        if self.safe_prompt is not None:
            body.setdefault("safe_prompt", self.safe_prompt)
        return body

    def parse_response(self, body: bytes, request: ChatRequest) -> ChatResponse:
        """A ``chat.completion``; list content (reasoning models) reduced to its text, its
        ``thinking`` chunks the reply's reasoning."""
        if any(marker in body for marker in _LIST_CONTENT):
            return self._reply_of(_flatten_content(loads(body)), body)
        return super().parse_response(body, request)

    def parse_chunk(self, obj: Any, state: dict[str, Any]) -> ChatChunk | Iterable[ChatChunk]:
        """One decoded ``chat.completion.chunk``, list content reduced to its text and its
        ``thinking`` chunks to the chunk's reasoning. Mistral
        streams each tool call whole, and parallel calls may all say index 0: calls are
        numbered by their ids instead."""
        chunks = super().parse_chunk(_flatten_content(obj), state)
        if isinstance(chunks, ChatChunk):  # a text delta: no tool call to renumber
            return chunks
        out = []
        for chunk in chunks:
            if chunk.tool_call_deltas:
                chunk = dataclasses.replace(
                    chunk,
                    tool_call_deltas=tuple(_renumber(d, state) for d in chunk.tool_call_deltas),
                )
            out.append(chunk)
        return out

    def parse_error(self, status: int, headers: Headers, body: bytes) -> ChatModelError:
        """``{"message", "type", "code"}`` or ``{"detail": ...}``; the request id from
        Mistral's headers (or the body's ``request_id``)."""
        headers = _RequestIdHeaders(headers, request_id_in_body(body))
        return error_from_response(status, headers, body, provider=self.provider)


def _renumber(delta: ToolCallDelta, state: dict[str, Any]) -> ToolCallDelta:
    ids: dict[str, int] = state.setdefault("tool_ids", {})
    if delta.id:
        index = ids.setdefault(delta.id, len(ids))
        state["tool_last"] = index
    else:
        index = state.get("tool_last", delta.index)
    return dataclasses.replace(delta, index=index)


def create(metadata: ProviderMetadata, options: ProviderOptions) -> HTTPChatModel:
    """A Mistral chat model (``safe_prompt`` may be set as an option for every call)."""
    safe = options.provider_specific.get("safe_prompt")
    adapter = MistralAdapter(
        metadata.name, options.api_key_value(), safe_prompt=None if safe is None else bool(safe)
    )
    return HTTPChatModel(metadata, options, adapter)
