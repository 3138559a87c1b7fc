"""Correlation ids: one id per operation, carried in a contextvar from the registry to the
provider, its retries, its log records and `ChatModelError.correlation_id`.

The id is the trace id (32 hex digits) when a span is recording, else a generated id of the
same shape, so one search finds the spans and the log records of a failed call.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import os
import sys
from collections.abc import Iterator

__all__ = ["correlation_scope", "current_correlation_id", "new_correlation_id"]

_CORRELATION: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "chatmodels_correlation_id", default=None
)


# A random per-process half and a counter: unique, and cheaper than 16 random bytes per call.
_PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count(int.from_bytes(os.urandom(4), "big"))


def new_correlation_id() -> str:
    """A fresh id shaped like a W3C trace id (32 hex digits)."""
    return "%s%016x" % (_PREFIX, next(_COUNTER))  # noqa: UP031 - the fastest form here


def current_correlation_id() -> str | None:
    """The correlation id of the operation running in this context, if any: the one set
    here, else the trace id of the current span when it is recording."""
    value = _CORRELATION.get()
    if value is not None:
        return value
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:  # nothing has loaded OpenTelemetry, so no span can be current
        return None
    span = trace.get_current_span()
    if not span.is_recording():
        return None
    return "%032x" % span.get_span_context().trace_id  # noqa: UP031


def own_correlation_id() -> str | None:
    """The id set in this context by `set_correlation_id` or `correlation_scope` only."""
    return _CORRELATION.get()


def set_correlation_id(value: str | None) -> contextvars.Token[str | None]:
    """Set the id for this context; give the token to `reset_correlation_id`."""
    return _CORRELATION.set(value)


def reset_correlation_id(token: contextvars.Token[str | None]) -> None:
    """Undo `set_correlation_id`; a token from another context is ignored."""
    try:  # noqa: SIM105 - contextlib.suppress costs more on the per-call path
        _CORRELATION.reset(token)
    except ValueError:  # a stream may finish in another context
        pass


@contextlib.contextmanager
def correlation_scope(correlation_id: str | None = None) -> Iterator[str]:
    """Run a block under one correlation id (given, inherited, or new) and yield it."""
    value = correlation_id or current_correlation_id() or new_correlation_id()
    token = _CORRELATION.set(value)
    try:
        yield value
    finally:
        _CORRELATION.reset(token)
