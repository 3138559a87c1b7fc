"""The telemetry seam: what every chat call tells an observer, and the do-nothing default.

`ChatModel` builds one `CallInfo` per call and calls ``get_observer().start(info)`` in exactly
one place; the returned `CallScope` then hears of each transport attempt, each streamed
chunk, and exactly one `end`, `fail` or `close`. The default observer loads the OpenTelemetry
one (`chatmodels.telemetry`) on the first call, so ``import chatmodels`` never imports
OpenTelemetry; ``set_observer(None)`` installs the no-op observer instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._errors import ChatModelError
    from ._types import ChatChunk, ChatResponse, Message, Tool

__all__ = [
    "NOOP_OBSERVER",
    "NOOP_SCOPE",
    "CallInfo",
    "CallObserver",
    "CallScope",
    "get_observer",
    "set_observer",
]


@dataclasses.dataclass(slots=True)
class CallInfo:
    """What is known about a chat call before it is sent.

    `provider` is the registered name; `gen_ai_provider_name` the OpenTelemetry GenAI value
    (``openai``, ``azure.ai.openai``, ...). `params` holds the request parameters that were
    set (temperature, max_tokens, top_p, top_k, stop, seed, frequency_penalty,
    presence_penalty, n). `messages`, `tools` and `system_instructions` are there for opt-in
    content capture; an observer that does not capture content must ignore them.
    """

    provider: str
    gen_ai_provider_name: str | None
    request_model: str | None
    operation: str = "chat"
    server_address: str | None = None
    server_port: int | None = None
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    stream: bool = False
    conversation_id: str | None = None
    output_type: str = "text"
    messages: Sequence[Message] = ()
    tools: Sequence[Tool] = ()
    system_instructions: Sequence[str] = ()


class CallScope(Protocol):
    """One call in progress, as the observer sees it."""

    def attempt(self, number: int, error: ChatModelError | None) -> None:
        """The transport made attempt `number` (1-based); `error` is why it failed, or None
        when it succeeded. A call that succeeds at its first attempt reports no attempt."""

    def chunk(self, chunk: ChatChunk) -> None:
        """A streamed chunk arrived. A scope may also have ``chunk_batch(chunks)``: then it
        is called once per batch of chunks that arrived together, instead of this."""

    def end(self, response: ChatResponse) -> None:
        """The call finished with `response` (for a stream: what it accumulated).

        A scope may have a false ``observes_chunks`` attribute: then a stream tells it
        nothing per chunk and ends it with ``end(None)``, accumulating nothing for it.
        """

    def fail(self, error: ChatModelError) -> None:
        """The call failed; the scope may set ``error.correlation_id``."""

    def close(self) -> None:
        """A stream was closed (or dropped) before its end; nothing if the scope has ended."""


class CallObserver(Protocol):
    """Starts a `CallScope` for each call.

    An observer may also have a boolean ``enabled`` attribute (or property): while it is
    false, calls skip building their `CallInfo` and do not call `start`.
    """

    def start(self, info: CallInfo) -> CallScope:
        """A call is about to be sent."""


class _NoopScope:
    __slots__ = ()
    observes_chunks = False

    def attempt(self, number: int, error: ChatModelError | None) -> None:
        pass

    def chunk(self, chunk: ChatChunk) -> None:
        pass

    def end(self, response: ChatResponse) -> None:
        pass

    def fail(self, error: ChatModelError) -> None:
        pass

    def close(self) -> None:
        pass


class _NoopObserver:
    __slots__ = ()
    enabled = False

    def start(self, info: CallInfo) -> CallScope:
        return NOOP_SCOPE


class _DefaultObserver:
    """Loads and installs the OpenTelemetry observer on the first call, then hands over."""

    __slots__ = ()

    @property
    def enabled(self) -> bool:
        return bool(getattr(self._load(), "enabled", True))

    def start(self, info: CallInfo) -> CallScope:
        return self._load().start(info)

    def _load(self) -> CallObserver:
        if _observer is not self:
            return _observer
        from .telemetry import TelemetryObserver

        observer: CallObserver = TelemetryObserver()
        set_observer(observer)
        return observer


NOOP_SCOPE: CallScope = _NoopScope()
NOOP_OBSERVER: CallObserver = _NoopObserver()

_observer: CallObserver = _DefaultObserver()


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
