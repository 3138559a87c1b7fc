"""`ChatModel`: the base every provider instance derives from.

The public calls (`invoke`, `ainvoke`, `stream`, `astream`, `batch`, `abatch`,
`health_check`, `ahealth_check`) live here: they normalise and validate the messages and
parameters against the provider's capabilities before anything is sent, report the call to
the observer (`_observe`) in one place, and hand a `ChatRequest` to the four hooks a provider
implements: `_invoke`, `_ainvoke`, `_stream`, `_astream` (and optionally `_health`). A provider
that reads several chunks at once (one network read holds many stream events) implements
`_stream_batches` / `_astream_batches` instead, so streams hand chunks out from a list.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from . import _observe
from ._errors import (
    APIError,
    CapabilityNotSupportedError,
    ChatModelError,
    ErrorCode,
    InternalError,
    InvalidConfigError,
    InvalidResponseError,
    redact,
    suggest,
)
from ._metadata import _CHECKS, Capability, ProviderMetadata, ProviderOptions
from ._observe import NOOP_SCOPE, CallScope, CallSite, call_site
from ._tools import Tool, to_tools
from ._types import (
    Accumulator,
    ChatChunk,
    ChatResponse,
    HealthStatus,
    ImagePart,
    Message,
    MessagesLike,
    to_messages,
)

if TYPE_CHECKING:
    from .telemetry import Container

__all__ = ["AsyncChatStream", "ChatModel", "ChatRequest", "ChatStream", "ResponseFormat"]

T = TypeVar("T")

# Sampling parameters: sent to the provider when set, reported to the observer.
SAMPLING_PARAMS = (
    "temperature",
    "max_tokens",
    "top_p",
    "top_k",
    "stop",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "n",
)
_OTHER_PARAMS = (
    "model",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "timeout",
    "conversation_id",
    "provider_specific",
)
KNOWN_PARAMS = frozenset(SAMPLING_PARAMS + _OTHER_PARAMS)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_PARAM_CHECKS: dict[str, tuple[Any, str]] = {
    **{k: _CHECKS[k] for k in ("model", "temperature", "max_tokens", "top_p", "stop", "seed")},
    "timeout": _CHECKS["timeout"],
    "top_k": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a positive int"),
    "n": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a positive int"),
    "frequency_penalty": (lambda v: _is_number(v) and -2 <= v <= 2, "a number from -2 to 2"),
    "presence_penalty": (lambda v: _is_number(v) and -2 <= v <= 2, "a number from -2 to 2"),
    "parallel_tool_calls": (lambda v: isinstance(v, bool), "a bool"),
    "conversation_id": (lambda v: isinstance(v, str), "a str"),
    "provider_specific": (lambda v: isinstance(v, Mapping), "a mapping"),
    "tool_choice": (
        lambda v: isinstance(v, (str, Mapping)),
        "'auto', 'none', 'required', a tool name or a dict",
    ),
}


@dataclasses.dataclass(frozen=True, slots=True)
class ResponseFormat:
    """The reply format asked for: ``text``, ``json_object`` or ``json_schema`` (with its
    `name`, `schema` and `strict`); `model_class` is the pydantic class to parse into."""

    type: str
    name: str | None = None
    schema: Mapping[str, Any] | None = None
    strict: bool | None = None
    model_class: Any = None


@dataclasses.dataclass(slots=True)
class ChatRequest:
    """One validated call, as providers receive it.

    `params` holds only the sampling parameters that are set (from the call, else from the
    instance's options).
    """

    messages: tuple[Message, ...]
    model: str
    params: dict[str, Any]
    tools: tuple[Tool, ...] = ()
    tool_choice: str | Mapping[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    timeout: float | None = None
    conversation_id: str | None = None
    provider_specific: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    stream: bool = False
    #: the text of each system message, for telemetry's content capture
    system_instructions: tuple[str, ...] = ()


class ChatModel:
    """A provider instance: what a registered creator returns.

    It knows its provider's name and metadata, the options it was created with and its
    default model. `close()` releases what it holds (connections); it is also a sync and an
    async context manager.

    A provider subclasses it and implements `_invoke` (every call ends there by default),
    `_stream` for real streaming (default: one chunk from `_invoke`), `_ainvoke` / `_astream`
    for native async I/O (default: the sync hooks in a worker thread) and `_health` /
    `_ahealth` for a real probe (default: status unknown). The public calls refuse what the
    metadata's capabilities do not declare before any hook runs. Registered as its own
    creator, the class is made as ``cls(metadata, options)``.
    """

    #: the sampling parameters this provider's API accepts; others → capability_not_supported
    supported_params: ClassVar[frozenset[str]] = frozenset(SAMPLING_PARAMS)

    #: the telemetry container this instance reports its calls to (None: the global one and
    #: the installed observer). Set by `ProviderRegistry.create(..., container=...)` or by a
    #: registry with its own container; may be set or changed at any time.
    container: Container | None = None

    _call_site: CallSite  # what the observer is told of every call, built on first use

    #: the credential this instance sends, scrubbed from every error its calls raise
    _secret: str | None = None

    def __init__(self, metadata: ProviderMetadata, options: ProviderOptions | None = None) -> None:
        self.metadata = metadata
        self.options = options if options is not None else ProviderOptions()
        self._closed = False
        opts = self.options
        self._defaults = {
            k: v
            for k in ("temperature", "max_tokens", "top_p", "stop", "seed")
            if (v := getattr(opts, k)) is not None
        }

    @property
    def provider(self) -> str:
        """The registered name of the provider."""
        return self.metadata.name

    @property
    def model(self) -> str | None:
        """The default model of this instance."""
        return self.options.model or self.metadata.default_model

    @property
    def closed(self) -> bool:
        """Whether `close()` has run."""
        return self._closed

    def close(self) -> None:
        """Release connections and other resources. Safe to call twice."""
        self._closed = True

    async def aclose(self) -> None:
        """Async `close()`."""
        self.close()

    def __enter__(self) -> ChatModel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> ChatModel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} provider={self.provider!r} model={self.model!r}>"

    # -- the public calls ------------------------------------------------------------------

    def invoke(self, messages: MessagesLike, **params: Any) -> ChatResponse:
        """Send `messages` and return the whole reply.

        Args:
            messages: a str (one user message), `Message` objects or OpenAI-style dicts.
            **params: model, temperature, max_tokens, top_p, top_k, stop, seed,
                frequency_penalty, presence_penalty, n, tools (dicts, `Tool` or typed
                functions), tool_choice, parallel_tool_calls, response_format
                (``{"type": "json_object"}``, a json_schema dict, or a pydantic model class),
                timeout, conversation_id, provider_specific (sent as is).

        Raises invalid_config or capability_not_supported before any request, else the
        `ChatModelError` the call failed with.

        Example:
            >>> model.invoke("Say hi", temperature=0).text
        """
        request = self._prepare(messages, params, False, "invoke")
        scope = self._begin(request)
        start = time.perf_counter()
        try:
            response = self._invoke(request, scope)
            response = self._complete(request, response, start)
        except BaseException as exc:
            error = self._failed(scope, exc, "invoke")
            if error is exc:
                raise
            raise error from exc
        scope.end(response)
        return response

    async def ainvoke(self, messages: MessagesLike, **params: Any) -> ChatResponse:
        """Async `invoke`."""
        request = self._prepare(messages, params, False, "ainvoke")
        scope = self._begin(request)
        start = time.perf_counter()
        try:
            response = await self._ainvoke(request, scope)
            response = self._complete(request, response, start)
        except BaseException as exc:
            error = self._failed(scope, exc, "ainvoke")
            if error is exc:
                raise
            raise error from exc
        scope.end(response)
        return response

    def stream(self, messages: MessagesLike, **params: Any) -> ChatStream:
        """Send `messages` and iterate over the reply's `ChatChunk`s as they arrive.

        Validation happens here, before any request; the request is sent on the first
        `next()`. Close the stream (or leave its ``with`` block) to stop early: its
        connection is released.

        Example:
            >>> for chunk in model.stream("Tell me a story"):
            ...     print(chunk.text, end="")
        """
        request = self._prepare(messages, params, True, "stream")
        scope = self._begin(request)
        return ChatStream(self._stream_batches(request, scope), scope, self, "stream")

    def astream(self, messages: MessagesLike, **params: Any) -> AsyncChatStream:
        """Async `stream`: ``async for chunk in model.astream(...)``."""
        request = self._prepare(messages, params, True, "astream")
        scope = self._begin(request)
        return AsyncChatStream(self._astream_batches(request, scope), scope, self, "astream")

    def batch(
        self,
        inputs: Sequence[MessagesLike],
        *,
        max_concurrency: int = 8,
        return_exceptions: bool = False,
        **params: Any,
    ) -> list[Any]:
        """`invoke` each input, at most `max_concurrency` at a time; results in input order.

        With `return_exceptions`, a failed input gives its `ChatModelError` in its place
        instead of raising.
        """
        _check_concurrency(max_concurrency, "batch")
        for item in inputs:  # refuse bad input before any request
            self._prepare(item, params, False, "batch")
        if not inputs:
            return []

        def one(item: MessagesLike) -> Any:
            try:
                return self.invoke(item, **params)
            except ChatModelError as exc:
                if return_exceptions:
                    return exc
                raise

        workers = min(max_concurrency, len(inputs))
        if workers == 1:
            return [one(item) for item in inputs]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers, "chatmodels-batch") as pool:
            return list(pool.map(one, inputs))

    async def abatch(
        self,
        inputs: Sequence[MessagesLike],
        *,
        max_concurrency: int = 8,
        return_exceptions: bool = False,
        **params: Any,
    ) -> list[Any]:
        """Async `batch`."""
        _check_concurrency(max_concurrency, "abatch")
        for item in inputs:
            self._prepare(item, params, False, "abatch")
        import asyncio

        gate = asyncio.Semaphore(max_concurrency)

        async def one(item: MessagesLike) -> Any:
            async with gate:
                try:
                    return await self.ainvoke(item, **params)
                except ChatModelError as exc:
                    if return_exceptions:
                        return exc
                    raise

        return list(await asyncio.gather(*(one(item) for item in inputs)))

    def health_check(self, *, timeout: float = 5.0) -> HealthStatus:
        """Probe the provider cheaply (no tokens spent where the API allows) and report.

        Never raises: a failure is an unhealthy status with its error code.
        """
        start = time.perf_counter()
        try:
            return self._health(timeout)
        except ChatModelError as exc:
            redact(exc, self._secret)
            return _unhealthy(exc, start)
        except Exception as exc:
            redact(exc, self._secret)
            return HealthStatus("unhealthy", time.perf_counter() - start, repr(exc), "internal")

    async def ahealth_check(self, *, timeout: float = 5.0) -> HealthStatus:
        """Async `health_check`."""
        import asyncio

        start = time.perf_counter()
        try:
            return await asyncio.wait_for(self._ahealth(timeout), timeout)
        except ChatModelError as exc:  # first: a chatmodels timeout is an asyncio one too
            redact(exc, self._secret)
            return _unhealthy(exc, start)
        except asyncio.TimeoutError:
            return HealthStatus(
                "unhealthy",
                time.perf_counter() - start,
                f"no answer within {timeout:g} s",
                "timeout",
            )
        except Exception as exc:
            redact(exc, self._secret)
            return HealthStatus("unhealthy", time.perf_counter() - start, repr(exc), "internal")

    # -- what providers implement ----------------------------------------------------------

    def _invoke(self, request: ChatRequest, scope: CallScope) -> ChatResponse:
        raise CapabilityNotSupportedError(
            f"provider {self.provider!r} does not implement chat",
            op="invoke",
            provider=self.provider,
        )

    async def _ainvoke(self, request: ChatRequest, scope: CallScope) -> ChatResponse:
        import asyncio

        return await asyncio.to_thread(self._invoke, request, scope)

    def _stream(self, request: ChatRequest, scope: CallScope) -> Iterator[ChatChunk]:
        response = self._invoke(request, scope)
        yield ChatChunk(
            text=response.text,
            finish_reason=response.finish_reason,
            raw_finish_reason=response.raw_finish_reason,
            usage=response.usage,
            id=response.id,
            model=response.model,
        )

    async def _astream(self, request: ChatRequest, scope: CallScope) -> AsyncIterator[ChatChunk]:
        import asyncio

        for chunk in await asyncio.to_thread(lambda: list(self._stream(request, scope))):
            yield chunk

    def _stream_batches(
        self, request: ChatRequest, scope: CallScope
    ) -> Iterator[Sequence[ChatChunk]]:
        """The stream as batches of chunks that arrived together; by default each chunk of
        `_stream` on its own."""
        for chunk in self._stream(request, scope):
            yield (chunk,)

    async def _astream_batches(
        self, request: ChatRequest, scope: CallScope
    ) -> AsyncIterator[Sequence[ChatChunk]]:
        """Async `_stream_batches`: by default each chunk of `_astream` on its own."""
        async for chunk in self._astream(request, scope):
            yield (chunk,)

    def _health(self, timeout: float) -> HealthStatus:
        return HealthStatus("unknown", None, f"provider {self.provider!r} has no health probe")

    async def _ahealth(self, timeout: float) -> HealthStatus:
        import asyncio

        return await asyncio.to_thread(self._health, timeout)

    def _server(self) -> tuple[str | None, int | None]:
        """The server address and port calls go to, for telemetry (asked once per instance)."""
        return None, None

    # -- the one place that validates and observes -----------------------------------------

    def _prepare(
        self, messages: MessagesLike, params: Mapping[str, Any], stream: bool, op: str
    ) -> ChatRequest:
        provider = self.metadata.name
        if self._closed:
            raise InvalidConfigError("the model is closed", op=op, provider=provider)
        msgs = to_messages(messages, op)
        caps = self.metadata.capabilities
        sampling = dict(self._defaults) if self._defaults else {}
        model = self.options.model or self.metadata.default_model
        tools: tuple[Tool, ...] = ()
        request = ChatRequest(msgs, "", sampling, stream=stream)
        for key, value in params.items():
            if value is None:
                continue
            check = _PARAM_CHECKS.get(key)
            if check is None and key not in KNOWN_PARAMS:
                hint = suggest(key, sorted(KNOWN_PARAMS))
                raise InvalidConfigError(
                    f"unknown parameter {key!r}" + (f"; did you mean {hint!r}?" if hint else ""),
                    op=op,
                    provider=provider,
                )
            if check is not None and not check[0](value):
                raise InvalidConfigError(
                    f"parameter {key!r} must be {check[1]}, got {value!r}", op=op, provider=provider
                )
            if key in SAMPLING_PARAMS:
                if key not in self.supported_params:
                    raise CapabilityNotSupportedError(
                        f"provider {provider!r} does not support parameter {key!r}",
                        op=op,
                        provider=provider,
                    )
                sampling[key] = (
                    list(value) if key == "stop" and not isinstance(value, str) else value
                )
            elif key == "model":
                model = value
            elif key == "tools":
                tools = to_tools(value, op)
            elif key == "response_format":
                request.response_format = _response_format(value, op, provider)
            else:
                setattr(request, key, value)
        if isinstance(sampling.get("stop"), tuple):
            sampling["stop"] = list(sampling["stop"])
        if not model:
            raise InvalidConfigError(
                f"no model: pass model=... or create provider {provider!r} with a model",
                op=op,
                provider=provider,
            )
        request.model = model
        if tools:
            request.tools = tools
            _require(caps, Capability.TOOL_CALLING, "tools", provider, op)
        elif request.tool_choice is not None:
            raise InvalidConfigError("tool_choice given without tools", op=op, provider=provider)
        fmt = request.response_format
        if fmt is not None:
            if fmt.type == "json_object":
                _require(caps, Capability.JSON_MODE, "response_format json_object", provider, op)
            elif fmt.type == "json_schema":
                _require(
                    caps, Capability.STRUCTURED_OUTPUT, "response_format json_schema", provider, op
                )
        if stream:
            _require(caps, Capability.STREAMING, "streaming", provider, op)
        system: list[str] | None = None
        for msg in msgs:
            if msg.role == "system":
                _require(caps, Capability.SYSTEM_PROMPT, "system messages", provider, op)
                if system is None:
                    system = []
                system.append(msg.text)
            elif not isinstance(msg.content, str) and any(
                isinstance(p, ImagePart) for p in msg.content
            ):
                _require(caps, Capability.VISION, "image input", provider, op)
        if system is not None:
            request.system_instructions = tuple(system)
        return request

    def _begin(self, request: ChatRequest) -> CallScope:
        container = self.container
        if container is None:
            observer = _observe._observer
            if observer is _observe.NOOP_OBSERVER:
                return NOOP_SCOPE
        else:
            observer = container.observer()
        try:
            site = self._call_site
        except AttributeError:
            meta = self.metadata
            opts = self.options
            address, port = self._server()
            site = self._call_site = call_site(
                meta.name,
                meta.gen_ai_provider_name,
                address,
                port,
                tracing=opts.enable_tracing,
                metrics=opts.enable_metrics,
                logging=opts.enable_logging,
            )
        return observer.start(site, request)

    def _failed(self, scope: CallScope, exc: BaseException, op: str) -> BaseException:
        """End `scope` with the error the caller will see, and return it."""
        if self._secret is not None:  # before any of its text is copied or recorded
            redact(exc, self._secret)
        error: BaseException
        if isinstance(exc, ChatModelError):
            error = exc
            if error.provider is None:
                error.provider = self.metadata.name
            scope.fail(error)
        elif _is_cancellation(exc):
            cancelled = APIError(
                "the call was cancelled", op=op, code=ErrorCode.CANCELLED, provider=self.provider
            )
            scope.fail(cancelled)
            error = exc
        elif isinstance(exc, Exception):
            error = InternalError(
                f"{type(exc).__name__}: {exc}", op=op, provider=self.provider, err=exc
            )
            scope.fail(error)
        else:
            error = exc
        return error

    def _complete(self, request: ChatRequest, response: ChatResponse, start: float) -> ChatResponse:
        """Stamp latency and provider on `response` and parse it as `response_format` asks."""
        # In place, before the caller sees it: dataclasses.replace would build a second
        # response, 30,000 instructions against 1,500 (callgrind, CPython 3.11), every call.
        setattr_ = object.__setattr__
        setattr_(response, "latency", time.perf_counter() - start)
        if response.provider is None:
            setattr_(response, "provider", self.metadata.name)
        fmt = request.response_format
        if fmt is not None and fmt.type != "text" and response.parsed is None:
            setattr_(response, "parsed", _parse_reply(response.text, fmt, self.provider))
        return response


def _is_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, (KeyboardInterrupt, GeneratorExit)):
        return True
    # asyncio is imported only by async callers; without it there is no asyncio cancellation.
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(exc, asyncio.CancelledError)


def _require(
    caps: frozenset[Capability], cap: Capability, what: str, provider: str, op: str
) -> None:
    if cap not in caps:
        raise CapabilityNotSupportedError(
            f"provider {provider!r} does not support {what} (capability {cap.value!r})",
            op=op,
            provider=provider,
        )


def _check_concurrency(value: object, op: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidConfigError("max_concurrency must be a positive int", op=op)


def _unhealthy(exc: ChatModelError, start: float) -> HealthStatus:
    return HealthStatus("unhealthy", time.perf_counter() - start, exc.detail, exc.code.value)


def _response_format(value: Any, op: str, provider: str) -> ResponseFormat:
    schema_of = getattr(value, "model_json_schema", None)
    if isinstance(value, type) and callable(schema_of):
        return ResponseFormat("json_schema", value.__name__, schema_of(), None, model_class=value)
    if isinstance(value, str):
        value = {"type": value}
    if isinstance(value, Mapping):
        kind = value.get("type")
        if kind in ("text", "json_object"):
            return ResponseFormat(kind)
        if kind == "json_schema":
            spec = value.get("json_schema", value)
            if not isinstance(spec, Mapping):
                raise InvalidConfigError(
                    "a json_schema response_format's 'json_schema' must be an object, got "
                    f"{type(spec).__name__}",
                    op=op,
                    provider=provider,
                )
            schema = spec.get("schema")
            if not isinstance(schema, Mapping):
                raise InvalidConfigError(
                    "a json_schema response_format needs a 'schema' object",
                    op=op,
                    provider=provider,
                )
            return ResponseFormat(
                "json_schema", spec.get("name") or "response", schema, spec.get("strict")
            )
    raise InvalidConfigError(
        "response_format must be {'type': 'json_object'}, a json_schema dict, or a pydantic "
        f"model class; got {value!r}",
        op=op,
        provider=provider,
    )


def _parse_reply(text: str, fmt: ResponseFormat, provider: str) -> Any:
    try:
        if fmt.model_class is not None:
            return fmt.model_class.model_validate_json(text)
        return json.loads(text)
    except Exception as exc:
        raise InvalidResponseError(
            f"the reply is not valid for the requested response_format: {exc}",
            op="parse",
            provider=provider,
            err=exc,
        ) from exc


def _end_early(stream: _Stream) -> None:
    """End a stream's scope as closed early (a scope without `close`: end with what arrived)."""
    stream._buf = ()
    if stream._ended:
        return
    close = getattr(stream._scope, "close", None)
    if close is None:
        stream._finish()
    else:
        stream._ended = True
        close()


def _observe_batch(stream: _Stream, batch: Sequence[ChatChunk]) -> None:
    """Tell the scope (and the accumulator its `end` needs) about chunks that arrived."""
    acc = stream._acc
    if acc is None:
        return
    for chunk in batch:
        acc.add(chunk)
    note = stream._note
    if note is not None:
        note(batch)
    else:
        scope_chunk = stream._scope.chunk
        for chunk in batch:
            scope_chunk(chunk)


def _note_of(scope: CallScope) -> Any:
    """The scope's optional `chunk_batch` (one call per batch), else None."""
    return getattr(scope, "chunk_batch", None)


class _Stream:
    """What `ChatStream` and `AsyncChatStream` share: the batches still to hand out, the
    chunk being handed out, the call's telemetry scope and what it has accumulated."""

    __slots__ = (
        "_acc",
        "_batches",
        "_buf",
        "_ended",
        "_i",
        "_model",
        "_note",
        "_op",
        "_scope",
        "_start",
    )

    def __init__(
        self,
        batches: Any,
        scope: CallScope,
        model: ChatModel,
        op: str,
    ) -> None:
        self._batches = batches
        self._buf: Sequence[ChatChunk] = ()
        self._i = 0
        self._scope = scope
        self._model = model
        self._op = op
        self._ended = False
        # A scope that reads no chunks (the no-op one, or telemetry with nothing installed
        # behind it) costs the stream nothing per chunk, and its `end` is given None.
        watching = getattr(scope, "observes_chunks", True)
        self._acc = Accumulator() if watching else None
        self._note = _note_of(scope) if watching else None
        self._start = time.perf_counter()

    @property
    def provider(self) -> str:
        """The provider this stream comes from."""
        return self._model.provider

    def _deliver(self, batch: Sequence[ChatChunk]) -> ChatChunk:
        """Start handing out a new (non-empty) batch: observe it, return its first chunk."""
        self._buf, self._i = batch, 1
        if self._acc is not None:
            try:
                _observe_batch(self, batch)
            except Exception as exc:  # telemetry never breaks a call
                _observe.telemetry_failed(exc, "chunk")
        return batch[0]

    def _finish(self) -> None:
        """The batches are exhausted: end the call with what arrived (once)."""
        self._buf = ()
        if self._ended:
            return
        self._ended = True
        acc = self._acc
        try:
            if acc is not None:
                latency = time.perf_counter() - self._start
                self._scope.end(acc.response(self._model.provider, latency))
            else:
                self._scope.end(None)  # type: ignore[arg-type]
        except Exception as exc:  # what telemetry accumulated never breaks a call
            _observe.telemetry_failed(exc, "end")
            try:  # the scope still ends (as closed early): its span, its correlation id
                self._scope.close()
            except Exception as also:
                _observe.telemetry_failed(also, "close")

    def _failed(self, exc: BaseException) -> BaseException:
        """The batches raised: end the call as failed; the error the caller should see."""
        self._buf = ()
        self._ended = True
        return self._model._failed(self._scope, exc, self._op)


class ChatStream(_Stream):
    """A stream of `ChatChunk`s; iterate it, and close it (or use ``with``) to stop early.

    The call's telemetry scope ends exactly once: when the stream is exhausted, fails, is
    closed, or is garbage-collected.
    """

    __slots__ = ()

    _batches: Iterator[Sequence[ChatChunk]]

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> ChatChunk:
        buf, i = self._buf, self._i
        if i < len(buf):
            self._i = i + 1
            return buf[i]
        if self._ended:
            raise StopIteration
        batches = self._batches
        try:
            buf = next(batches)
            while not buf:
                buf = next(batches)
        except StopIteration:
            self._finish()
            raise
        except BaseException as exc:
            error = self._failed(exc)
            if error is exc:
                raise
            raise error from exc
        return self._deliver(buf)

    def close(self) -> None:
        """Stop early: release the connection and end the call as closed early."""
        self._buf = ()
        if not self._ended:
            close = getattr(self._batches, "close", None)
            try:
                if close is not None:
                    close()
            finally:
                _end_early(self)

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not self._ended:
            self.close()


class AsyncChatStream(_Stream):
    """The async twin of `ChatStream`: ``async for``, `aclose()`, ``async with``."""

    __slots__ = ()

    _batches: AsyncIterator[Sequence[ChatChunk]]

    def __aiter__(self) -> AsyncChatStream:
        return self

    async def __anext__(self) -> ChatChunk:
        buf, i = self._buf, self._i
        if i < len(buf):
            self._i = i + 1
            return buf[i]
        if self._ended:
            raise StopAsyncIteration
        batches = self._batches
        try:
            buf = await batches.__anext__()
            while not buf:
                buf = await batches.__anext__()
        except StopAsyncIteration:
            self._finish()
            raise
        except BaseException as exc:
            error = self._failed(exc)
            if error is exc:
                raise
            raise error from exc
        return self._deliver(buf)

    async def aclose(self) -> None:
        """Stop early: release the connection and end the call as closed early."""
        self._buf = ()
        if not self._ended:
            close = getattr(self._batches, "aclose", None)
            try:
                if close is not None:
                    await close()
            finally:
                _end_early(self)

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # The async generator is finalised by the event loop; the scope ends here.
        if not self._ended:
            _end_early(self)
