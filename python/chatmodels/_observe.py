"""The telemetry seam: what every chat call tells an observer, and the do-nothing default.

`ChatModel` calls ``get_observer().start(site, request)`` in exactly one place: `site` (a
`CallSite`) is what every call through that model instance shares, built once; `request` is
the call's validated `ChatRequest`. The returned `CallScope` then hears of each transport
attempt, each streamed chunk, and exactly one `end`, `fail` or `close`. Nothing is built per
call for the observer. This module imports no telemetry: the package installs a
`LazyObserver` that loads the OpenTelemetry one (`chatmodels.telemetry`) on the first call,
so ``import chatmodels`` never imports OpenTelemetry; ``set_observer(None)`` installs the
no-op observer instead.

Telemetry never breaks a call: what an observer (or the OpenTelemetry SDK, an exporter, a
processor, a log handler behind it) raises is caught where it is called, reported by
`telemetry_failed` once per exception type and place, and the call goes on as if it were not
observed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._errors import ChatModelError
    from ._request import ChatRequest
    from ._types import ChatChunk, ChatResponse

__all__ = [
    "NOOP_OBSERVER",
    "NOOP_SCOPE",
    "CallObserver",
    "CallScope",
    "CallSite",
    "LazyObserver",
    "NoOpScope",
    "call_site",
    "get_observer",
    "set_observer",
    "telemetry_failed",
]


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class CallSite:
    """What every call through one model instance shares, for its observer.

    `provider` is the registered name; `gen_ai_provider_name` the OpenTelemetry GenAI value
    (``openai``, ``azure.ai.openai``, ...); `server_address` and `server_port` where the
    calls go. Compared by identity, and one object for equal values when made by
    `call_site`: an observer may key what it caches on it.

    The rest of what an observer reads is the call's `ChatRequest`: `model` (the request
    model), `params` (the sampling parameters that were set), `stream`, `conversation_id`,
    `response_format`, and, for opt-in content capture only, `messages`, `tools` and
    `system_instructions`.
    """

    provider: str
    gen_ai_provider_name: str | None
    server_address: str | None = None
    server_port: int | None = None
    operation: str = "chat"
    #: the model's `ProviderOptions.enable_tracing`, `enable_metrics` and `enable_logging`:
    #: whether its calls make a span, record metric points, write log records
    tracing: bool = True
    metrics: bool = True
    logging: bool = True
    #: whether any of the three is off: the observer's one check per call
    muted: bool = dataclasses.field(init=False, default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "muted", not (self.tracing and self.metrics and self.logging))


_SITES: dict[tuple[str, str | None, str | None, int | None, str, bool, bool, bool], CallSite] = {}
_SITES_LIMIT = 1024


def call_site(
    provider: str,
    gen_ai_provider_name: str | None,
    server_address: str | None,
    server_port: int | None,
    *,
    tracing: bool = True,
    metrics: bool = True,
    logging: bool = True,
) -> CallSite:
    """The `CallSite` of these values: the same object for the same values, so that what an
    observer caches per site is shared by every model instance calling the same server (a
    model created per request included). Past a thousand distinct sites, new ones are not
    kept."""
    key = (
        provider,
        gen_ai_provider_name,
        server_address,
        server_port,
        "chat",
        tracing,
        metrics,
        logging,
    )
    site = _SITES.get(key)
    if site is None:
        site = CallSite(*key)
        if len(_SITES) < _SITES_LIMIT:
            site = _SITES.setdefault(key, site)
    return site


class CallScope(Protocol):
    """One call in progress, as the observer sees it: every member is called, none probed."""

    @property
    def observes_chunks(self) -> bool:
        """Whether a stream tells this scope of its chunks. When false, a stream calls neither
        `chunk` nor `chunk_batch`, accumulates nothing for it and ends it with ``end(None)``."""
        ...

    def attempt(self, number: int, error: ChatModelError | None) -> None:
        """The transport made attempt `number` (1-based); `error` is why it failed, or None
        when it succeeded. A call that succeeds at its first attempt reports no attempt."""

    def chunk(self, chunk: ChatChunk) -> None:
        """A streamed chunk arrived (on its own)."""

    def chunk_batch(self, chunks: Sequence[ChatChunk]) -> None:
        """Streamed chunks that arrived together (one network read): what a stream calls,
        once per batch."""

    def end(self, response: ChatResponse | None) -> None:
        """The call finished with `response` (for a stream: what it accumulated, or None
        when the scope does not observe chunks)."""

    def fail(self, error: ChatModelError) -> None:
        """The call failed; the scope may set ``error.correlation_id``."""

    def close(self) -> None:
        """A stream was closed (or dropped) before its end; nothing if the scope has ended."""


class CallObserver(Protocol):
    """Starts a `CallScope` for each call."""

    def start(self, site: CallSite, request: ChatRequest) -> CallScope:
        """A call through the model of `site` is about to send `request`."""


class NoOpScope:
    """The scope that records nothing: the no-op observer's, telemetry's at level off."""

    __slots__ = ()
    correlation_id = None
    observes_chunks = False

    def attempt(self, number: int, error: ChatModelError | None) -> None:
        """Nothing."""

    def chunk(self, chunk: ChatChunk) -> None:
        """Nothing."""

    def chunk_batch(self, chunks: Sequence[ChatChunk]) -> None:
        """Nothing."""

    def end(self, response: ChatResponse | None) -> None:
        """Nothing."""

    def fail(self, error: ChatModelError) -> None:
        """Nothing."""

    def close(self) -> None:
        """Nothing."""


class _NoopObserver:
    __slots__ = ()

    def start(self, site: CallSite, request: ChatRequest) -> CallScope:
        return NOOP_SCOPE


class LazyObserver:
    """Stands in for the observer `make()` returns, made on the first call (so that importing
    the package imports no telemetry), then installed in its place."""

    __slots__ = ("_make",)

    def __init__(self, make: Callable[[], CallObserver]) -> None:
        self._make = make

    def start(self, site: CallSite, request: ChatRequest) -> CallScope:
        """Make and install the observer (if this one is still installed), then start."""
        observer = _observer
        if observer is self:
            observer = self._make()
            set_observer(observer)
        return observer.start(site, request)


NOOP_SCOPE: NoOpScope = NoOpScope()
NOOP_OBSERVER: CallObserver = _NoopObserver()

#: until the package installs its default (a `LazyObserver` of the OpenTelemetry observer)
_observer: CallObserver = NOOP_OBSERVER


def get_observer() -> CallObserver:
    """The observer every chat call reports to."""
    return _observer


def set_observer(observer: CallObserver | None) -> CallObserver:
    """Install `observer` (None: the no-op one) and return the previous one."""
    global _observer
    previous = _observer
    _observer = observer if observer is not None else NOOP_OBSERVER
    return previous


def is_noop(observer: CallObserver) -> bool:
    """Whether `observer` is the do-nothing default (so callers can skip optional work)."""
    return observer is NOOP_OBSERVER


_FAILURES: set[tuple[type[BaseException], str]] = set()
_FAILURES_LIMIT = 256
_FAILURES_LOCK = threading.Lock()


def telemetry_failed(exc: BaseException, where: str) -> None:
    """Report that telemetry raised `exc` at `where` (and was skipped) on the
    ``chatmodels.telemetry`` logger: once per exception type and place, never raising."""
    key = (type(exc), where)
    with _FAILURES_LOCK:
        if key in _FAILURES or len(_FAILURES) >= _FAILURES_LIMIT:
            return
        _FAILURES.add(key)
    with contextlib.suppress(Exception):  # a log handler that raises too: nothing more to say
        logging.getLogger("chatmodels.telemetry").warning(
            "telemetry failed in %s and was skipped (the call goes on; further %s there are "
            "not logged): %s",
            where,
            type(exc).__qualname__,
            exc,
            exc_info=exc,
            extra={"op": "telemetry", "code": "telemetry_failed"},
        )
