"""The call observer: one span, the metrics and the log records of each chat call.

`TelemetryObserver.start(info)` returns a scope that the chat-model layer drives:
``attempt(n, error)`` for each retry, ``chunk(c)`` per stream chunk, then exactly one of
``end(response)`` or ``fail(error)``; ``close()`` (also run on garbage collection) ends a
stream that was abandoned early. Whatever the order of calls, the span ends exactly once and
never ends or detaches its parent.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from . import _content
from ._container import Container, Runtime, get_container
from ._correlation import (
    current_correlation_id,
    new_correlation_id,
    reset_correlation_id,
    set_correlation_id,
)
from ._logging import log_event
from ._settings import Level

__all__ = ["NoOpScope", "TelemetryObserver"]

_REQUEST_PARAMS = (
    ("temperature", "gen_ai.request.temperature"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
    ("seed", "gen_ai.request.seed"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
)
# The conventions type these as double (top_k included).
_DOUBLES = frozenset({"temperature", "top_p", "top_k", "frequency_penalty", "presence_penalty"})
_USAGE = (
    ("input_tokens", "gen_ai.usage.input_tokens"),
    ("output_tokens", "gen_ai.usage.output_tokens"),
    ("cache_read_input_tokens", "gen_ai.usage.cache_read.input_tokens"),
    ("cache_creation_input_tokens", "gen_ai.usage.cache_creation.input_tokens"),
    ("reasoning_tokens", "gen_ai.usage.reasoning.output_tokens"),
)


def error_type(error: BaseException) -> str:
    """The error.type of an exception: a ChatModelError's code, else the class name."""
    code = getattr(error, "code", None)
    value = getattr(code, "value", code)
    return value if isinstance(value, str) else type(error).__qualname__


class NoOpScope:
    """A scope that records nothing (level off, or the no-op observer)."""

    __slots__ = ()
    correlation_id = None

    def attempt(self, number: int, error: BaseException | None) -> None:
        """Nothing."""

    def chunk(self, chunk: Any) -> None:
        """Nothing."""

    def end(self, response: Any) -> None:
        """Nothing."""

    def fail(self, error: BaseException) -> None:
        """Nothing."""

    def close(self) -> None:
        """Nothing."""


_NOOP = NoOpScope()


class TelemetryObserver:
    """Observe chat calls with the tracer, metrics and logger of a `Container`.

    Args:
        container: the container to use; default: the global one at each call, so
            `chatmodels.configure(...)` takes effect at once.
    """

    def __init__(self, container: Container | None = None) -> None:
        self._container = container

    def start(self, info: Any) -> NoOpScope | _Scope:
        """Begin observing a call described by `info` (a CallInfo)."""
        runtime = (self._container or get_container()).runtime()
        if runtime.settings.level is Level.OFF:
            return _NOOP
        return _Scope(runtime, info)


def _start_attributes(info: Any, model: str | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": getattr(info, "operation", None) or "chat",
        "gen_ai.provider.name": _provider_name(info),
    }
    if model:
        attrs["gen_ai.request.model"] = model
    address = getattr(info, "server_address", None)
    if address:
        attrs["server.address"] = address
        port = getattr(info, "server_port", None)
        if port is not None:
            attrs["server.port"] = port
    params = getattr(info, "params", None) or {}
    for field, name in _REQUEST_PARAMS:
        value = params.get(field)
        if value is not None:
            attrs[name] = float(value) if field in _DOUBLES else value
    stop = params.get("stop")
    if stop:
        attrs["gen_ai.request.stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    count = params.get("n")
    if count is not None and count != 1:
        attrs["gen_ai.request.choice.count"] = count
    if getattr(info, "stream", False):
        attrs["gen_ai.request.stream"] = True
    conversation = getattr(info, "conversation_id", None)
    if conversation:
        attrs["gen_ai.conversation.id"] = conversation
    output_type = getattr(info, "output_type", None)
    if output_type:
        attrs["gen_ai.output.type"] = output_type
    return attrs


def _provider_name(info: Any) -> str:
    return str(getattr(info, "gen_ai_provider_name", None) or getattr(info, "provider", "_OTHER"))


class _Scope:
    __slots__ = (
        "_attached",
        "_cid_token",
        "_done",
        "_first",
        "_gaps",
        "_info",
        "_last",
        "_model",
        "_rt",
        "_span",
        "_start",
        "_stream",
        "chunks",
        "correlation_id",
    )

    def __init__(self, runtime: Runtime, info: Any) -> None:
        self._rt = runtime
        self._info = info
        self._done = False
        self._first: float | None = None
        self._last = 0.0
        self._gaps: list[float] = []
        self._span: Any = None
        self._attached: Any = None
        self._cid_token: Any = None
        self._stream = bool(getattr(info, "stream", False))
        self._model: str | None = getattr(info, "request_model", None)
        self.chunks = 0
        self.correlation_id: str | None = current_correlation_id()
        tracer = runtime.tracer
        if tracer is not None:
            self._open_span(tracer, info)
        self._start = time.perf_counter()

    def _open_span(self, tracer: Any, info: Any) -> None:
        from opentelemetry import context, trace

        operation = getattr(info, "operation", None) or "chat"
        name = f"{operation} {self._model}" if self._model else operation
        span = tracer.start_span(
            name, kind=trace.SpanKind.CLIENT, attributes=_start_attributes(info, self._model)
        )
        self._span = span
        if span.is_recording():
            self.correlation_id = format(span.get_span_context().trace_id, "032x")
            if self._rt.settings.capture_content:
                self._capture_input(span, info)
        if self.correlation_id is not None:
            self._cid_token = set_correlation_id(self.correlation_id)
        if not self._stream:
            # A whole call runs in one context: make the span current for the layers below.
            self._attached = context.attach(trace.set_span_in_context(span))

    def _capture_input(self, span: Any, info: Any) -> None:
        messages = getattr(info, "messages", None)
        if messages is not None:
            span.set_attribute("gen_ai.input.messages", _content.input_messages(messages))
        system = getattr(info, "system_instructions", None)
        if system:
            span.set_attribute("gen_ai.system_instructions", _content.system_instructions(system))
        tools = getattr(info, "tools", None)
        if tools:
            span.set_attribute("gen_ai.tool.definitions", _content.tool_definitions(tools))

    # -- during the call -----------------------------------------------------------------

    def attempt(self, number: int, error: BaseException | None) -> None:
        """Transport attempt `number` (1-based) ended; `error` is why it is retried, or None.

        A first attempt that succeeds records nothing; every other attempt becomes a span
        event ``chatmodels.attempt`` with its number (and error.type when it failed).
        """
        if number <= 1 and error is None:
            return
        attrs: dict[str, Any] = {"chatmodels.attempt": number}
        if error is not None:
            attrs["error.type"] = error_type(error)
        span = self._span
        if span is not None and span.is_recording():
            span.add_event("chatmodels.attempt", attrs)
        if error is not None and self._rt.settings.tracing:
            log_event(
                self._rt.logger,
                logging.INFO,
                f"attempt {number} failed, retrying: {error}",
                op="chat",
                provider=getattr(self._info, "provider", None),
                model=self._model,
                code=attrs.get("error.type"),
                correlation_id=self.correlation_id,
                span=span,
            )

    def chunk(self, chunk: Any) -> None:
        """A stream chunk arrived."""
        now = time.perf_counter()
        if self._first is None:
            self._first = now - self._start
            span = self._span
            if span is not None:
                span.set_attribute("gen_ai.response.time_to_first_chunk", self._first)
        else:
            self._gaps.append(now - self._last)
        self._last = now
        self.chunks += 1
        if self._rt.settings.debug and self._span is not None:
            text = getattr(chunk, "text", None)
            self._span.add_event(
                "chatmodels.chunk",
                {"chatmodels.chunk.index": self.chunks - 1,
                 "chatmodels.chunk.text_length": len(text) if text else 0},
            )  # fmt: skip

    # -- the end, exactly once -----------------------------------------------------------

    def end(self, response: Any) -> None:
        """The call succeeded with `response` (a ChatResponse)."""
        if self._done:
            return
        self._done = True
        duration = time.perf_counter() - self._start
        usage = getattr(response, "usage", None)
        response_model = getattr(response, "model", None)
        self._record(duration, response_model, None, usage)
        span = self._span
        if span is not None:
            if span.is_recording():
                self._response_attributes(span, response, usage)
                if self._rt.settings.capture_content:
                    span.set_attribute("gen_ai.output.messages", _content.output_messages(response))
            self._finish_span(span)
        self._release()

    def fail(self, error: BaseException) -> None:
        """The call failed with `error`; sets its correlation_id."""
        if self._done:
            return
        self._done = True
        duration = time.perf_counter() - self._start
        code = error_type(error)
        if self.correlation_id is None:
            self.correlation_id = new_correlation_id()
        if hasattr(error, "correlation_id"):
            error.correlation_id = self.correlation_id
        self._record(duration, None, code, None)
        span = self._span
        if span is not None:
            from opentelemetry.trace import Status, StatusCode

            if span.is_recording():
                span.set_attribute("error.type", code)
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, str(error)))
            self._finish_span(span)
        if self._rt.settings.tracing:
            log_event(
                self._rt.logger,
                logging.WARNING,
                f"chat call failed: {error}",
                op=str(getattr(error, "op", "chat")),
                provider=getattr(self._info, "provider", None),
                model=self._model,
                code=code,
                correlation_id=self.correlation_id,
                span=span,
            )
        self._release()

    def close(self) -> None:
        """End a stream abandoned before its end (closed early or garbage-collected)."""
        if self._done:
            return
        self._done = True
        self._record(time.perf_counter() - self._start, None, None, None)
        span = self._span
        if span is not None:
            if span.is_recording():
                span.set_attribute("chatmodels.stream.closed_early", True)
            self._finish_span(span)
        self._release()

    def __del__(self) -> None:
        if not self._done:
            self.close()

    # -- helpers -------------------------------------------------------------------------

    def _record(
        self, duration: float, response_model: str | None, code: str | None, usage: Any
    ) -> None:
        metrics = self._rt.metrics
        if not metrics.enabled:
            return
        info = self._info
        key = metrics.call_key(
            _provider_name(info),
            self._model,
            getattr(info, "server_address", None),
            getattr(info, "server_port", None),
            response_model,
            code,
            getattr(info, "operation", None) or "chat",
        )
        inp = getattr(usage, "input_tokens", None) if usage is not None else None
        out = getattr(usage, "output_tokens", None) if usage is not None else None
        metrics.record_call(key, duration, -1 if inp is None else inp, -1 if out is None else out)
        if self._stream:
            metrics.record_stream(key, self._first, self._gaps)

    def _response_attributes(self, span: Any, response: Any, usage: Any) -> None:
        rid = getattr(response, "id", None)
        if rid:
            span.set_attribute("gen_ai.response.id", rid)
        model = getattr(response, "model", None)
        if model:
            span.set_attribute("gen_ai.response.model", model)
        reason = getattr(response, "finish_reason", None)
        if reason is not None:
            span.set_attribute("gen_ai.response.finish_reasons", [str(reason)])
        if usage is not None:
            for field, name in _USAGE:
                value = getattr(usage, field, None)
                if value is not None:
                    span.set_attribute(name, value)

    def _finish_span(self, span: Any) -> None:
        attached = self._attached
        if attached is not None:
            self._attached = None
            from opentelemetry import context

            with contextlib.suppress(Exception):  # never break the caller over telemetry
                context.detach(attached)
        span.end()

    def _release(self) -> None:
        token = self._cid_token
        if token is not None:
            self._cid_token = None
            reset_correlation_id(token)
