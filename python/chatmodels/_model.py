"""`ChatModel`: the base every provider instance derives from.

The public calls (`invoke`, `ainvoke`, `stream`, `astream`, `batch`, `abatch`,
`health_check`, `ahealth_check`) live here: they have the call's messages and parameters
checked against the provider's capabilities before anything is sent (`_request`), report the
call to the observer (`_observe`) in one place, and hand a `ChatRequest` to the four hooks a
provider implements: `_invoke`, `_ainvoke`, `_stream`, `_astream` (and optionally `_health`).
A provider that reads several chunks at once (one network read holds many stream events)
implements `_stream_batches` / `_astream_batches` instead, so streams (`_stream`) hand chunks
out from a list.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from . import _observe
from ._errors import (
    APIError,
    CapabilityNotSupportedError,
    ChatModelError,
    ErrorCode,
    InternalError,
    InvalidConfigError,
    redact,
)
from ._metadata import ProviderMetadata, ProviderOptions
from ._observe import NOOP_SCOPE, CallScope, CallSite, call_site
from ._request import SAMPLING_PARAMS, ChatRequest, check_concurrency, parse_reply, prepare
from ._stream import AsyncChatStream, ChatStream
from ._types import ChatChunk, ChatResponse, HealthStatus, MessagesLike

if TYPE_CHECKING:
    from .telemetry import Container

__all__ = ["ChatModel"]


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
        check_concurrency(max_concurrency, "batch")
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
        check_concurrency(max_concurrency, "abatch")
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
        """The call's checked `ChatRequest`, with this instance's defaults."""
        meta = self.metadata
        if self._closed:
            raise InvalidConfigError("the model is closed", op=op, provider=meta.name)
        return prepare(
            messages,
            params,
            stream,
            op,
            meta,
            self._defaults,
            self.options.model or meta.default_model,
            self.supported_params,
        )

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
            if error.op == "transport":  # the transport does not know the call it serves
                error.op = op
                error.args = (str(error),)
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
        # response; saves 30,400 instructions/call (a fake invoke: 76,400 against 106,800,
        # callgrind over bench_telemetry's workload, CPython 3.11).
        setattr_ = object.__setattr__
        setattr_(response, "latency", time.perf_counter() - start)
        if response.provider is None:
            setattr_(response, "provider", self.metadata.name)
        fmt = request.response_format
        if fmt is not None and fmt.type != "text" and response.parsed is None:
            setattr_(response, "parsed", parse_reply(response.text, fmt, self.provider))
        return response


def _is_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, (KeyboardInterrupt, GeneratorExit)):
        return True
    # asyncio is imported only by async callers; without it there is no asyncio cancellation.
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(exc, asyncio.CancelledError)


def _unhealthy(exc: ChatModelError, start: float) -> HealthStatus:
    return HealthStatus("unhealthy", time.perf_counter() - start, exc.detail, exc.code.value)
