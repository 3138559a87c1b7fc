"""`fake`: a deterministic in-process chat model for tests and demos.

It replies from a script, in order, then echoes the last user message. A scripted reply is
a str, a dict (``text``, ``tool_calls`` as ``{"name", "arguments", "id"}``,
``finish_reason``), a `ChatResponse`, or an error (a `ChatModelError`, or
``{"error": "rate_limited", "message": "..."}``). Streams split the reply into word chunks
and accumulate to exactly what `invoke` returns. `latency` (seconds) is slept before each
reply. Every request it receives is kept in `requests`.

    >>> model = FakeChatModel(responses=["Hello!", {"tool_calls": [{"name": "f"}]}])
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from .._errors import ChatModelError, InvalidResponseError, make_error
from .._metadata import ProviderMetadata, ProviderOptions
from .._model import ChatModel
from .._observe import CallScope
from .._request import ChatRequest
from .._tools import ToolCall
from .._types import (
    ChatChunk,
    ChatResponse,
    HealthStatus,
    Message,
    ToolCallDelta,
    Usage,
    normalize_finish_reason,
)
from ._builtins import BUILTINS
from ._common import bad, obj, opt_arr, opt_str, tool_call
from ._http import ReplyShapeError

__all__ = ["FAKE_METADATA", "FakeChatModel", "create"]


def _metadata() -> ProviderMetadata:
    return next(meta for _, meta in BUILTINS if meta.name == "fake")


FAKE_METADATA = _metadata()

_WORDS = re.compile(r"\S+\s*|\s+")


def _tokens(text: str) -> int:
    return len(text.split())


class FakeChatModel(ChatModel):
    """A scripted model. Options (also accepted as `provider_specific` entries when created
    through the registry): `responses` (the script), `latency` (seconds per reply), `health`
    (the status its probe reports)."""

    def __init__(
        self,
        metadata: ProviderMetadata | None = None,
        options: ProviderOptions | None = None,
        *,
        responses: Sequence[Any] | None = None,
        latency: float | None = None,
        health: str | None = None,
    ) -> None:
        super().__init__(metadata or FAKE_METADATA, options)
        specific = self.options.provider_specific
        script = responses if responses is not None else specific.get("responses", ())
        self.responses: list[Any] = list(script)
        self.latency = float(latency if latency is not None else specific.get("latency", 0.0))
        self.health = str(health or specific.get("health", "healthy"))
        self.requests: list[ChatRequest] = []
        self._lock = threading.Lock()
        self._next = 0
        self._ids = itertools.count(1)

    def _reply(self, request: ChatRequest) -> ChatResponse:
        with self._lock:
            self.requests.append(request)
            item = self.responses[self._next] if self._next < len(self.responses) else None
            self._next += 1
            number = next(self._ids)
        if isinstance(item, ChatModelError):
            raise item
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, ChatResponse):
            return item
        text = ""
        calls: tuple[ToolCall, ...] = ()
        finish: str | None = None
        if item is None:
            last = next((m for m in reversed(request.messages) if m.role == "user"), None)
            text = last.text if last is not None else ""
        elif isinstance(item, str):
            text = item
        elif isinstance(item, Mapping):
            if "error" in item:
                raise make_error(
                    str(item["error"]),
                    str(item.get("message", "injected error")),
                    op="invoke",
                    provider=self.provider,
                    status_code=item.get("status_code"),
                )
            try:
                text = str(item.get("text", ""))
                calls = _scripted_calls(item.get("tool_calls"), number)
                finish = opt_str(item.get("finish_reason"), "finish_reason")
            except ReplyShapeError as exc:
                raise InvalidResponseError(
                    f"cannot use scripted reply {number}: {exc}",
                    op="invoke",
                    provider=self.provider,
                ) from exc
        else:
            text = (
                json.dumps(item) if not hasattr(item, "model_dump_json") else item.model_dump_json()
            )
        if finish is None:
            finish = "tool_calls" if calls else "stop"
        prompt = sum(_tokens(m.text) for m in request.messages)
        output = _tokens(text) + sum(len(c.arguments) for c in calls)
        return ChatResponse(
            message=Message("assistant", text, calls),
            id=f"fake-{number}",
            model=request.model,
            provider=self.provider,
            finish_reason=normalize_finish_reason(finish),
            raw_finish_reason=finish,
            usage=Usage(prompt, output, prompt + output),
        )

    def _invoke(self, request: ChatRequest, scope: CallScope) -> ChatResponse:
        if self.latency:
            time.sleep(self.latency)
        return self._reply(request)

    async def _ainvoke(self, request: ChatRequest, scope: CallScope) -> ChatResponse:
        if self.latency:
            await asyncio.sleep(self.latency)
        return self._reply(request)

    def _stream(self, request: ChatRequest, scope: CallScope) -> Iterator[ChatChunk]:
        if self.latency:
            time.sleep(self.latency)
        yield from _chunks_of(self._reply(request))

    async def _astream(self, request: ChatRequest, scope: CallScope) -> AsyncIterator[ChatChunk]:
        if self.latency:
            await asyncio.sleep(self.latency)
        for chunk in _chunks_of(self._reply(request)):
            await asyncio.sleep(0)
            yield chunk

    def _health(self, timeout: float) -> HealthStatus:
        state = self.health if self.health in ("healthy", "degraded", "unhealthy") else "unknown"
        code = "provider_unavailable" if state == "unhealthy" else None
        return HealthStatus(state, self.latency, "fake", code)  # type: ignore[arg-type]

    async def _ahealth(self, timeout: float) -> HealthStatus:
        return self._health(timeout)


def _scripted_calls(raw: Any, number: int) -> tuple[ToolCall, ...]:
    calls = []
    for i, item in enumerate(opt_arr(raw, "tool_calls")):
        call = obj(item, f"tool_calls[{i}]") if not isinstance(item, Mapping) else item
        call_id = call.get("id") or f"call_{number}_{i}"
        if type(call_id) is not str:
            raise bad(f"tool_calls[{i}].id", "a string", call_id)
        args = call.get("arguments")
        if isinstance(args, Mapping):
            args = dict(args)
        calls.append(tool_call(call_id, call.get("name"), args or {}, f"tool_calls[{i}]"))
    return tuple(calls)


def _chunks_of(response: ChatResponse) -> Iterator[ChatChunk]:
    """Word-sized text chunks, then each tool call in two fragments, then the finish."""
    rid, model, provider = response.id, response.model, response.provider
    for word in _WORDS.findall(response.text):
        yield ChatChunk(text=word, id=rid, model=model, provider=provider)
    for index, call in enumerate(response.tool_calls):
        args = call.arguments_json()
        half = len(args) // 2
        yield ChatChunk(
            tool_call_deltas=(ToolCallDelta(index, call.id, call.name, args[:half]),),
            id=rid,
            model=model,
        )
        yield ChatChunk(tool_call_deltas=(ToolCallDelta(index, arguments=args[half:]),), id=rid)
    yield ChatChunk(
        finish_reason=response.finish_reason,
        raw_finish_reason=response.raw_finish_reason,
        usage=response.usage,
        id=rid,
        model=model,
        provider=provider,
    )


def create(metadata: ProviderMetadata, options: ProviderOptions) -> FakeChatModel:
    """The registry's creator for `fake`."""
    return FakeChatModel(metadata, options)
