"""The call observer: one span, the metrics and the log records of each chat call.

`TelemetryObserver.start(site, request)` returns a scope that the chat-model layer drives:
``attempt(n, error)`` for each retry, ``chunk(c)`` per stream chunk (or ``chunk_batch(cs)``
per batch of chunks that arrived together), then exactly one of
``end(response)`` or ``fail(error)``; ``close()`` (also run on garbage collection) ends a
stream that was abandoned early. Whatever the order of calls, the span ends exactly once and
never ends or detaches its parent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .._observe import NOOP_SCOPE, CallSite, NoOpScope, telemetry_failed
from . import _container as _container_module
from . import _content
from ._container import Container, get_container
from ._correlation import (
    _CORRELATION,
    current_correlation_id,
    new_correlation_id,
    own_correlation_id,
    reset_correlation_id,
    set_correlation_id,
)
from ._logging import log_event
from ._otel_private import context_functions, log_record_class, span_key
from ._runtime import Runtime

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from .._errors import ChatModelError
    from .._request import ChatRequest
    from .._types import ChatChunk, ChatResponse, FinishReason
    from ._metrics import Metrics

__all__ = ["ROUTE_ATTEMPT", "TelemetryObserver"]

ROUTE_ATTEMPT: ContextVar[Mapping[str, Any] | None] = ContextVar(
    "chatmodels_route_attempt", default=None
)
"""The ``chatmodels.route.*`` attributes of the routed attempt running in this context (set by
the route's telemetry around each attempt): the chat span started inside gets them."""

_now = time.perf_counter
_new_object = object.__new__

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


_NOOP = NOOP_SCOPE


class TelemetryObserver:
    """Observe chat calls with the tracer, metrics and logger of a `Container`.

    Args:
        container: the container to use; default: the global one at each call, so
            `chatmodels.configure(...)` takes effect at once.
    """

    __slots__ = ("_container",)

    def __init__(self, container: Container | None = None) -> None:
        self._container = container

    def start(self, site: CallSite, request: ChatRequest) -> NoOpScope | _QuietScope | _Scope:
        """Begin observing a call through the model of `site` sending `request`."""
        container = self._container or _container_module._global or get_container()
        runtime = container._runtime or container.runtime()
        if runtime.off:
            return _NOOP
        tracer = runtime.tracer
        metrics = runtime.call_metrics
        if runtime.proxied:
            tracer, metrics = runtime.live()
            if tracer is None and metrics is None:
                return _QuietScope(runtime, site, request)
        if site.muted:  # the model's options turn tracing or metrics (or logging) off
            if not site.tracing:
                tracer = None
            if not site.metrics:
                metrics = None
        stream: bool = request.stream
        fmt = request.response_format
        key = (site, request.model, stream, "text" if fmt is None else fmt.type)
        static = runtime.statics.get(key)
        if static is None:
            static = _new_static(runtime, key)
        # The scope's fields are set here rather than in an __init__: one frame less on
        # every call. A stream's scope also has the chunk timings.
        scope: _Scope
        if stream:
            scope = stream_scope = _new_object(_StreamScope)
            stream_scope._first = None
            stream_scope._last = 0.0
            stream_scope._gaps = None
            stream_scope.chunks = 0
        else:
            scope = _new_object(_Scope)
        scope._static = static
        scope._metrics = metrics
        scope._done = False
        scope._span = None
        scope._attached = None
        scope._cid_token = None
        scope._cid = None
        if static.details:  # the content event: what the call sends, kept for its end
            scope._details = _details(static, request)
        if tracer is None:
            scope._recording = False
            # Level metrics writes no logs: an id only for an error (in `fail`). Level
            # standard with an idle tracer: the id of the enclosing operation, or a new one.
            if runtime.tracing:
                cid = scope._cid = _CORRELATION.get()
                if cid is None:
                    cid = scope._cid = new_correlation_id()
                    scope._cid_token = set_correlation_id(cid)
            scope._start = _now()
            return scope
        try:
            inherited = _CORRELATION.get()  # own_correlation_id()
            otel = _OTEL or _otel()
            attrs = static.attrs
            params = request.params
            conversation = request.conversation_id
            if params or conversation:
                attrs = _call_attributes(static, params, conversation)
            routed = ROUTE_ATTEMPT.get()  # the one read an unrouted call pays for routes
            if routed is not None:
                attrs = {**attrs, **routed}
            span = scope._span = tracer.start_span(static.name, kind=otel.CLIENT, attributes=attrs)
            recording = scope._recording = span.is_recording()  # asked once
            if recording:
                if inherited is not None:
                    scope._cid = inherited
                    span.set_attribute("chatmodels.correlation_id", inherited)
                if runtime.capture_content:
                    _capture_input(span, request)
                if not stream:
                    # The span is current for the layers below: log records, child spans (an
                    # HTTP client's instrumentation) and `current_correlation_id()` read it.
                    parent = otel.current()
                    span_key = otel.span_key
                    if span_key is None:
                        context = otel.set_span_in_context(span, parent)
                    else:  # what set_span_in_context builds, without its two frames
                        context = otel.Context(
                            {**parent, span_key: span} if parent else {span_key: span}
                        )
                    scope._attached = otel.attach(context)
                    scope._start = _now()
                    return scope
                if inherited is None:
                    scope._cid = "%032x" % span.get_span_context().trace_id  # noqa: UP031
            elif inherited is None:
                scope._cid = new_correlation_id()
            else:
                scope._cid = inherited
            cid = scope._cid
            if cid is not inherited:
                scope._cid_token = set_correlation_id(cid)
            scope._start = _now()
            return scope
        except Exception as exc:  # the SDK or a processor: never the caller's
            scope._abandon(exc, "start")
            return _NOOP


class _Static:
    """What every call through one model instance (its `CallSite`) with the same request
    model, kind and output type shares under one runtime, built once: the span's name and
    start attributes, the metric keys, and what log records name."""

    __slots__ = (
        "attrs",
        "details",
        "key",
        "keys",
        "logs",
        "model",
        "name",
        "provider",
        "rt",
        "stream",
    )

    def __init__(
        self, runtime: Runtime, site: CallSite, model: str | None, stream: bool, fmt: str
    ) -> None:
        operation = site.operation or "chat"
        provider = str(site.gen_ai_provider_name or site.provider or "_OTHER")
        address = site.server_address
        port = site.server_port
        self.rt = runtime
        self.logs: bool = runtime.tracing and site.logging  # whether calls write log records
        # whether calls emit the content event (a log record too)
        self.details: bool = runtime.content_events and site.logging
        self.provider: str = site.provider
        self.model = model
        self.stream = stream
        self.name = f"{operation} {model}" if model else operation
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": provider,
        }
        if model:
            attrs["gen_ai.request.model"] = model
        if address:
            attrs["server.address"] = address
            if port is not None:
                attrs["server.port"] = port
        if stream:
            attrs["gen_ai.request.stream"] = True
        attrs["gen_ai.output.type"] = "text" if fmt == "text" else "json"
        self.attrs = attrs
        self.key = (operation, provider, model, address, port)
        # Metric keys: by response model for successes, by (response model, error.type).
        self.keys: dict[str | tuple[str | None, str] | None, int] = {}


_STATIC_LIMIT = 512


def _new_static(runtime: Runtime, key: tuple[CallSite, str | None, bool, str]) -> _Static:
    found = _Static(runtime, *key)
    if len(runtime.statics) < _STATIC_LIMIT:
        runtime.statics[key] = found
    return found


def _call_attributes(
    static: _Static, params: Mapping[str, Any], conversation: str | None
) -> dict[str, Any]:
    """The start attributes: the shared ones plus this call's parameters and conversation."""
    attrs = dict(static.attrs)
    if params:
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
    if conversation:
        attrs["gen_ai.conversation.id"] = conversation
    return attrs


def _log_attempt(
    runtime: Runtime,
    who: _Static | _QuietScope,
    number: int,
    error: ChatModelError,
    cid: str | None,
    span: Span | None,
) -> None:
    log_event(
        runtime.logger,
        logging.INFO,
        f"attempt {number} failed: {error}",
        op="chat",
        provider=who.provider,
        model=who.model,
        code=error_type(error),
        correlation_id=cid,
        span=span,
    )


def _log_failure(
    runtime: Runtime,
    who: _Static | _QuietScope,
    error: ChatModelError,
    code: str,
    cid: str | None,
    span: Span | None,
) -> None:
    log_event(
        runtime.logger,
        logging.WARNING,
        f"chat call failed: {error}",
        op=error.op or "chat",
        provider=who.provider,
        model=who.model,
        code=code,
        correlation_id=cid,
        span=span,
    )


DETAILS_EVENT = "gen_ai.client.inference.operation.details"


def _details(static: _Static, request: ChatRequest) -> dict[str, Any]:
    """The content event's attributes known at the start: the span's start attributes and
    the input content, in the conventions' structure."""
    attrs = _call_attributes(static, request.params, request.conversation_id)
    attrs["gen_ai.input.messages"] = _content.input_value(request.messages)
    if request.system_instructions:
        attrs["gen_ai.system_instructions"] = _content.system_value(request.system_instructions)
    if request.tools:
        attrs["gen_ai.tool.definitions"] = _content.tools_value(request.tools)
    return attrs


def _response_attributes(response: ChatResponse) -> dict[str, Any]:
    """The response attributes of the conventions (as `_Scope.end` sets them on the span)."""
    attrs: dict[str, Any] = {}
    if response.id:
        attrs["gen_ai.response.id"] = response.id
    if response.model:
        attrs["gen_ai.response.model"] = response.model
    if response.finish_reason is not None:
        attrs["gen_ai.response.finish_reasons"] = _reasons(response.finish_reason)
    usage = response.usage
    if usage is not None:
        for field, name in _USAGE:
            value = getattr(usage, field, None)
            if value is not None:
                attrs[name] = value
    return attrs


def _capture_input(span: Span, request: ChatRequest) -> None:
    attrs: dict[str, Any] = {}
    attrs["gen_ai.input.messages"] = _content.input_messages(request.messages)
    system = request.system_instructions
    if system:
        attrs["gen_ai.system_instructions"] = _content.system_instructions(system)
    tools = request.tools
    if tools:
        attrs["gen_ai.tool.definitions"] = _content.tool_definitions(tools)
    span.set_attributes(attrs)


class _QuietScope:
    """A call's scope while both global providers are idle proxies (no SDK installed): no
    span and no metrics, which would go nowhere; the correlation id and the log records of
    failures as at any level. It reads neither chunks nor the response."""

    __slots__ = ("_done", "_logs", "_rt", "_token", "correlation_id", "model", "provider")

    observes_chunks = False

    def __init__(self, runtime: Runtime, site: CallSite, request: ChatRequest) -> None:
        self._rt = runtime
        self._logs: bool = runtime.tracing and site.logging
        self.provider: str = site.provider
        self.model: str | None = request.model
        self._done = False
        self._token: Any = None
        cid: str | None = None
        if runtime.tracing:  # logs may be written below: they carry the id
            cid = own_correlation_id()
            if cid is None:
                cid = new_correlation_id()
                self._token = set_correlation_id(cid)
        self.correlation_id = cid

    def attempt(self, number: int, error: ChatModelError | None) -> None:
        """A failed attempt is logged (an attempt that succeeded records nothing)."""
        if error is not None and self._logs:
            _log_attempt(self._rt, self, number, error, self.correlation_id, None)

    def chunk(self, chunk: ChatChunk) -> None:
        """Nothing."""

    def chunk_batch(self, chunks: Sequence[ChatChunk]) -> None:
        """Nothing."""

    def end(self, response: ChatResponse | None) -> None:
        """The call succeeded."""
        self.close()

    def fail(self, error: ChatModelError) -> None:
        """The call failed: `error` gets the correlation id, and a log record is written."""
        if self._done:
            return
        cid = self.correlation_id
        if cid is None:
            cid = self.correlation_id = current_correlation_id() or new_correlation_id()
        error.correlation_id = cid
        if self._logs:
            _log_failure(self._rt, self, error, error_type(error), cid, None)
        self.close()

    def close(self) -> None:
        """The call is over."""
        if self._done:
            return
        self._done = True
        token = self._token
        if token is not None:
            self._token = None
            reset_correlation_id(token)


class _Scope:
    """A call's scope (built by `TelemetryObserver.start`)."""

    __slots__ = (
        "_attached",
        "_cid",
        "_cid_token",
        "_details",
        "_done",
        "_metrics",
        "_recording",
        "_span",
        "_start",
        "_static",
    )

    observes_chunks = False
    _attached: Any  # the Token of the context this call's span is current in, or None
    _cid: str | None  # None with a recording span: its trace id, on demand
    _cid_token: Any
    _details: dict[str, Any]  # set only when the call emits the content event
    _done: bool
    _metrics: Metrics | None
    _recording: bool
    _span: Any
    _start: float
    _static: _Static

    @property
    def correlation_id(self) -> str | None:
        """This call's correlation id: the trace id of its span when it records, else the id
        of the enclosing operation or a generated one (None at level metrics until a failure).
        """
        cid = self._cid
        if cid is None and self._span is not None:
            cid = self._cid = "%032x" % self._span.get_span_context().trace_id  # noqa: UP031
        return cid

    # -- during the call -----------------------------------------------------------------

    def attempt(self, number: int, error: ChatModelError | None) -> None:
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
        if self._recording:
            try:
                span.add_event("chatmodels.attempt", attrs)
            except Exception as exc:
                telemetry_failed(exc, "attempt")
        static = self._static
        if error is not None and static.logs:
            self._in_span(_log_attempt, static.rt, static, number, error, self.correlation_id, span)

    def chunk(self, chunk: ChatChunk) -> None:
        """Nothing: a call that is not a stream has no chunks."""

    def chunk_batch(self, chunks: Sequence[ChatChunk]) -> None:
        """Nothing: a call that is not a stream has no chunks."""

    # -- the end, exactly once -----------------------------------------------------------

    def end(self, response: ChatResponse | None) -> None:
        """The call succeeded with `response` (None: a stream told nothing per chunk, which a
        stream scope never is; it ends as a reply without content)."""
        if self._done:
            return
        self._done = True
        if response is None:
            response = _no_response()
        try:
            duration = _now() - self._start
            usage = response.usage
            model = response.model
            static = self._static
            # `_record`, `_finish_span`, `_release` and `_response_attributes` inlined: every
            # successful call; saves 7,000 instructions/call at level standard (295,800 against
            # 302,800 per fake invoke, callgrind over bench_telemetry's workload, CPython 3.11).
            metrics = self._metrics
            if metrics is not None:
                key = static.keys.get(model)
                if key is None:
                    key = self._key(metrics, model, None)
                if usage is None:
                    metrics.record_call(key, duration, -1, -1)
                else:
                    inp = usage.input_tokens
                    out = usage.output_tokens
                    metrics.record_call(
                        key, duration, -1 if inp is None else inp, -1 if out is None else out
                    )
                if static.stream:
                    self._record_stream(metrics, key)
            span = self._span
            if span is not None:
                if self._recording:
                    # The response attributes.
                    attrs: dict[str, Any] = {}
                    rid = response.id
                    if rid:
                        attrs["gen_ai.response.id"] = rid
                    if model:
                        attrs["gen_ai.response.model"] = model
                    reason = response.finish_reason
                    if reason is not None:
                        attrs["gen_ai.response.finish_reasons"] = _REASONS.get(reason) or _reasons(
                            reason
                        )
                    if usage is not None:
                        attrs["gen_ai.usage.input_tokens"] = usage.input_tokens
                        attrs["gen_ai.usage.output_tokens"] = usage.output_tokens
                        value = usage.cache_read_input_tokens
                        if value is not None:
                            attrs["gen_ai.usage.cache_read.input_tokens"] = value
                        value = usage.cache_creation_input_tokens
                        if value is not None:
                            attrs["gen_ai.usage.cache_creation.input_tokens"] = value
                        value = usage.reasoning_tokens
                        if value is not None:
                            attrs["gen_ai.usage.reasoning.output_tokens"] = value
                    if static.rt.capture_content:
                        attrs["gen_ai.output.messages"] = _content.output_messages(response)
                    span.set_attributes(attrs)
                attached = self._attached
                if attached is not None:
                    self._attached = None
                    try:  # noqa: SIM105 - contextlib.suppress costs more on the per-call path
                        (_OTEL or _otel()).detach(attached)
                    except Exception:  # never break the caller over telemetry
                        pass
                span.end()
            token = self._cid_token
            if token is not None:
                self._cid_token = None
                reset_correlation_id(token)
        except Exception as exc:
            self._abandon(exc, "end")
        if self._static.details:
            self._emit_details(response, None)

    def fail(self, error: ChatModelError) -> None:
        """The call failed with `error`; sets its correlation_id."""
        try:
            self._fail(error)
        except Exception as exc:
            self._abandon(exc, "fail")

    def _fail(self, error: ChatModelError) -> None:
        if self._done:
            return
        self._done = True
        duration = _now() - self._start
        code = error_type(error)
        cid = self.correlation_id
        if cid is None:
            cid = self._cid = current_correlation_id() or new_correlation_id()
        error.correlation_id = cid
        self._record(duration, code)
        span = self._span
        recording = self._recording
        if recording:
            otel = _otel()
            span.set_attribute("error.type", code)
            span.record_exception(error)
            span.set_status(otel.Status(otel.ERROR, str(error)))
        static = self._static
        if static.logs:
            self._in_span(_log_failure, static.rt, static, error, code, cid, span)
        if span is not None:
            self._finish_span(span)
        self._release()
        if static.details:
            self._emit_details(None, code)

    def close(self) -> None:
        """End a stream abandoned before its end (closed early or garbage-collected)."""
        if self._done:
            return
        self._done = True
        try:
            self._record(_now() - self._start, None)
            span = self._span
            if span is not None:
                if self._recording:
                    span.set_attribute("chatmodels.stream.closed_early", True)
                self._finish_span(span)
            self._release()
        except Exception as exc:
            self._abandon(exc, "close")
        if self._static.details:
            self._emit_details(None, None)

    # -- helpers -------------------------------------------------------------------------

    def _emit_details(self, response: ChatResponse | None, code: str | None) -> None:
        """Emit the conventions' ``gen_ai.client.inference.operation.details`` event: the
        call's attributes and its content, in the call's trace. Never raises."""
        try:
            attrs = self._details
            if response is not None:
                attrs.update(_response_attributes(response))
                attrs["gen_ai.output.messages"] = _content.output_value(response)
            if code is not None:
                attrs["error.type"] = code
            otel = _otel()
            span = self._span
            context = otel.set_span_in_context(span) if span is not None else None
            self._static.rt.event_logger.emit(
                otel.LogRecord(event_name=DETAILS_EVENT, attributes=attrs, context=context)
            )
        except Exception:  # never break the caller over telemetry
            pass

    def _abandon(self, exc: Exception, where: str) -> None:
        """Telemetry raised `exc` in `where`: report it, and undo what this scope holds (its
        context detached, its span ended if it is not, its correlation id reset), each step
        on its own so that one failing does not skip the others."""
        self._done = True
        telemetry_failed(exc, where)
        attached = self._attached
        if attached is not None:
            self._attached = None
            try:  # noqa: SIM105
                (_OTEL or _otel()).detach(attached)
            except Exception:
                pass
        span = self._span
        if span is not None:
            try:
                if span.is_recording():  # false once ended, even by an `end` that raised
                    span.end()
            except Exception:
                pass
        token = self._cid_token
        if token is not None:
            self._cid_token = None
            reset_correlation_id(token)

    def _in_span(self, log: Callable[..., None], *args: Any) -> None:
        """Write a log record while this call's span is current (a stream's span is made
        current for the record only), so that OpenTelemetry's logging handler, which reads
        the current span, exports the record in the call's trace."""
        if not self._recording or self._attached is not None:
            log(*args)
            return
        otel = _otel()
        token = otel.attach(otel.set_span_in_context(self._span))
        try:
            log(*args)
        finally:
            otel.detach(token)

    def _record(self, duration: float, code: str | None) -> None:
        """The metrics of a call that ended without a response (failed or closed early)."""
        metrics = self._metrics
        if metrics is None:
            return
        key = self._static.keys.get(None if code is None else (None, code))
        if key is None:
            key = self._key(metrics, None, code)
        metrics.record_call(key, duration, -1, -1)
        if self._static.stream:
            self._record_stream(metrics, key)

    def _record_stream(self, metrics: Metrics, key: int) -> None:
        assert isinstance(self, _StreamScope)
        metrics.record_stream(key, self._first, self._gaps or [])

    def _key(self, metrics: Metrics, response_model: str | None, code: str | None) -> int:
        """The metric key of this call's attributes with `response_model` and `code`, kept."""
        static = self._static
        key: int = metrics.call_key(*static.key[1:], response_model, code, static.key[0])
        if len(static.keys) < _STATIC_LIMIT:
            static.keys[response_model if code is None else (response_model, code)] = key
        return key

    def _finish_span(self, span: Span) -> None:
        attached = self._attached
        if attached is not None:
            self._attached = None
            try:  # noqa: SIM105 - contextlib.suppress costs more on the per-call path
                (_OTEL or _otel()).detach(attached)
            except Exception:  # never break the caller over telemetry
                pass
        span.end()

    def _release(self) -> None:
        token = self._cid_token
        if token is not None:
            self._cid_token = None
            reset_correlation_id(token)


class _StreamScope(_Scope):
    """A stream's scope: also times its chunks, and ends when garbage-collected unfinished
    (a call's scope always ends in its own frame, so only streams pay for a finaliser)."""

    __slots__ = ("_first", "_gaps", "_last", "chunks")

    observes_chunks = True
    _first: float | None
    _gaps: list[float] | None
    _last: float
    chunks: int

    def chunk(self, chunk: ChatChunk) -> None:
        """A stream chunk arrived."""
        try:
            now = _now()
            if self._first is None:
                self._first = now - self._start
                if self._recording:
                    self._span.set_attribute("gen_ai.response.time_to_first_chunk", self._first)
            else:
                gaps = self._gaps
                if gaps is None:
                    gaps = self._gaps = []
                gaps.append(now - self._last)
            self._last = now
            self.chunks += 1
            if self._static.rt.debug and self._span is not None:
                text = chunk.text
                self._span.add_event(
                    "chatmodels.chunk",
                    {"chatmodels.chunk.index": self.chunks - 1,
                     "chatmodels.chunk.text_length": len(text) if text else 0},
                )  # fmt: skip
        except Exception as exc:
            telemetry_failed(exc, "chunk")

    def chunk_batch(self, chunks: Sequence[ChatChunk]) -> None:
        """Stream chunks that arrived together (one network read), in one call: they share
        one arrival time, so the gaps between them are 0. Per-chunk work only at debug."""
        try:
            count = len(chunks)
            if not count:
                return
            now = _now()
            gaps = self._gaps
            if self._first is None:
                self._first = now - self._start
                if self._recording:
                    self._span.set_attribute("gen_ai.response.time_to_first_chunk", self._first)
                if count > 1:
                    self._gaps = [0.0] * (count - 1)
            else:
                if gaps is None:
                    gaps = self._gaps = []
                gaps.append(now - self._last)
                if count > 1:
                    gaps.extend([0.0] * (count - 1))
            self._last = now
            first = self.chunks
            self.chunks = first + count
            if self._static.rt.debug and self._span is not None:
                for index, chunk in enumerate(chunks, first):
                    text = chunk.text
                    self._span.add_event(
                        "chatmodels.chunk",
                        {"chatmodels.chunk.index": index,
                         "chatmodels.chunk.text_length": len(text) if text else 0},
                    )  # fmt: skip
        except Exception as exc:
            telemetry_failed(exc, "chunk")

    def __del__(self) -> None:
        if not self._done:
            self.close()


_NO_RESPONSE: list[ChatResponse] = []


def _no_response() -> ChatResponse:
    """An empty reply (made once)."""
    if not _NO_RESPONSE:
        from .._types import ChatResponse, Message

        _NO_RESPONSE.append(ChatResponse(Message("assistant")))
    return _NO_RESPONSE[0]


_REASONS: dict[FinishReason | str, tuple[str]] = {}


def _reasons(reason: FinishReason | str) -> tuple[str]:
    found = _REASONS.get(reason)
    if found is None:
        found = (getattr(reason, "value", None) or str(reason),)
        if len(_REASONS) < 64:
            _REASONS[reason] = found
    return found


class _OTel:
    """The OpenTelemetry names the hot path uses, imported once (not at package import)."""

    __slots__ = (
        "CLIENT",
        "Context",
        "ERROR",
        "INTERNAL",
        "LogRecord",
        "Status",
        "attach",
        "current",
        "detach",
        "set_span_in_context",
        "span_key",
    )

    def __init__(self) -> None:
        from opentelemetry import trace
        from opentelemetry.context.context import Context
        from opentelemetry.trace import Status, StatusCode

        self.CLIENT = trace.SpanKind.CLIENT
        self.INTERNAL = trace.SpanKind.INTERNAL
        self.ERROR = StatusCode.ERROR
        self.Status = Status
        self.LogRecord: Any = log_record_class()  # None: no logs API, no content event
        self.set_span_in_context = trace.set_span_in_context
        self.attach, self.detach, self.current = context_functions()
        self.Context = Context
        # The key under which set_span_in_context puts the span: the per-call path then
        # builds the same Context itself (None: it calls the function).
        self.span_key: str | None = span_key()


_OTEL: _OTel | None = None


def _otel() -> _OTel:
    global _OTEL
    otel = _OTEL
    if otel is None:
        otel = _OTEL = _OTel()
    return otel
